"""Where an int8 model's accuracy goes: its 8-bit input or its int8 hidden state.

On ACSF1 (a power meter, 1,460 steps, run stacked 22 samples per step) int8 loses 1-2 pp to float at hidden 8
and 16 and quantization-aware fine-tuning does not win it back (benchmarks/results/accuracy.md). Per seed and
model (the recipe's training with the accuracy benchmark's 15 % validation split, hidden 16, LSTM and GRU),
this scores on the official held-out file:

- float;
- int8 symmetric: the export as it was before asymmetric input ranges, the closest of the symmetric candidate
  ranges alone (codegen/input_range.py);
- int8: the export (integer golden == the C kernel), which may choose an asymmetric range (a zero point);
- for both int8 models, the held-out series whose decision differs from the float model's (what quantization
  should keep small, whichever way each difference happens to move the accuracy);
- the fake-quantized forward QAT trains through (codegen/qat.py) at that export's scales: the int8 model as
  QAT sees it;
- the same forward with an int16 input at the int16-h export's input scale, h and weights still int8
  (``Ranges.input_bits``), which isolates the input's share;
- int8-x16: the export with ``--input-bits 16``, the integer model of that forward (an int16 input on the int8
  h and weights; docs/integer-contract.md, "int16 input"; golden == the C kernel);
- int16-h: the export with ``--hidden-bits 16`` (an int16 input and hidden state).

Writes benchmarks/results/input_bits.json and .md.

    python benchmarks/bench_input_bits.py [--seeds 0,1,2] [--cells lstm,gru]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_accuracy import datasets

from tinylstm.codegen.export import ModelSource, calibration_sequences, data_splits, export
from tinylstm.codegen.input_range import (
    RANGE_FACTORS,
    FloatReference,
    candidate_ranges,
    output_error,
    subsample,
)
from tinylstm.codegen.qat import fake_quant_outputs, ranges_of
from tinylstm.codegen.quantize import IntModel, calibrate, quantize
from tinylstm.codegen.spec import normalise
from tinylstm.codegen.store import load_float_model, load_int_model
from tinylstm.host.analysis.check import held_out_quality, quality_on
from tinylstm.trainer.train import TrainConfig, fit

RESULTS = Path(__file__).parent / "results"
DATASET = "ACSF1"
HIDDEN = 16
COLUMNS = (
    "float",
    "int8_symmetric",
    "int8",
    "fake_quant_int8",
    "fake_quant_int16_input",
    "int8x16",
    "int16h",
)
FIDELITY = ("differ_symmetric", "differ")  # held-out series whose int8 decision differs from float's


def symmetric_int8(export_dir: Path, train: Any) -> IntModel:
    """The int8 model of ``export_dir``'s float weights with the closest symmetric input range: export's rule
    over its symmetric candidates alone."""
    m, doc = load_int_model(export_dir)
    fm = load_float_model(export_dir, doc)
    seqs = calibration_sequences(fm, train)
    reference = FloatReference(fm, subsample(seqs, fm.stack))
    symmetric = candidate_ranges(calibrate(fm, seqs), seqs)[: len(RANGE_FACTORS)]
    return quantize(fm, min(symmetric, key=lambda c: reference.error(quantize(fm, c, 8))), 8)


def differing(export_dir: Path, m: IntModel, test: Any) -> int:
    """Held-out series whose integer decision (``m``) differs from the float model's."""
    fm = load_float_model(export_dir, load_int_model(export_dir)[1])
    err = output_error(fm, m, [normalise(fm, s) for s in test.sequences])
    return round(err.disagreement * len(test))


def fake_quant_accuracy(export_dir: Path, test: Any, input_from: Path | None = None) -> float:
    """Held-out accuracy (%) of the fake-quantized forward at ``export_dir``'s scales; with ``input_from``
    (an int16-h export of the same weights) its int16 input at that export's input scale instead."""
    m, doc = load_int_model(export_dir)
    ranges = ranges_of(m)
    if input_from is not None:
        wide = load_int_model(input_from)[0]
        # an int16 input is symmetric: no zero point
        ranges = dataclasses.replace(
            ranges, input_bits=wide.input_bits, input_scale=wide.input_scale, input_zero=()
        )
    outputs = fake_quant_outputs(load_float_model(export_dir, doc), m, test.sequences, ranges=ranges)
    guesses = np.array([y[-1].argmax() for y in outputs])
    return 100.0 * float(np.mean(guesses == np.asarray(test.labels)))


def row(train: Any, test: Any, cell: str, seed: int, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    config = TrainConfig(cell=cell, hidden=HIDDEN, val=0.15, progress=False, seed=seed)
    run = fit(train, config, work / "run", test)
    export(ModelSource(str(run.checkpoint_path)), work / "int8", input_bits=8)  # not auto: the int8 input
    export(ModelSource(str(run.checkpoint_path)), work / "int16h", hidden_bits=16)
    export(ModelSource(str(run.checkpoint_path)), work / "int8x16", input_bits=16)
    q8, q16 = held_out_quality(work / "int8"), held_out_quality(work / "int16h")
    m8 = load_int_model(work / "int8")[0]
    calibration_split = data_splits(ModelSource(str(run.checkpoint_path)).load(), None)[0]
    sym = symmetric_int8(work / "int8", calibration_split)
    fm = load_float_model(work / "int8", load_int_model(work / "int8")[1])
    return {
        "cell": cell,
        "seed": seed,
        "input_zero": m8.calibration.input_zero,
        "float": float(q8["float"]),
        "int8_symmetric": float(quality_on(fm, sym, test)["int8"]),
        "int8": float(q8["int8"]),
        "differ_symmetric": differing(work / "int8", sym, test),
        "differ": differing(work / "int8", m8, test),
        "fake_quant_int8": fake_quant_accuracy(work / "int8", test),
        "fake_quant_int16_input": fake_quant_accuracy(work / "int8", test, input_from=work / "int16h"),
        "int8x16": float(held_out_quality(work / "int8x16")["int8"]),  # check's key for the integer model
        "int16h": float(q16["int8"]),  # check's key for the integer model, int16-h here
        "seconds": round(time.perf_counter() - started, 1),
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per cell the medians of the columns, and the reading: the median over seeds of each seed's own loss to
    float (as benchmarks/results/accuracy.md counts a drop) with the int8 input and with an int16 input."""
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    medians = {
        cell: {c: statistics.median(r[c] for r in rows if r["cell"] == cell) for c in COLUMNS}
        for cell in cells
    }

    def drop(cell: str, column: str) -> float:
        return statistics.median(r["float"] - r[column] for r in rows if r["cell"] == cell)

    reading = (
        "Reading: the median over seeds of each seed's loss to float of the fake-quantized forward, with "
    )
    reading += "the int8 input, then with an int16 input (h and weights int8): " + "; ".join(
        f"{cell} {drop(cell, 'fake_quant_int8'):+.1f} pp -> {drop(cell, 'fake_quant_int16_input'):+.1f} pp"
        for cell in cells
    )
    reading += ". What the int16 input leaves is the int8 h's and weights' share; the rest is the input's. "
    reading += "The integer model with that input (int8-x16, --input-bits 16): " + "; ".join(
        f"{cell} {drop(cell, 'int8x16'):+.1f} pp" for cell in cells
    )
    reading += (
        ". The zero point (asymmetric int8 input ranges), in held-out series whose int8 decision differs "
    )
    reading += "from float's, summed over seeds, symmetric -> as exported: " + "; ".join(
        f"{cell} {sum(r['differ_symmetric'] for r in rows if r['cell'] == cell)} -> "
        f"{sum(r['differ'] for r in rows if r['cell'] == cell)}"
        for cell in cells
    )
    reading += "."
    return {"medians": medians, "reading": reading}


def render(doc: dict[str, Any]) -> str:
    lines = [
        "# Where an int8 model's accuracy goes: the 8-bit input or the int8 hidden state",
        "",
        f"Generated by `python benchmarks/bench_input_bits.py` on {doc['date']} (host). {DATASET}, "
        f"hidden {HIDDEN}, the recipe's training with a 15 % validation split (as "
        "benchmarks/bench_accuracy.py), held-out accuracy (%) on the official test file (100 series: one "
        "series is 1 pp). `int8 symmetric`: the closest symmetric input range alone, as export chose before "
        "asymmetric ranges; `int8`: the export, whose range may be asymmetric (`zero`: its zero point, empty "
        "when symmetric); `differ`: held-out series whose int8 decision differs from float's, symmetric / as "
        "exported. `fake-quant int8`: the forward QAT trains through at the int8 export's scales; "
        "`fake-quant int16 input`: the same with an int16 input at the int16-h export's input scale, h and "
        "weights int8; `int8-x16`: the integer model of that forward, the export with `--input-bits 16` "
        "(golden == the C kernel).",
        "",
        "| cell | seed | float | int8 symmetric | int8 | fake-quant int8 | fake-quant int16 input | int8-x16 "
        "| int16-h | zero | differ |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| {r['cell']} | {r['seed']} | "
            + " | ".join(f"{r[c]:.1f}" for c in COLUMNS)
            + f" | {r['input_zero']} | {r['differ_symmetric']} / {r['differ']} |"
        )
    for cell, med in doc["medians"].items():
        lines.append(f"| {cell} | median | " + " | ".join(f"{med[c]:.1f}" for c in COLUMNS) + " | | |")
    lines += ["", doc["reading"], ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cells", default="lstm,gru")
    args = ap.parse_args()
    ((_, train, test),) = list(datasets((DATASET,)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cell in args.cells.split(","):
            for seed in map(int, args.seeds.split(",")):
                rows.append(row(train, test, cell, seed, Path(tmp) / f"{cell}-{seed}"))
                print(json.dumps(rows[-1]), flush=True)
    doc = {"date": time.strftime("%Y-%m-%d"), "dataset": DATASET, "hidden": HIDDEN, "rows": rows}
    doc |= summary(rows)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "input_bits.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "input_bits.md").write_text(render(doc))
    print(render(doc))


if __name__ == "__main__":
    main()
