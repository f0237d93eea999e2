"""Accuracy per byte: float, int8 post-training quantization, int8 quantization-aware training, the int16
input on the int8 hidden state (PTQ and QAT) and the int16 hidden state, by dataset, cell and hidden size,
beside each model's flash, RAM and Cortex-M4 instructions per step, and TensorFlow Lite's full-integer int8 of
the same float weights where it is installed.

Datasets that ship inside installable packages: the watch IMU activity set (seglearn, every second window)
and, read straight from the aeon wheel's own .ts files (``pip install --no-deps aeon``; aeon itself is never
imported), BasicMotions (IMU activity, 6 channels), JapaneseVowels (12 channels, variable length 7-29),
PickupGestureWiimoteZ (accelerometer, variable length 29-361), ACSF1 (a power meter, 1,460 steps, run stacked)
and UnitTest (univariate, 24 steps), each with its official test file as the held-out split; and two
regression sets from the same wheel, Covid3Month (univariate, 84 steps) and CardanoSentiment (2 channels, 24
steps), scored by RMSE.

Per row: one seeded float training; the same training followed by QAT fine-tuning (codegen/qat.py); both
exported and measured on the held-out split through the integer golden reference (== the C kernel,
tests/test_kernel_parity.py); the float-trained model exported again with ``--input-bits 16`` (int8-x16: an
int16 input, int8 weights and h) and with ``--hidden-bits 16`` (int16-h); the same training followed by QAT
fine-tuning for the int16 input (``--qat-input-bits 16``), exported with ``--input-bits 16``. Flash = model
data + the kernel's step-path code for the Cortex-M4 at -Os, RAM = the model state, instructions = one tl_step
counted in unicorn (host/search/cost.py), for both hidden states. With ``pip install 'tinylstm[tflite]'`` each
row also gets TensorFlow Lite's full-integer int8 conversion of the float-trained weights
(benchmarks/tflite_peer.py): accuracy or RMSE, agreement, file and arena bytes, host µs per step; without it
those columns say "not installed". Writes benchmarks/results/accuracy.json, .md and .png.

    python benchmarks/bench_accuracy.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tinylstm.codegen.export import ModelSource, export
from tinylstm.codegen.input_range import AUTO_INPUT_BITS
from tinylstm.codegen.qat import finetune
from tinylstm.contract.constants import INPUT16_BITS, INPUT_BITS
from tinylstm.host.analysis.check import held_out_quality
from tinylstm.host.boards import get_board
from tinylstm.host.search.cost import architecture_cost
from tinylstm.trainer.data import load_dataset, load_test_set
from tinylstm.trainer.train import TrainConfig, fit

RESULTS = Path(__file__).parent / "results"
BOARD = "stm32f405"
AEON_SETS = ("BasicMotions", "JapaneseVowels", "PickupGestureWiimoteZ", "ACSF1", "UnitTest")
AEON_REGRESSION = ("Covid3Month", "CardanoSentiment")
QAT_EPOCHS = 5
GOAL_QAT_PP = 0.3  # QAT int8 within this of float where PTQ drops more (issue 12)
GOAL_INT16_PP = 0.1  # int16-h within this of float accuracy, every classification row
GOAL_INT16_RMSE_PCT = 0.5  # int16-h RMSE within this % of the target std of the float RMSE


def aeon_file(name: str, split: str) -> Path:
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bench_accuracy needs aeon's data files: pip install --no-deps aeon")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name / f"{name}_{split}.ts"


def panel(quick: bool) -> tuple[str, ...]:
    return ("watch", *((AEON_SETS[:1] + AEON_REGRESSION[:1]) if quick else (AEON_SETS + AEON_REGRESSION)))


def datasets(names: tuple[str, ...]) -> Iterator[tuple[str, Any, Any]]:
    """(name, training split, held-out split or None: watch splits its own), loaded one set at a time."""
    for name in names:
        if name == "watch":
            yield name, load_dataset("watch", hop=64), None
            continue
        train = load_dataset(str(aeon_file(name, "TRAIN")))
        yield name, train, load_test_set(str(aeon_file(name, "TEST")), train)


def _sig(v: float) -> float:
    return float(f"{v:.6g}")


def _quality(export_dir: Path) -> dict[str, Any]:
    """Held-out quality, with regression's RMSE increase in % of the target std."""
    q = held_out_quality(export_dir)
    return {"float": float(q["float"]), "int": float(q["int8"]), "pct_std": q.get("rmse_increase_pct_of_std")}


def row(
    name: str,
    train: Any,
    test: Any,
    cell: str,
    hidden: int,
    epochs: int | None,
    qat_epochs: int,
    seed: int,
    work: Path,
) -> dict[str, Any]:
    # the training recipe (trainer/recipe.py), with one 15 % validation split for both runs (QAT's keep-or-not
    # reads it), so the float models PTQ and QAT start from are the same: the QAT run takes the readout the
    # first one's cross-validation chose (each training starts from the seed: the folds change nothing else)
    base = TrainConfig(cell=cell, hidden=hidden, epochs=epochs, val=0.15, progress=False, seed=seed)
    result: dict[str, Any] = {
        "dataset": name, "task": train.task, "cell": cell, "hidden": hidden, "seed": seed
    }  # fmt: skip
    started = time.perf_counter()
    # PTQ and QAT as `export` and `train --qat` do by default: the input's width by --input-bits auto (QAT
    # fine-tunes for what export chooses for the float model, and export keeps it); x16 with an int16 input
    for kind, qat, input_bits in (("ptq", 0, None), ("qat", qat_epochs, None), ("qatx16", qat_epochs, 16)):
        config = TrainConfig(**{**base.__dict__, "qat_epochs": qat, "qat_input_bits": input_bits})
        run = fit(train, config, work / kind, test, finetune=finetune)
        base.readout = run.meta.readout
        exp = export(
            ModelSource(str(run.checkpoint_path)),
            work / f"{kind}-export",
            input_bits=input_bits or AUTO_INPUT_BITS,
        )
        q = _quality(work / f"{kind}-export")
        result[f"float_{kind}"] = _sig(q["float"])
        result[f"int8_{kind}"] = _sig(q["int"])
        result[f"int8_{kind}_pct_std"] = q["pct_std"]
        result[f"{kind}_input_bits"] = int(exp.report["input_bits"])
        if qat:
            result[f"{kind}_best_epoch"] = run.metrics["qat"]["best_epoch"]
            continue
        result["model_data_bytes"] = exp.report["model_data_bytes"]
        result["readout"], result["stack"] = run.meta.readout, run.meta.stack
        for key, option in (("int8x16", {"input_bits": 16}), ("int16h", {"hidden_bits": 16})):
            export(ModelSource(str(run.checkpoint_path)), work / f"{key}-export", **option)
            qw = _quality(work / f"{key}-export")
            result[key], result[f"{key}_pct_std"] = _sig(qw["int"]), qw["pct_std"]
        result["tflite"] = tflite(work / "ptq-export")
    result["float"] = result.pop("float_ptq")  # the float model PTQ quantizes
    result["float_after_qat"] = result.pop("float_qat")
    result["float_after_qatx16"] = result.pop("float_qatx16")
    result["int8x16_qat"], result["int8x16_qat_pct_std"] = (
        result.pop("int8_qatx16"),
        result.pop("int8_qatx16_pct_std"),
    )
    board = get_board(BOARD)
    shape = (board, cell, 1, train.num_channels, hidden, train.output_size, train.classes)
    path = {"readout": result["readout"], "stack": result["stack"]}  # what the model's step runs
    cost = architecture_cost(*shape, **path, input16=result["ptq_input_bits"] == INPUT16_BITS)
    cost16 = architecture_cost(*shape, hidden_bits=16, **path)
    result |= {
        "flash_bytes": result["model_data_bytes"] + cost.code_bytes,
        "ram_bytes": cost.ram_bytes,
        "m4_instructions": cost.instructions,
        "int16h_flash_bytes": result["model_data_bytes"] + cost16.code_bytes,
        "int16h_ram_bytes": cost16.ram_bytes,
        "int16h_m4_instructions": cost16.instructions,
        "ptq_drop_pp": round(result["float"] - result["int8_ptq"], 3),
        "qat_drop_pp": round(result["float"] - result["int8_qat"], 3),
        "x16_drop_pp": round(result["float"] - result["int8x16"], 3),
        "x16_qat_drop_pp": round(result["float"] - result["int8x16_qat"], 3),
        "int16h_drop_pp": round(result["float"] - result["int16h"], 3),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return result


def tflite_note() -> str:
    if importlib.util.find_spec("tensorflow") is None:
        return "TFLite rows not run: pip install 'tinylstm[tflite]'"
    return "TFLite rows: benchmarks/tflite_peer.py (LiteRT µs per step on this host, 1 thread)"


def tflite(export_dir: Path) -> dict[str, Any]:
    """TensorFlow Lite's full-integer int8 of the export's float weights, where TensorFlow is installed."""
    from tflite_peer import tflite_row

    try:
        t = tflite_row(export_dir)
    except ModuleNotFoundError as exc:
        return {"status": f"not run ({exc})"}
    if t["tflite"] != "int8":
        return {"status": t["tflite"], **t}
    arena = t.get("tflm_arena_bytes")
    return {
        **t,
        "value": t["tflite_int8"],
        "file_bytes": t["tflite_bytes"],
        "arena_bytes": arena if isinstance(arena, int) else None,
    }


def _tflite_cells(r: dict[str, Any]) -> str:
    t = r.get("tflite") or {}
    if "value" not in t:
        return f"{t.get('status', 'not run')} | |"
    value = f"{t['value']:.2f}" if r["task"] == "classification" else f"{t['value']:.4g}"
    arena = t.get("arena_bytes") or "n/m"
    return f"{value} | {t['file_bytes']} / {arena} | {t['us_per_step']:.1f}"


def _opt(r: dict[str, Any], key: str, fmt: str) -> str:
    """A column that rows measured before it lack: "–" there."""
    return "–" if r.get(key) is None else format(r[key], fmt)


def _inputs(r: dict[str, Any]) -> str:
    """The input width the seeds' exports chose (--input-bits auto), with how many chose each; rows measured
    before auto had the int8 input."""
    names = [f"int{b}" if b else f"int{INPUT_BITS} (before auto)" for b in r.get("inputs", [None])]
    return ", ".join(f"{n} x{names.count(n)}" if len(set(names)) > 1 else n for n in sorted(set(names)))


def render_md(res: dict[str, Any]) -> str:
    cls = [r for r in res["rows"] if r["task"] == "classification"]
    reg = [r for r in res["rows"] if r["task"] != "classification"]
    lines = [
        "# Accuracy per byte",
        "",
        f"Generated by `python benchmarks/bench_accuracy.py` on {res['date']}; {res['note']}",
        "",
        "## Classification (held-out accuracy, %)",
        "",
        "| dataset | cell | hidden | input | float | int8 PTQ | int8 QAT | int8-x16 PTQ | int8-x16 QAT "
        "| int16-h | PTQ drop | QAT drop | x16 PTQ drop | x16 QAT drop | int16-h drop "
        "| flash B (int16-h) | RAM B (int16-h) | M4 instr/step (int16-h) | TFLite int8 "
        "| TFLite file / arena B | TFLite µs/step |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in cls:
        lines.append(
            f"| {r['dataset']} | {r['cell']} | {r['hidden']} | {_inputs(r)} | {r['float']:.2f} | "
            f"{r['int8_ptq']:.2f} | "
            f"{r['int8_qat']:.2f} | {_opt(r, 'int8x16', '.2f')} | {_opt(r, 'int8x16_qat', '.2f')} | "
            f"{r['int16h']:.2f} | {r['ptq_drop_pp']:+.2f} | {r['qat_drop_pp']:+.2f} | "
            f"{_opt(r, 'x16_drop_pp', '+.2f')} | {_opt(r, 'x16_qat_drop_pp', '+.2f')} | "
            f"{r['int16h_drop_pp']:+.2f} | {r['flash_bytes']} ({r['int16h_flash_bytes']}) | "
            f"{r['ram_bytes']} ({r['int16h_ram_bytes']}) | "
            f"{r['m4_instructions']} ({r['int16h_m4_instructions']}) | {_tflite_cells(r)} |"
        )
    lines += [
        "",
        "## Regression (held-out RMSE in the target's units; increase over float in % of the target std)",
        "",
        "| dataset | cell | hidden | input | float | int8 PTQ | int8 QAT | int16-h | PTQ +% std "
        "| int16-h +% std | flash B (int16-h) | RAM B (int16-h) | TFLite int8 | TFLite file / arena B "
        "| TFLite µs/step |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reg:
        lines.append(
            f"| {r['dataset']} | {r['cell']} | {r['hidden']} | {_inputs(r)} | {r['float']:.4g} | "
            f"{r['int8_ptq']:.4g} | "
            f"{r['int8_qat']:.4g} | {r['int16h']:.4g} | {r['int8_ptq_pct_std']:+.3f} | "
            f"{r['int16h_pct_std']:+.3f} | {r['flash_bytes']} ({r['int16h_flash_bytes']}) | "
            f"{r['ram_bytes']} ({r['int16h_ram_bytes']}) | "
            f"{_tflite_cells(r)} |"
        )
    lines += [
        "",
        "Reading the tables: int8 PTQ and QAT are the int8 weights and hidden state as `tinylstm export` and "
        "`train --qat` give them by default, the input's width by --input-bits auto "
        '(docs/integer-contract.md, "int16 input": an int16 input where the 8-bit one keeps the outputs '
        "more than 5 % of their spread from float's and the int16 one comes closer; QAT fine-tunes for what "
        "export chooses for the float model); `input` says what the seeds' exports chose, and the flash, RAM "
        "and instructions are the "
        "first seed's. The QAT column fine-tunes more epochs through the integer contract after the "
        "float training, so part of a QAT gain can be that extra training, not quantization awareness. "
        "One held-out sequence is 1 pp on ACSF1 (100), 2 pp on PickupGestureWiimoteZ (50) and 4.5 pp on "
        "UnitTest (22). ACSF1's drops come from its 8-bit input (docs/integer-contract.md, Input). A stacked "
        "model (ACSF1: 22 samples per "
        "step) has its instructions and µs per sample. The drops are "
        "against the float model before fine-tuning. QAT keeps the float weights when no epoch lowers the "
        "validation loss (`qat_best_epoch` 0 in the JSON, one per seed). int16-h is the float-trained model "
        "exported with "
        "`--hidden-bits 16` (int8 weights, int16 Q0.15 h): the same model data, 2x the state RAM, the "
        "instructions of the int16-h step. TFLite: the same float weights through TensorFlow Lite's standard "
        "full-integer int8 recipe (benchmarks/tflite_peer.py); file bytes are the .tflite flatbuffer, the "
        "arena is TFLite Micro's (n/m: not measured), µs per step on this host's LiteRT interpreter. The "
        "regression goal is read as |int16-h RMSE - float RMSE|: a row whose integer model scores *better* "
        "than float by more than 0.5 % of the std also misses it, as it departs from the float model. "
        "int8-x16: int8 weights and h with an int16 input (`--input-bits 16`, docs/integer-contract.md, "
        '"int16 input"): the same model data and state RAM as int8 but 1 B more per input value (stacked: '
        "per step buffered); PTQ is the float-trained model exported so, QAT the same training fine-tuned "
        "for it (`--qat-input-bits 16`); a dash: a row measured before the column.",
    ]
    lines += ["", "## Goals", ""] + [f"- {g}" for g in res["goals"]] + [""]
    return "\n".join(lines)


def goals(rows: list[dict[str, Any]]) -> list[str]:
    cls = [r for r in rows if r["task"] == "classification"]
    reg = [r for r in rows if r["task"] != "classification"]
    small = [r for r in cls if r["hidden"] <= 16 and r["ptq_drop_pp"] > GOAL_QAT_PP]
    met = [r for r in small if r["qat_drop_pp"] <= GOAL_QAT_PP]

    def verdict(bad: list[dict[str, Any]], key: str, fmt: str) -> str:
        listed = ", ".join(f"{r['dataset']} {r['cell']} {r['hidden']}: {format(r[key], fmt)}" for r in bad)
        return "(met)" if not bad else f"(NOT met: {listed})"

    missed = [r for r in small if r not in met]
    out = [
        f"QAT int8 within {GOAL_QAT_PP} pp of float at hidden 8/16 where PTQ drops more: "
        f"{len(met)} of {len(small)} such rows {verdict(missed, 'qat_drop_pp', '+.2f')}"
    ]
    x16 = [r for r in small if r.get("x16_qat_drop_pp") is not None]
    if x16:
        ptq16 = [r for r in x16 if r["x16_drop_pp"] > GOAL_QAT_PP]
        qat16 = [r for r in x16 if r["x16_qat_drop_pp"] > GOAL_QAT_PP]
        out.append(
            f"the same rows with an int16 input on the int8 h and weights (int8-x16, --input-bits 16): PTQ "
            f"within {GOAL_QAT_PP} pp on {len(x16) - len(ptq16)} of {len(x16)} "
            f"{verdict(ptq16, 'x16_drop_pp', '+.2f')}, QAT (--qat-input-bits 16) on "
            f"{len(x16) - len(qat16)} of {len(x16)} {verdict(qat16, 'x16_qat_drop_pp', '+.2f')}"
            + "".join(
                f"; {r['dataset']} {r['cell']} {r['hidden']} was measured before the column"
                for r in small
                if r not in x16
            )
        )
    bad16 = [r for r in cls if r["int16h_drop_pp"] > GOAL_INT16_PP]
    out.append(
        f"int16 hidden state within {GOAL_INT16_PP} pp of float accuracy: {len(cls) - len(bad16)} of "
        f"{len(cls)} classification rows {verdict(bad16, 'int16h_drop_pp', '+.2f')}"
    )
    bad_reg = [r for r in reg if abs(r["int16h_pct_std"]) > GOAL_INT16_RMSE_PCT]
    out.append(
        f"regression RMSE with int16-h within {GOAL_INT16_RMSE_PCT} % of the target std of float: "
        f"{len(reg) - len(bad_reg)} of {len(reg)} rows {verdict(bad_reg, 'int16h_pct_std', '+.3f')}"
    )
    with_tfl = [r for r in rows if "file_bytes" in (r.get("tflite") or {})]
    if not with_tfl:
        out.append("every TinyLSTM row smaller than TFLite's: not measured (no TFLite rows in this run)")
    else:
        bigger = [
            r
            for r in with_tfl
            if r["model_data_bytes"] >= r["tflite"]["file_bytes"]
            or (r["tflite"].get("arena_bytes") and r["int16h_ram_bytes"] >= r["tflite"]["arena_bytes"])
        ]
        out.append(
            f"every TinyLSTM row smaller than TFLite's (model data vs .tflite file; state RAM, int16-h too, "
            f"vs TFLite Micro arena): {len(with_tfl) - len(bigger)} of {len(with_tfl)} rows with a TFLite "
            "model "
            + (
                "(met)"
                if not bigger
                else "(NOT met: "
                + ", ".join(f"{r['dataset']} {r['cell']} {r['hidden']}" for r in bigger)
                + ")"
            )
        )
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    names = [n for n in dict.fromkeys(r["dataset"] for r in rows)]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        task = next(r["task"] for r in rows if r["dataset"] == name)
        for cell, marker in (("lstm", "o"), ("gru", "s")):
            rs = sorted(
                (r for r in rows if r["dataset"] == name and r["cell"] == cell),
                key=lambda r: r["flash_bytes"],
            )
            x = [r["flash_bytes"] for r in rs]
            ax.plot(x, [r["float"] for r in rs], marker + "-", c="0.5", label=f"{cell} float")
            ax.plot(x, [r["int8_ptq"] for r in rs], marker + "--", c="C0", label=f"{cell} int8 PTQ")
            ax.plot(x, [r["int8_qat"] for r in rs], marker + ":", c="C3", label=f"{cell} int8 QAT")
            ax.plot(x, [r["int16h"] for r in rs], marker + "-.", c="C2", label=f"{cell} int16-h")
            tfl = [(r["tflite"]["file_bytes"], r["tflite"]["value"]) for r in rs if "value" in r["tflite"]]
            if tfl:
                ax.plot(
                    *zip(*tfl, strict=True), marker, c="C1", mfc="none", label=f"{cell} TFLite int8 (file B)"
                )
        ax.set_xscale("log")
        ax.set_xlabel("flash bytes (model data + kernel)")
        ax.set_ylabel("held-out accuracy %" if task == "classification" else "held-out RMSE")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


Key = tuple[str, str, int, int]  # dataset, cell, hidden, seed
# per row, the median over the seeds of each of these (a drop: the median of each seed's own drop, which pairs
# a float model with its own quantized one)
MEDIAN_FIELDS = (
    "float",
    "float_after_qat",
    "int8_ptq",
    "int8_qat",
    "int8x16",
    "int8x16_qat",
    "int16h",
    "int8_ptq_pct_std",
    "int8_qat_pct_std",
    "int8x16_pct_std",
    "int8x16_qat_pct_std",
    "int16h_pct_std",
    "ptq_drop_pp",
    "qat_drop_pp",
    "x16_drop_pp",
    "x16_qat_drop_pp",
    "int16h_drop_pp",
    "seconds",
)


def _median(values: list[float]) -> float:
    return _sig(float(statistics.median(values)))


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One (dataset, cell, hidden) row from its seeds' rows: the MEDIAN_FIELDS and TFLite's score as medians
    over the seeds; bytes and instructions are the first seed's model's (they differ only where the
    recipe's cross-validation chose another pooled readout, listed under ``readouts``)."""
    out = dict(runs[0])
    for key in MEDIAN_FIELDS:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = _median(values) if values else None
    out["seeds"] = [r["seed"] for r in runs]
    out["readouts"] = [r["readout"] for r in runs]
    out["inputs"] = [r.get("ptq_input_bits") for r in runs]  # None: a row measured before auto (int8)
    out["qat_best_epoch"] = [r["qat_best_epoch"] for r in runs]
    out["qatx16_best_epoch"] = [r.get("qatx16_best_epoch") for r in runs]
    scored = [r["tflite"]["value"] for r in runs if "value" in (r.get("tflite") or {})]
    if scored and len(scored) == len(runs):
        out["tflite"] = {**runs[0]["tflite"], "value": _median(scored)}
    return out


def _finished_rows(path: Path | None, run: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    """The rows of a --rows file measured with the same settings, by (dataset, cell, hidden, seed; a row
    without a seed is seed 0's); a line a stopped process left half-written is skipped."""
    out: dict[Key, dict[str, Any]] = {}
    if path is None or not path.is_file():
        return out
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            print(f"{path}:{n}: not a whole JSON row (a stopped run?); measuring it again")
            continue
        if r.get("run") == run:
            r.setdefault("seed", 0)
            out[(r["dataset"], r["cell"], r["hidden"], r["seed"])] = r
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two datasets, hidden 8 and 16, few epochs")
    ap.add_argument("--hidden", help="comma-separated hidden sizes (default 8,16,32,64; regression <= 32)")
    ap.add_argument("--datasets", help="comma-separated panel sets to measure (default: all)")
    ap.add_argument("--seeds", help="comma-separated training seeds, each row their median (default 0,1,2)")
    ap.add_argument(
        "--rows",
        type=Path,
        help="a JSON-lines file of finished rows: each new row is appended, rows already in it are not "
        "measured again, and the results hold every row of it that this run's panel and sizes cover "
        "(several processes with different --datasets can share one)",
    )
    ap.add_argument(
        "--note", default="", help="a sentence appended to the results' note (what a partial run kept)"
    )
    args = ap.parse_args(argv)
    names = panel(args.quick)
    chosen = tuple(args.datasets.split(",")) if args.datasets else names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise SystemExit(f"unknown datasets {', '.join(unknown)}: the panel is {', '.join(names)}")
    if args.datasets and args.rows is None:
        raise SystemExit(
            "--datasets measures part of the panel: give --rows FILE so the results hold all of it"
        )
    hidden: tuple[int, ...] = (8, 16) if args.quick else (8, 16, 32, 64)
    if args.hidden:
        hidden = tuple(int(h) for h in args.hidden.split(","))
    reg_hidden = tuple(h for h in hidden if h <= 32)
    seeds: tuple[int, ...] = (0,) if args.quick else (0, 1, 2)
    if args.seeds:
        seeds = tuple(int(v) for v in args.seeds.split(","))
    epochs = 8 if args.quick else None
    qat_epochs = 3 if args.quick else QAT_EPOCHS
    run = {
        "quick": args.quick,
        "epochs": epochs,
        "qat_epochs": qat_epochs,
        "input_bits": AUTO_INPUT_BITS,
    }  # what a reusable row was run with
    done = _finished_rows(args.rows, run)
    with tempfile.TemporaryDirectory(prefix="tinylstm-acc-") as tmp:
        for name, train, test in datasets(chosen):
            for cell, h, seed in (
                (c, h, s)
                for c in ("lstm", "gru")
                for h in (hidden if train.task == "classification" else reg_hidden)
                for s in seeds
            ):
                if (name, cell, h, seed) in done:
                    continue
                work = Path(tmp) / f"{name}-{cell}-{h}-{seed}"
                r = row(name, train, test, cell, h, epochs, qat_epochs, seed, work)
                r["run"] = run
                print(json.dumps(r), flush=True)
                done[(name, cell, h, seed)] = r
                if args.rows is not None:
                    with args.rows.open("a") as f:
                        f.write(json.dumps(r) + "\n")
    for key, r in _finished_rows(args.rows, run).items():  # what other processes added meanwhile
        done.setdefault(key, r)
    seed_rows = [
        [done[(n, c, h, s)] for s in seeds if (n, c, h, s) in done]
        for n in names
        for c in ("lstm", "gru")
        for h in sorted({*hidden, *reg_hidden})
    ]
    rows = [median_row(runs) for runs in seed_rows if runs]
    res = {
        "date": time.strftime("%Y-%m-%d"),
        "note": f"{'quick mode, 8 float epochs, ' if args.quick else ''}the training recipe's float training "
        "(trainer/recipe.py: batch and epochs from the data, one-cycle AdamW, the last epoch; a 15 % "
        "validation split held back for QAT), "
        f"{qat_epochs} QAT epochs, the median of seeds {', '.join(map(str, seeds))} (a drop: the median "
        f"of each seed's own drop; the watch split is drawn per seed, so its test windows differ), 1 layer, "
        f"hidden {', '.join(map(str, hidden))}; flash, RAM and instructions for {BOARD} (Cortex-M4F); rows "
        "taken from a --rows file keep the numbers of the run that measured them; "
        f"{tflite_note()}." + (f" {args.note}" if args.note else ""),
        "rows": rows,
        "goals": goals(rows),
        "seed_rows": [r for runs in seed_rows for r in runs],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "accuracy.json").write_text(json.dumps(res, indent=1) + "\n")
    (RESULTS / "accuracy.md").write_text(render_md(res))
    plot(rows, RESULTS / "accuracy.png")
    return res


if __name__ == "__main__":
    main()
