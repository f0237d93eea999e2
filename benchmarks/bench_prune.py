"""Pruned from larger versus trained small from scratch, at one size: does `tinylstm prune` earn its place?

On the quality benchmark's classification panel (bench_quality.py: watch and, from the aeon wheel's bundled
data, BasicMotions, JapaneseVowels, PickupGestureWiimoteZ, ACSF1, UnitTest; the other bundled sets stay
reserved), per seed:
- **default**: ``tinylstm train`` with default flags (an LSTM of 32 units);
- **pruned to h**: that model through ``tinylstm prune --hidden h`` (default fine-tuning);
- **scratch h**: ``tinylstm train --hidden h`` with default flags;
each exported and scored int8 on the held-out split as the board computes it (the integer golden == the C
kernel), with its model data bytes (what flash holds besides the kernel code, which pruning does not change)
and training or pruning seconds. Medians over seeds.

Goal (issue 20): at the default's held-out accuracy (within 0.5 pp), at least 30 % less model data than the
unpruned default on most panel sets, or a plain statement where pruning does not beat training small.

Writes benchmarks/results/prune.json, .md and .png. Needs ``pip install 'tinylstm[bench]'`` (aeon's data).

    python benchmarks/bench_prune.py [--sets A,B] [--seeds 0,1,2] [--hidden 24,16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from bench_quality import CLASSIFICATION, RESULTS, integer_score, kept, load_pair, panel_files

from tinylstm.codegen.export import ModelSource, export
from tinylstm.host.search.prune import PruneTarget, prune_checkpoint
from tinylstm.trainer.sequence_set import SequenceSet
from tinylstm.trainer.train import TrainConfig, fit

GOAL_DROP_PP = 0.5
GOAL_SAVED = 0.30


def scored(checkpoint: Path, test: SequenceSet, work: Path, seconds: float) -> dict[str, Any]:
    """The default export's held-out int8 score, model data bytes and input width (--input-bits auto)."""
    exp = export(ModelSource(str(checkpoint)), work)
    return {
        "int8": integer_score(work, test),
        "bytes": int(exp.report["model_data_bytes"]),
        "input_bits": int(exp.report["input_bits"]),
        "seconds": seconds,
    }


def one_seed(
    train: SequenceSet, test: SequenceSet, seed: int, sizes: list[int], work: Path
) -> dict[str, Any]:
    t0 = time.perf_counter()
    run = fit(train, TrainConfig(seed=seed, progress=False), work / "default", test)
    out: dict[str, Any] = {
        "default": scored(run.checkpoint_path, test, work / "default-export", time.perf_counter() - t0)
    }
    for h in sizes:
        t0 = time.perf_counter()
        prune_checkpoint(run.checkpoint_path, work / f"pruned-{h}", PruneTarget(hidden=h))
        seconds = time.perf_counter() - t0
        out[f"pruned-{h}"] = scored(
            work / f"pruned-{h}" / "model.pt", test, work / f"pruned-{h}-export", seconds
        )
        t0 = time.perf_counter()
        small = fit(train, TrainConfig(seed=seed, hidden=h, progress=False), work / f"scratch-{h}", test)
        seconds = time.perf_counter() - t0
        out[f"scratch-{h}"] = scored(small.checkpoint_path, test, work / f"scratch-{h}-export", seconds)
    return out


def measure(
    name: str, seeds: list[int], sizes: list[int], work: Path, rows_dir: Path | None
) -> dict[str, Any]:
    """One set's row; with ``rows_dir`` kept there as JSON and reused (resumable, or split in processes)."""
    path = rows_dir / f"{name}.json" if rows_dir else None
    return kept(path, lambda: measure_row(name, seeds, sizes, work))


def measure_row(name: str, seeds: list[int], sizes: list[int], work: Path) -> dict[str, Any]:
    train_path, test_path = panel_files(name, work)
    train, test = load_pair(train_path, test_path)
    runs = []
    for seed in seeds:
        runs.append(one_seed(train, test, seed, sizes, work / f"{name}-{seed}"))
        print(name, seed, json.dumps(runs[-1], default=float), flush=True)
    return aggregate(name, runs)


def aggregate(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A set's row from its seeds' runs: medians of accuracy and seconds."""
    row: dict[str, Any] = {"dataset": name, "seeds": runs}
    for kind in runs[0]:
        row[kind] = {
            "int8": statistics.median(r[kind]["int8"] for r in runs),
            "bytes": runs[0][kind]["bytes"],
            "seconds": statistics.median(r[kind]["seconds"] for r in runs),
        }
    return row


def verdicts(rows: list[dict[str, Any]], sizes: list[int]) -> list[str]:
    out, met = [], 0
    for r in rows:
        d = r["default"]
        ok = [
            h
            for h in sizes
            if r[f"pruned-{h}"]["int8"] >= d["int8"] - GOAL_DROP_PP
            and r[f"pruned-{h}"]["bytes"] <= (1 - GOAL_SAVED) * d["bytes"]
        ]
        beats = [h for h in sizes if r[f"pruned-{h}"]["int8"] > r[f"scratch-{h}"]["int8"]]
        ties = [h for h in sizes if r[f"pruned-{h}"]["int8"] == r[f"scratch-{h}"]["int8"]]
        met += bool(ok)
        best = min(ok) if ok else None
        out.append(
            f"{r['dataset']}: "
            + (
                f"pruned to {best} units keeps the default's accuracy within {GOAL_DROP_PP} pp with "
                f"{100 * (1 - r[f'pruned-{best}']['bytes'] / d['bytes']):.0f} % less model data"
                if best
                else f"no pruned size keeps the default's accuracy within {GOAL_DROP_PP} pp at >= "
                f"{100 * GOAL_SAVED:.0f} % less model data"
            )
            + f"; pruned beats scratch at {len(beats)} of {len(sizes)} sizes"
            + (f" (ties at {len(ties)})" if ties else "")
        )
    out.append(
        f"goal (>= {100 * GOAL_SAVED:.0f} % less model data within {GOAL_DROP_PP} pp, on most sets): "
        f"{met} of {len(rows)} sets ({'met' if met > len(rows) / 2 else 'NOT met'})"
    )
    return out


def inputs_line(rows: list[dict[str, Any]]) -> str:
    """Which input width each set's exports took, over every seed and model."""
    parts = []
    for r in rows:
        bits = sorted({run[k].get("input_bits", 8) for run in r["seeds"] for k in run})
        parts.append(f"{r['dataset']} " + " and ".join(f"int{b}" for b in bits))
    return "; ".join(parts) + "."


def render_md(res: dict[str, Any]) -> str:
    sizes = res["hidden"]
    head = ["dataset", "default int8 (B)"] + [
        f"{k} {h} int8 (B)" for h in sizes for k in ("pruned", "scratch")
    ]
    lines = [
        "# Pruned from larger vs trained small from scratch",
        "",
        f"Generated by `python benchmarks/bench_prune.py` on {res['date']} ({res['host']}); host-measured, "
        "int8 held-out accuracy (%) as the board computes it, median of seeds "
        f"{', '.join(map(str, res['seeds']))}; (B): model data bytes (flash besides the kernel code, which "
        "is the same for all). Default: `tinylstm train` (LSTM 32, the recipe); pruned h: `tinylstm prune "
        "--hidden h` of that model (default fine-tuning); scratch h: `tinylstm train --hidden h`. "
        + res["note"],
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for r in res["rows"]:
        cells = [r["dataset"], f"{r['default']['int8']:.1f} ({r['default']['bytes']})"]
        for h in sizes:
            for k in ("pruned", "scratch"):
                v = r[f"{k}-{h}"]
                cells.append(f"{v['int8']:.1f} ({v['bytes']})")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Inputs (every export with export's default, `--input-bits auto`): " + inputs_line(res["rows"]),
    ]
    lines += [
        "",
        "Seconds (median): training the default, then per size pruning (all rounds) and training small:",
        "",
    ]
    for r in res["rows"]:
        parts = [f"default {r['default']['seconds']:.0f}"] + [
            f"pruned-{h} {r[f'pruned-{h}']['seconds']:.0f}, scratch-{h} {r[f'scratch-{h}']['seconds']:.0f}"
            for h in sizes
        ]
        lines.append(f"- {r['dataset']}: " + "; ".join(parts))
    lines += ["", "## Verdicts (issue 20)", ""] + [f"- {v}" for v in res["verdicts"]] + [""]
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    rows = res["rows"]
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.2), squeeze=False)
    for ax, r in zip(axes[0], rows, strict=True):
        for kind, marker in (("pruned", "o-"), ("scratch", "s--")):
            pts = sorted((r[f"{kind}-{h}"]["bytes"], r[f"{kind}-{h}"]["int8"]) for h in res["hidden"])
            pts.append((r["default"]["bytes"], r["default"]["int8"]))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker, label=kind)
        ax.set_title(r["dataset"], fontsize=9)
        ax.set_xlabel("model data (B)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("int8 held-out accuracy (%)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.18, top=0.88, wspace=0.35)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sets", default=",".join(CLASSIFICATION), help="panel sets (default: the classification panel)"
    )
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--hidden", default="24,16", help="sizes to prune to and train from scratch")
    ap.add_argument("--note", default="", help="a sentence about this run (e.g. the load)")
    ap.add_argument("--rows-dir", type=Path, help="keep each set's row here and reuse it (resumable runs)")
    args = ap.parse_args()
    import platform

    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [int(h) for h in args.hidden.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        if args.rows_dir:
            args.rows_dir.mkdir(parents=True, exist_ok=True)
        rows = [measure(name, seeds, sizes, Path(tmp), args.rows_dir) for name in args.sets.split(",")]
    res = {
        "date": time.strftime("%Y-%m-%d"),
        "host": f"{platform.machine()}, {platform.python_version()}, 1 training thread",
        "note": args.note,
        "seeds": seeds,
        "hidden": sizes,
        "rows": rows,
    }
    res["verdicts"] = verdicts(rows, sizes)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prune.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    (RESULTS / "prune.md").write_text(render_md(res))
    plot(res, RESULTS / "prune.png")
    print(render_md(res))


if __name__ == "__main__":
    main()
