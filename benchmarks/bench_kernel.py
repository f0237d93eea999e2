"""On-target cost of one kernel step, counted exactly: Cortex-M4 and RV32IMC code run in unicorn.

For every cell of the registry (1 layer, 4 outputs, calibrated PyTorch-initialised models) at hidden
16/32/64/128 x input 6/16, both the SMLAD path (__ARM_FEATURE_DSP) and the portable C path (-DTL_NO_DSP) are
built with arm-none-eabi-gcc 12 for -mcpu=cortex-m4 -mthumb -mfloat-abi=hard at -O2 (and the firmware's
-Os for the optimized path), with the default int8 weight layout, and the SMLAD path once more (-O2,
-Os) with the model emitted in the int16 "w16" layout; and the portable path for RV32IMC (the
ESP32-C3's instruction set, riscv64-unknown-elf-gcc 12, -O2 and -Os). The same float models quantized
with an int16 hidden state ("int16-h": Q0.15 h, int8 weights, int16 input, -DTL_HIDDEN16) run the DSP
path (-O2, -Os; tl_dot_s16.c's SMLAD loops), the portable path and RV32IMC (-O2, -Os), each compared with
the same path on the int8-h model. Then:

- instructions: a unicorn code hook counts every instruction executed by one step call (after ``WARMUP``
  steps, so the state is not zero; tl_step over random int8 samples, tl_step_s16 over random int16 ones for
  the int16-h model: layer 0 reads its int16 input with tl_dot_s16.c too), per step and per
  multiply-accumulate;
- stack: the stack is painted with 0xA5 before that call; the high-water mark is the deepest byte
  that changed;
- code: .text of the step path's objects (tl_api, tl_dot, tl_dot_s16, the cell's tl_<name>, tl_dense) from
  arm-none-eabi-size; model data: the emitted tl_model.o (weights, biases, multipliers, shifts,
  alignments, head, activation table, input constants); state RAM: the state buffer + tl_state_t.

Last, a latency table per board of the registry with a counted core: instructions of the firmware's
build (-Os, w8) x the core's assumed cycles per instruction / the board's usual clock. Writes
benchmarks/results/kernel.json and kernel.md.

    python benchmarks/bench_kernel.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from tinylstm.codegen.random_models import random_inputs, random_quantized_model
from tinylstm.contract.cells import CELLS, cell_type
from tinylstm.contract.constants import HIDDEN16_BITS, HIDDEN_BITS, state_words
from tinylstm.host.boards.registry import BOARDS, CORE_CORTEX_M4F, CORE_RV32IMC, Core
from tinylstm.host.boards.toolchain import find_tool
from tinylstm.host.search.cost import STATE_STRUCT_BYTES
from tinylstm.host.targets.unicorn_runner import Target, build_target, code_size

RESULTS = Path(__file__).parent / "results"
OUTPUTS = 4
WARMUP = 20


def macs_per_step(cell: str, inp: int, hidden: int, out: int = OUTPUTS) -> int:
    return cell_type(cell).gates * hidden * (inp + hidden) + out * hidden


# (name, DSP path, optimisation, weight layout, core, hidden bits); the firmware builds -Os w8 int8-h
Path_ = tuple[str, bool, str, str, Core, int]
PATHS: list[Path_] = [
    ("dsp", True, "-O2", "w8", CORE_CORTEX_M4F, HIDDEN_BITS),
    ("portable", False, "-O2", "w8", CORE_CORTEX_M4F, HIDDEN_BITS),
    ("dsp -Os", True, "-Os", "w8", CORE_CORTEX_M4F, HIDDEN_BITS),
    ("w16 dsp", True, "-O2", "w16", CORE_CORTEX_M4F, HIDDEN_BITS),
    ("w16 dsp -Os", True, "-Os", "w16", CORE_CORTEX_M4F, HIDDEN_BITS),
    ("rv32imc", False, "-O2", "w8", CORE_RV32IMC, HIDDEN_BITS),
    ("rv32imc -Os", False, "-Os", "w8", CORE_RV32IMC, HIDDEN_BITS),
]
# the int16-h model on the same paths: "h16 <path>" beside "<path>"
H16 = "h16 "
PATHS += [
    (H16 + name, dsp, opt, layout, core, HIDDEN16_BITS)
    for name, dsp, opt, layout, core, _ in PATHS
    if name in ("dsp", "portable", "dsp -Os", "rv32imc", "rv32imc -Os")
]
FIRMWARE_PATH = {CORE_CORTEX_M4F.name: "dsp -Os", CORE_RV32IMC.name: "rv32imc -Os"}


def measure(cell: str, inp: int, hidden: int, work: Path, paths: list[Path_]) -> list[dict]:
    rng = np.random.default_rng(hidden * 31 + inp)
    t = np.arange(400)[:, None]
    data = np.sin(t / (5 + 3 * np.arange(inp))) + 0.3 * rng.standard_normal((400, inp))
    # one float model, quantized with each hidden state
    models = {
        bits: random_quantized_model(
            hidden + inp, cell, 1, inp, hidden, OUTPUTS, data[None], hidden_bits=bits
        )
        for bits in sorted({p[5] for p in paths})
    }
    # samples of each model's input type: int8, the int16-h model's int16
    xqs = {bits: random_inputs(rng, model, WARMUP + 1) for bits, model in models.items()}
    macs = macs_per_step(cell, inp, hidden)
    rows = []
    for name, dsp, opt, layout, core, bits in paths:
        model, xq = models[bits], xqs[bits]
        build = build_target(
            model,
            work / f"{cell}-{inp}-{hidden}-{name.replace(' ', '')}",
            dsp=dsp,
            opt=opt,
            max_steps=WARMUP,
            layout=layout,
            core=core,
        )
        target = Target(build, model)
        target.run(xq[:WARMUP])
        instructions, stack = target.measure_step(xq[WARMUP])
        model_bytes = int(
            subprocess.run(
                [str(find_tool("size", core.toolchain)), str(build.objects["tl_model"])],  # type: ignore[arg-type]
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.splitlines()[1]
            .split()[0]
        )
        rows.append(
            {
                "cell": cell,
                "input": inp,
                "hidden": hidden,
                "outputs": OUTPUTS,
                "layers": 1,
                "path": name,
                "core": core.name,
                "layout": layout,
                "hidden_bits": bits,
                "opt": opt,
                "macs": macs,
                "instructions": instructions,
                "instructions_per_mac": round(instructions / macs, 3),
                "code_bytes": code_size(build),
                "model_bytes": model_bytes,
                "state_ram_bytes": 2 * state_words(1, hidden, bits) + STATE_STRUCT_BYTES,
                "stack_bytes": stack,
            }
        )
    return rows


def latency_rows(rows: list[dict]) -> list[dict]:
    """µs per step on each board with a counted core: firmware-build instructions x CPI / clock."""
    out = []
    for b in BOARDS.values():
        if b.core is None or b.core.name not in FIRMWARE_PATH or not b.cpu_hz:
            continue
        for r in rows:
            if r["path"] == FIRMWARE_PATH[b.core.name]:
                cycles = r["instructions"] * b.core.cpi_assumed
                out.append(
                    {
                        "board": b.name,
                        "core": b.core.name,
                        "mhz": b.cpu_hz // 1_000_000,
                        "cpi_assumed": b.core.cpi_assumed,
                        "cell": r["cell"],
                        "input": r["input"],
                        "hidden": r["hidden"],
                        "instructions": r["instructions"],
                        "us_per_step": round(cycles / b.cpu_hz * 1e6, 1),
                    }
                )
    return out


def render_md(res: dict) -> str:
    m4_all = [r for r in res["rows"] if r["core"] == CORE_CORTEX_M4F.name]
    rows = [r for r in m4_all if r.get("hidden_bits", HIDDEN_BITS) == HIDDEN_BITS]
    h16 = [r for r in m4_all if r.get("hidden_bits", HIDDEN_BITS) == HIDDEN16_BITS]
    count = {(r["cell"], r["input"], r["hidden"], r["path"]): r["instructions"] for r in res["rows"]}
    out = [
        "# Kernel on Cortex-M4 and RV32IMC (instruction counts in unicorn)",
        "",
        (
            f"Generated by `python benchmarks/bench_kernel.py` on {res['date']} ({res['compiler']}). "
            "One step (tl_step; tl_step_s16 for int16-h) after warm-up, counted exactly with a unicorn code "
            "hook; 1 layer, 4 outputs; "
            "MACs = gates·H·(I+H) + 4·H. `dsp` = SXTB16/SMLAD path, `portable` = -DTL_NO_DSP, both -O2; "
            "`dsp -Os` = the optimized path at the firmware's -Os. These three use the default int8 weight "
            "layout "
            "(`w8`); `w16 dsp` / `w16 dsp -Os` = the same DSP path with the model emitted in the int16 "
            "layout "
            '(`emit_c(layout="w16")`, `tinylstm export --layout w16`): same bits, 2x the weight flash.'
        ),
        "",
        "| cell | I | H | MACs | path | instructions/step | instr/MAC | speed-up vs portable |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = {(r["cell"], r["input"], r["hidden"]): r["instructions"] for r in rows if r["path"] == "portable"}
    for r in rows:
        key = (r["cell"], r["input"], r["hidden"])
        out.append(
            f"| {r['cell']} | {r['input']} | {r['hidden']} | {r['macs']} | {r['path']} | {r['instructions']} "
            f"| {r['instructions_per_mac']:.2f} | {base[key] / r['instructions']:.2f}x |"
        )
    if h16:
        out += [
            "",
            "## int16 hidden state (int16-h)",
            "",
            (
                "The same float models quantized with an int16 Q0.15 hidden state, int8 weights and int16 "
                "input (`quantize(..., hidden_bits=16)`, `tinylstm export --hidden-bits 16`; the kernel "
                "built with -DTL_HIDDEN16, stepped by tl_step_s16). `h16 dsp` / `h16 dsp -Os`: the SMLAD "
                "path of tl_dot_s16.c for the input and the h parts (PKHBT/PKHTB pair the int16 activations "
                "once per four rows, 24 instructions per 16 MACs against 23 for int8 activations), "
                "`h16 portable`: -DTL_NO_DSP. `vs int8 h`: instructions of the int16-h step / the int8-h "
                "step on the same path (`dsp`, `portable`, `dsp -Os`); the difference beyond the "
                "dot products is the int64 row sum of every gate row (tl_acc64: two SMULL/SMLAL) and its "
                "requantization (tl_requantize64, which takes the int32 route when the sum fits in int32)."
            ),
            "",
            "| cell | I | H | MACs | path | instructions/step | instr/MAC | speed-up vs h16 portable "
            "| vs int8 h |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in h16:
            key = (r["cell"], r["input"], r["hidden"])
            portable = count[(*key, H16 + "portable")]
            int8 = count[(*key, r["path"].removeprefix(H16))]
            out.append(
                f"| {r['cell']} | {r['input']} | {r['hidden']} | {r['macs']} | {r['path']} "
                f"| {r['instructions']} | {r['instructions_per_mac']:.2f} "
                f"| {portable / r['instructions']:.2f}x | {r['instructions'] / int8:.2f}x |"
            )
    out += [
        "",
        "## Footprint",
        "",
        (
            "Code: the .text of the kernel files (tl_api, tl_dot, tl_dot_s16, the cell's file, tl_dense, "
            "...) that `--gc-sections` keeps in a target built with the model's settings (codegen/emit_c.py "
            "build_settings: its cell, hidden state, readout and stacking paths only), as a firmware links "
            "them. Model data: the emitted tl_model.o. State RAM: state buffer + tl_state_t. Stack: "
            "high-water mark of one step."
        ),
        "",
        "| cell | I | H | path | code bytes | model data bytes | state RAM bytes | stack bytes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        out.append(
            f"| {r['cell']} | {r['input']} | {r['hidden']} | {r['path']} | {r['code_bytes']} | "
            f"{r['model_bytes']} | {r['state_ram_bytes']} | {r['stack_bytes']} |"
        )
    rv = [r for r in res["rows"] if r["core"] == CORE_RV32IMC.name]
    out += [
        "",
        "## RV32IMC (the ESP32-C3/C6/H2 instruction set)",
        "",
        (
            f"{res['compiler_rv']}, -march=rv32imc -mabi=ilp32; the portable C path (RISC-V has no packed "
            "multiply-accumulate in RV32IMC). Same models and inputs as above; the ratios compare "
            "instruction counts with the Cortex-M4 at the same optimisation level and hidden state "
            "(`h16 rv32imc` against `h16 portable` and `h16 dsp`); `vs int8 h`: the int16-h step / the "
            "int8-h step at the same optimisation level."
        ),
        "",
        "| cell | I | H | MACs | path | instructions/step | instr/MAC | vs M4 portable | vs M4 dsp "
        "| vs int8 h |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rv:
        key = (r["cell"], r["input"], r["hidden"])
        prefix = H16 if r["path"].startswith(H16) else ""
        suffix = " -Os" if r["opt"] == "-Os" else ""
        m4_portable = count.get((*key, prefix + "portable")) if not suffix else None
        m4_dsp = count[(*key, prefix + "dsp" + suffix)]
        int8 = count[(*key, r["path"].removeprefix(H16))] if prefix else None
        out.append(
            f"| {r['cell']} | {r['input']} | {r['hidden']} | {r['macs']} | {r['path']} | {r['instructions']} "
            f"| {r['instructions_per_mac']:.2f} | "
            + (f"{r['instructions'] / m4_portable:.2f}x" if m4_portable else "—")
            + f" | {r['instructions'] / m4_dsp:.2f}x | "
            + (f"{r['instructions'] / int8:.2f}x" if int8 else "—")
            + " |"
        )
    out += [
        "",
        "## Latency per board (estimated)",
        "",
        (
            "µs per step = instructions of the firmware's build (-Os, w8) × assumed cycles per instruction ÷ "
            "the board's usual clock (host/boards/registry.py). The cycles per instruction are assumptions, "
            "not measurements: on a chip, flash wait states and caches decide them. The ESP32 (Xtensa LX6) "
            "has no instruction-counting emulator here and is left out."
        ),
        "",
        "| board | core | MHz | CPI assumed | cell | I | H | instructions | µs/step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["latency"]:
        out.append(
            f"| {r['board']} | {r['core']} | {r['mhz']} | {r['cpi_assumed']} | {r['cell']} | {r['input']} | "
            f"{r['hidden']} | {r['instructions']} | {r['us_per_step']} |"
        )
    return "\n".join(out) + "\n"


def _version(core: Core) -> str:
    gcc = find_tool("gcc", core.toolchain)  # type: ignore[arg-type]
    return subprocess.run(
        [str(gcc), "--version"], check=True, capture_output=True, text=True
    ).stdout.splitlines()[0]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="hidden 16 and 64 with input 6 only")
    args = ap.parse_args(argv)
    hiddens = [16, 64] if args.quick else [16, 32, 64, 128]
    inputs = [6] if args.quick else [6, 16]
    paths = PATHS
    rows: list[dict] = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for cell in CELLS:
            for inp in inputs:
                for hidden in hiddens:
                    rows += measure(cell, inp, hidden, Path(tmp), paths)
                    r = {row["path"]: row["instructions_per_mac"] for row in rows[-len(paths) :]}
                    print(
                        f"{cell} I={inp} H={hidden}: "
                        + ", ".join(f"{k} {v:.2f}" for k, v in r.items())
                        + " instr/MAC",
                        flush=True,
                    )
    res = {
        "date": time.strftime("%Y-%m-%d"),
        "compiler": _version(CORE_CORTEX_M4F),
        "compiler_rv": _version(CORE_RV32IMC),
        "cpu": "cortex-m4, rv32imc (unicorn)",
        "host": platform.machine(),
        "seconds": round(time.time() - t0, 1),
        "rows": rows,
        "latency": latency_rows(rows),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kernel.json").write_text(json.dumps(res, indent=1) + "\n")
    (RESULTS / "kernel.md").write_text(render_md(res))
    return res


if __name__ == "__main__":
    main()
