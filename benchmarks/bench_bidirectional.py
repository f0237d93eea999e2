"""Bidirectional window models beside the default: where does `tinylstm train --bidirectional` help, and what
does it cost on the board?

On the quality benchmark's classification panel sets whose windows have one length (bench_quality.py: watch
and, from the aeon wheel's bundled data, BasicMotions, ACSF1 and UnitTest; JapaneseVowels and
PickupGestureWiimoteZ have several lengths, which a bidirectional model refuses; the other bundled sets stay
reserved), per seed:
- **default**: ``tinylstm train`` with default flags (an LSTM of 32 units, unidirectional);
- **bidirectional**: the same with ``--bidirectional`` (a second LSTM of 32 units over each window backwards);
each exported and scored int8 on the held-out split as the board computes it (the integer golden == the C
kernel). Medians over seeds. Priced on Cortex-M4 (stm32f405) from seed 0's export: flash = model data + the
kernel code a firmware of the model links (-Os, unicorn build), RAM = the state buffer + tl_state_t,
instructions counted in unicorn (SMLAD path) over one held-out window from the reset: the whole window, and
its most expensive sample (for the bidirectional model the window's last: the backward pass runs there),
in milliseconds at the board's clock (``cpu_hz``: 16 MHz as built) with the kernel benchmark's assumed CPI.

Writes benchmarks/results/bidirectional.json and .md. Needs ``pip install 'tinylstm[bench]'`` (aeon's data).

    python benchmarks/bench_bidirectional.py [--sets A,B] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_quality import BOARD, RESULTS, integer_score, kept, load_pair, panel_files

from tinylstm.codegen import golden
from tinylstm.codegen.export import ModelSource, export
from tinylstm.codegen.store import load_int_model
from tinylstm.host.boards import get_board
from tinylstm.host.search.cost import STATE_STRUCT_BYTES
from tinylstm.host.targets.unicorn_runner import Target, build_target, code_size
from tinylstm.trainer.sequence_set import SequenceSet
from tinylstm.trainer.train import TrainConfig, fit

SETS = ("watch", "BasicMotions", "ACSF1", "UnitTest")
KINDS = ("default", "bidirectional")


def board_price(export_dir: Path, window: np.ndarray, work: Path) -> dict[str, Any]:
    """Flash, RAM and the instructions of one window (``window`` [W, C] float samples) on Cortex-M4."""
    m, _ = load_int_model(export_dir)
    board = get_board(BOARD)
    assert board.core is not None
    build = build_target(m, work, dsp=True, opt="-Os", max_steps=1, core=board.core)
    target = Target(build, m)
    counts = [target.measure_step(x)[0] for x in golden.quantize_input(m, window.astype(np.float32))]
    ms = board.core.cpi_assumed / board.cpu_hz * 1000.0
    code = code_size(build)
    data = int(json.loads((export_dir / "export-report.json").read_text())["model_data_bytes"])
    return {
        "flash_bytes": data + code,
        "code_bytes": code,
        "ram_bytes": 2 * m.state_words + STATE_STRUCT_BYTES,
        "window_instructions": int(sum(counts)),
        "peak_sample_instructions": int(max(counts)),
        "window_ms": round(sum(counts) * ms, 3),
        "peak_sample_ms": round(max(counts) * ms, 3),
    }


def one_seed(train: SequenceSet, test: SequenceSet, seed: int, work: Path, price: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in KINDS:
        t0 = time.perf_counter()
        config = TrainConfig(seed=seed, progress=False, bidirectional=kind == "bidirectional")
        run = fit(train, config, work / kind, test)
        exp = export(ModelSource(str(run.checkpoint_path)), work / f"{kind}-export")
        out[kind] = {
            "int8": integer_score(work / f"{kind}-export", test),
            "float": 100.0 * float(run.metrics["test_accuracy"]),
            "model_data_bytes": int(exp.report["model_data_bytes"]),
            "input_bits": int(exp.report["input_bits"]),  # --input-bits auto's choice (int8 if bidirectional)
            "readout": run.meta.readout,
            "stack": run.meta.stack,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        if price:
            out[kind] |= board_price(work / f"{kind}-export", test.sequences[0], work / f"{kind}-price")
    return out


def measure(name: str, seeds: list[int], work: Path, rows_dir: Path | None) -> dict[str, Any]:
    """One set's row; with ``rows_dir`` kept there as JSON and reused (resumable, or split in processes)."""
    return kept(rows_dir / f"{name}.bidir.json" if rows_dir else None, lambda: measure_row(name, seeds, work))


def measure_row(name: str, seeds: list[int], work: Path) -> dict[str, Any]:
    train_path, test_path = panel_files(name, work)
    train, test = load_pair(train_path, test_path)
    runs = [one_seed(train, test, s, work / f"{name}-{s}", price=k == 0) for k, s in enumerate(seeds)]
    row = {
        "dataset": name,
        "train": len(train),
        "test": len(test),
        "window": len(train.sequences[0]),
        "channels": train.num_channels,
        "seeds": runs,
    }
    for kind in KINDS:
        row[kind] = {
            key: statistics.median(r[kind][key] for r in runs) for key in ("int8", "float", "seconds")
        }
        row[kind] |= {k: v for k, v in runs[0][kind].items() if k not in row[kind]}
    print(json.dumps({k: row[k] for k in ("dataset", *KINDS)}, default=float), flush=True)
    return row


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        d, b = r["default"], r["bidirectional"]
        gain = b["int8"] - d["int8"]
        word = "helps" if gain > 0 else "does not help" if gain < 0 else "changes nothing"
        ratio = {key: b[key] / d[key] for key in ("flash_bytes", "ram_bytes", "window_instructions")}
        out.append(
            f"{r['dataset']}: bidirectional {word} ({b['int8']:.1f} vs {d['int8']:.1f} %, {gain:+.1f} pp: "
            f"{gain * r['test'] / 100:+.0f} of {r['test']} held-out series) "
            f"for {ratio['flash_bytes']:.2f}x the flash, {ratio['ram_bytes']:.2f}x the RAM and "
            f"{ratio['window_instructions']:.2f}x the instructions per window; its window-end sample takes "
            f"{b['peak_sample_ms']:.2f} ms (the default's slowest sample {d['peak_sample_ms']:.2f} ms)"
        )
    return out


def render_md(res: dict[str, Any]) -> str:
    lines = [
        "# Bidirectional window models beside the default",
        "",
        f"Generated by `python benchmarks/bench_bidirectional.py` on {res['date']} ({res['host']})"
        + (f"; {res['note']}" if res["note"] else "")
        + ".",
        "",
        "Held-out accuracy int8 as the board computes it (float), median of seeds "
        f"{', '.join(map(str, res['seeds']))}; both `tinylstm train` with default flags (LSTM 32), the "
        "second with `--bidirectional`. Prices from seed 0's exports on Cortex-M4 "
        f"({BOARD}, {get_board(BOARD).cpu_hz / 1e6:g} MHz; "
        "unicorn instruction counts x the assumed CPI, host/search/cost.py): flash = model data + the kernel "
        "code the firmware links (-Os), RAM = the state buffer (the window's inputs included) + tl_state_t, "
        "instructions over one held-out window from the reset and of its most expensive sample.",
        "",
        "| dataset | window x channels | model | int8 (float) % | readout, stack | flash B | RAM B "
        "| instr / window | slowest sample: instr (ms) |",
        "|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        for kind in KINDS:
            k = r[kind]
            first = kind == KINDS[0]
            shape = f"{r['window']} x {r['channels']}" if first else ""
            lines.append(
                f"| {r['dataset'] if first else ''} | {shape} | {kind} | {k['int8']:.1f} ({k['float']:.1f}) "
                "| "
                f"{k['readout']}, {k['stack']} | {k['flash_bytes']} | {k['ram_bytes']} | "
                f"{k['window_instructions']} | {k['peak_sample_instructions']} ({k['peak_sample_ms']:.2f}) |"
            )
    lines += ["", "## Verdicts", ""] + [f"- {v}" for v in res["verdicts"]]
    lines += [
        "",
        "The backward pass runs at the window's last sample, so that one sample costs about a window of "
        "recurrent steps: a board must have that time before the next sample (or buffer the samples that "
        "arrive meanwhile). The RAM is mostly the window's int8 inputs (W x C bytes).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS), help="panel sets with windows of one length")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--note", default="", help="a sentence about this run (e.g. the load)")
    ap.add_argument("--rows-dir", type=Path, help="keep each set's row here and reuse it (resumable runs)")
    args = ap.parse_args()
    import platform

    seeds = [int(s) for s in args.seeds.split(",")]
    if args.rows_dir:
        args.rows_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(name, seeds, Path(tmp), args.rows_dir) for name in args.sets.split(",")]
    res = {
        "date": time.strftime("%Y-%m-%d"),
        "host": f"{platform.machine()}, {platform.python_version()}, 1 training thread",
        "note": args.note,
        "seeds": seeds,
        "rows": rows,
    }
    res["verdicts"] = verdicts(rows)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bidirectional.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    (RESULTS / "bidirectional.md").write_text(render_md(res))
    print(render_md(res))


if __name__ == "__main__":
    main()
