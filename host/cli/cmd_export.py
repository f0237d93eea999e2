"""`tinylstm export`: quantize a model on real data and write the C files and a report."""

from __future__ import annotations

import argparse
import sys

from tinylstm.api import DEPRECATED_LAYOUTS, export
from tinylstm.codegen.drift_reference import TRAINING
from tinylstm.codegen.input_range import AUTO_INPUT_BITS, INPUT16_TOLERANCE
from tinylstm.contract.cells import cell_type
from tinylstm.contract.constants import HIDDEN_BITS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="quantize to int8 and emit C (tl_<name>.h/.c) plus a report",
        description="Calibrate on real data, quantize to int8 and write the C model files.",
    )
    p.add_argument(
        "model", help="TinyLSTM checkpoint (model.pt), a state_dict (+ --description) or a saved nn.Module"
    )
    p.add_argument(
        "--data",
        help="calibration data: a dataset name or .ts/.tsv/.arff/.csv/.npz (default: the checkpoint's)",
    )
    p.add_argument(
        "--test-data",
        help="held-out data: the file a checkpoint was trained with (train --test-data), if it moved; for "
        "a user model, a held-out file scored instead of a 30 %% split of --data (all of it then calibrates)",
    )
    p.add_argument("--description", help="JSON description for a bare state_dict (docs/user-models.md)")
    p.add_argument(
        "--trust-module", action="store_true", help="allow loading a pickled nn.Module (runs its code)"
    )
    p.add_argument(
        "--name", default="model", help="C name: files tl_<name>.h/.c, symbol tl_<name> (default: model)"
    )
    p.add_argument("--out", default=None, help="output directory (default: <model dir>/export)")
    p.add_argument(
        "--layout",
        choices=["w8", "w16", "s8", "s16"],
        default="w8",
        help="gate weight layout of the C files: w8 (default, int8, smallest flash) or w16 (int16-widened "
        "weights, 2x the weight flash for fewer instructions per step on Cortex-M4/M7 with DSP; same "
        "outputs bit for bit; the .tlm blob and MicroPython stay int8). s8/s16: the old names",
    )
    p.add_argument(
        "--hidden-bits",
        type=int,
        choices=[8, 16],
        default=HIDDEN_BITS,
        help="the hidden state: 8 (default, int8 Q0.7) or 16 (int16x8: int16 Q0.15 h and an int16 input with "
        "int8 weights: closer to the float model, for regression, long streams and heavy-tailed inputs; 2x "
        "the state RAM, 2 B per input value, at most 256 input values per step; docs/integer-contract.md)",
    )
    p.add_argument(
        "--input-bits",
        type=input_bits_arg,
        default=AUTO_INPUT_BITS,
        help="the model input: 8, 16 (an int16 input with the int8 h and weights: keeps the detail an "
        "8-bit input loses on heavy-tailed or high-resolution sensors, for 2 B per input value and at most "
        "256 input values per step; an int16-h model's input is always int16) or auto (the default: int8 "
        f"unless its outputs differ from the float model's by more than {100 * INPUT16_TOLERANCE:.0f} %% of "
        "their spread on the calibration data and an int16 input comes closer; a --qat model's: what it was "
        "fine-tuned for; "
        'docs/integer-contract.md, "int16 input")',
    )
    p.set_defaults(func=run)


def input_bits_arg(value: str) -> int | str:
    """``--input-bits``: 8, 16 or auto."""
    if value in ("8", "16"):
        return int(value)
    if value == AUTO_INPUT_BITS:
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not an input width: choose 8, 16 or {AUTO_INPUT_BITS}")


def run(args: argparse.Namespace) -> int:
    layout = DEPRECATED_LAYOUTS.get(args.layout, args.layout)
    if layout != args.layout:
        print(
            f"tinylstm export: note: --layout {args.layout} is now called {layout} (int16-widened weights; "
            "in CMSIS-NN, s16 means int16 activations)",
            file=sys.stderr,
        )
    exp = export(
        args.model,
        args.out,
        data=args.data,
        test_data=args.test_data,
        description=args.description,
        trust_module=args.trust_module,
        name=args.name,
        layout=layout,
        hidden_bits=args.hidden_bits,
        input_bits=args.input_bits,
    )
    r, out = exp.report, exp.dir
    print(
        f"exported {'bidirectional ' if r.get('bidirectional') else ''}{r['cell'].upper()} "
        f"{r['layers']}x{r['hidden_size']} (input {r['input_size']}"
        + (f" x {r['stack']} samples per step" if r["stack"] > 1 else "")
        + f", output {r['output_size']}) hash {r['hash']}, weight layout {r['layout']}, "
        f"hidden state {r['hidden_format']}, input int{r['input_bits']}, readout {r['readout']}"
    )
    frac = f", cell frac bits {r['cell_frac']}" if cell_type(r["cell"]).cell_state else ""  # LSTM's c
    window = f" (the {r['window']}-sample window's inputs included)" if r.get("bidirectional") else ""
    print(f"  model data {r['model_data_bytes']} B, state {r['state_bytes']} B{window}{frac}")
    if r["input_choice"]["rule"] == AUTO_INPUT_BITS:
        print(f"  input {r['input_choice']['reason']}")
    print(f"  wrote {', '.join(str(out / f) for f in r['files'])}, {out / 'export-report.json'}")
    for warning in r["warnings"]:
        print(f"WARNING: {warning}")
    if r["drift_reference"]["data"] == TRAINING:
        why = (  # a regressor has no confidence: its alerts watch the outputs' range
            "whose confidence is higher than unseen data gives, so stream's confidence alerts fire sooner"
            if r["task"] == "classification"
            else "whose outputs the model fits more closely than unseen data's, so stream's output alerts "
            "fire sooner"
        )
        print(
            f"  note: no held-out data (trained with --test 0): the drift reference is the training split's, "
            f"{why}; train with --test-data or --test > 0 for a held-out reference"
        )
    return 0
