"""`tinylstm train`: load a dataset, train a TinyLSTM/TinyGRU, write model.pt, curves.png, metrics.json."""

from __future__ import annotations

import argparse
from typing import Any

from tinylstm.api import train
from tinylstm.contract.cells import NAMES as CELL_NAMES
from tinylstm.contract.constants import MAX_HIDDEN, MAX_LAYERS
from tinylstm.contract.readouts import NAMES as READOUT_NAMES
from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.augment import Augment
from tinylstm.trainer.baselines import Baselines, Interval
from tinylstm.trainer.outputs import check_output_dir
from tinylstm.trainer.recipe import SCHEDULES, SELECTIONS
from tinylstm.trainer.train import SMALL_HIDDEN, TrainConfig

QAT_EPOCHS = 10  # --qat without --qat-epochs

DEFAULTS = TrainConfig()


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="train a small LSTM/GRU on a dataset",
        description="Train a small LSTM/GRU. Writes OUT/model.pt, OUT/curves.png and OUT/metrics.json.",
    )
    p.add_argument(
        "--data",
        default="watch",
        help="builtin name (watch) or a .ts/.tsv/.arff/.csv/.npz file (default: watch)",
    )
    p.add_argument("--cell", choices=CELL_NAMES, default=DEFAULTS.cell)
    p.add_argument("--hidden", type=int, default=DEFAULTS.hidden, help=f"hidden units (1..{MAX_HIDDEN})")
    p.add_argument("--layers", type=int, default=DEFAULTS.layers, help=f"stacked layers (1..{MAX_LAYERS})")
    p.add_argument("--epochs", type=int, help="epochs (default: from the data size, printed with the reason)")
    p.add_argument(
        "--batch-size", type=int, help="batch size (default: from the number of training sequences)"
    )
    p.add_argument(
        "--lr",
        type=float,
        default=DEFAULTS.lr,
        help=f"peak learning rate of the schedule (default {DEFAULTS.lr:g})",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=DEFAULTS.schedule,
        help="learning-rate schedule: one-cycle (warm-up, cosine down; default) or constant",
    )
    p.add_argument(
        "--weight-decay", type=float, default=DEFAULTS.weight_decay, help="AdamW weight decay (default 0.01)"
    )
    p.add_argument(
        "--label-smoothing",
        type=float,
        default=DEFAULTS.label_smoothing,
        help="classification label smoothing (default 0.1)",
    )
    p.add_argument(
        "--no-augment",
        action="store_true",
        help="no augmentation (default: gain, offset and jitter per batch)",
    )
    p.add_argument(
        "--select",
        choices=SELECTIONS,
        help="model selection: the last epoch (classification's default), the lowest validation loss (early "
        "stopping), or the epoch budget by cross-validation then all data (small regression sets' default)",
    )
    p.add_argument(
        "--readout",
        choices=READOUT_NAMES,
        help="what the head reads: the last h, or its mean or maximum over the window (default: for one "
        "label per window of 64+ steps mean or max by cross-validation where affordable, else mean; mean for "
        "a window regression; last otherwise); it runs on the board too",
    )
    p.add_argument(
        "--stack",
        type=int,
        metavar="K",
        help="input stacking: K consecutive samples per recurrent step, so the board runs the layers on "
        "every K-th sample, K times less work (default: windows of 256+ samples run as 64-127 steps, else 1)",
    )
    p.add_argument(
        "--bidirectional",
        action="store_true",
        help="window classification: a second stack runs over each window backwards at its end, and the head "
        "reads both (windows of one length; the board keeps the window's inputs in RAM: `build` reports it)",
    )
    p.add_argument("--clip", type=float, default=DEFAULTS.clip, help="gradient-norm clipping")
    p.add_argument("--patience", type=int, help="with --select best: early-stopping patience (default 10)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument(
        "--val",
        type=float,
        help="validation fraction (default: 0.15 with --select best or --qat, else 0: all data trains)",
    )
    p.add_argument("--test", type=float, default=DEFAULTS.test, help="test fraction")
    p.add_argument(
        "--test-data", help="explicit held-out file (e.g. a UEA *_TEST.ts) instead of a --test split"
    )
    p.add_argument(
        "--window",
        type=int,
        help="window length in steps (watch: 128 = 2.56 s; CSV stream mode: 64; a CSV group of one label: "
        "whole unless given); at most the longest recording",
    )
    p.add_argument(
        "--hop",
        type=int,
        help="steps between windows (watch: 32; CSV: the window; a longer hop skips samples, with a warning)",
    )
    p.add_argument("--target", help="CSV target column (default: 'label', else the last column)")
    p.add_argument("--group", help="CSV sequence-id column")
    p.add_argument(
        "--channels", help="CSV input columns, comma-separated (default: all other numeric columns)"
    )
    p.add_argument("--task", choices=["auto", "classification", "regression"], default="auto")
    p.add_argument("--forecast", type=int, help="CSV regression: predict the target this many steps ahead")
    p.add_argument(
        "--missing",
        choices=["error", "interpolate"],
        help=".ts, .tsv, .arff: how to treat missing values ('?', NaN)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help=f"PyTorch intra-op threads (default: 1 up to hidden {SMALL_HIDDEN}, "
        "where more only wait on a busy machine; PyTorch's default above)",
    )
    p.add_argument(
        "--dropout", type=float, default=DEFAULTS.dropout, help="dropout between stacked layers (0..1)"
    )
    p.add_argument(
        "--qat",
        action="store_true",
        help="after float training, fine-tune through the integer contract (quantization-aware training) "
        "so the int8 export keeps the accuracy; most useful for small models (hidden 8-16)",
    )
    p.add_argument(
        "--qat-epochs", type=int, help=f"with --qat: fine-tuning epochs (default {QAT_EPOCHS}, early-stopped)"
    )
    p.add_argument("--qat-lr", type=float, help="with --qat: its learning rate (default --lr / 10)")
    p.add_argument(
        "--qat-hidden-bits",
        type=int,
        choices=[8, 16],
        help="with --qat: the hidden state to fine-tune for, as `tinylstm export --hidden-bits` will "
        "quantize it (default 8)",
    )
    p.add_argument(
        "--qat-input-bits",
        type=int,
        choices=[8, 16],
        help="with --qat: the input to fine-tune for, as `tinylstm export --input-bits` will quantize it "
        "(default: an int16-h model's int16; for an int8 h what `export --input-bits auto` chooses for the "
        "float model, which the export then keeps)",
    )
    p.add_argument("--out", default="runs/latest", help="output directory (default: runs/latest)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.out)  # first, as tinylstm.train does: before the --qat flags are judged
    if not args.qat and (
        args.qat_epochs is not None
        or args.qat_lr is not None
        or args.qat_hidden_bits is not None
        or args.qat_input_bits is not None
    ):
        raise TinyLSTMError(
            "--qat-epochs, --qat-lr, --qat-hidden-bits and --qat-input-bits set up quantization-aware "
            "training: add --qat"
        )
    options: dict[str, Any] = {
        "window": args.window,
        "hop": args.hop,
        "target": args.target,
        "group": args.group,
        "channels": args.channels,
        "task": args.task,
        "forecast": args.forecast,
        "missing": args.missing,
    }
    result = train(
        args.data,
        args.out,
        test_data=args.test_data,
        dataset_options=options,
        log=print,  # the data's description and the recipe's choices
        cell=args.cell,
        hidden=args.hidden,
        layers=args.layers,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        clip=args.clip,
        patience=args.patience,
        seed=args.seed,
        val=args.val,
        schedule=args.schedule,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        augment=None if args.no_augment else Augment(),
        select=args.select,
        readout=args.readout,
        stack=args.stack,
        bidirectional=args.bidirectional,
        test=args.test,
        progress=not args.quiet,
        threads=args.threads,
        dropout=args.dropout,
        qat_epochs=(QAT_EPOCHS if args.qat_epochs is None else args.qat_epochs) if args.qat else 0,
        qat_lr=args.qat_lr,
        qat_hidden_bits=args.qat_hidden_bits or DEFAULTS.qat_hidden_bits,
        qat_input_bits=args.qat_input_bits,
    )
    m = result.metrics
    split_name = "test" if "test_loss" in m else "val" if "val_loss" in m else "train"
    classification = result.meta.task == "classification"
    if classification:
        summary = f"{split_name} accuracy {m[f'{split_name}_accuracy']:.3f}"
    else:
        summary = f"{split_name} RMSE {m[f'{split_name}_rmse']:.4g}, MAE {m[f'{split_name}_mae']:.4g}"
    kept = "best epoch" if args.select == "best" else "kept epoch"
    epochs = f"{kept} {m['best_epoch']} of {m['epochs_run']}"
    qat = m.get("qat")
    if qat:  # the score is the fine-tuned model's; epochs_run counts both stages, train_seconds the float one
        summary += " after quantization-aware fine-tuning"
        epochs = f"the float training's {kept} {m['best_epoch']} of {m['epochs_run'] - qat['epochs_run']}"
    print(f"{summary} ({epochs}, {m['train_seconds']:.1f} s; sizes {m['sizes']})")
    if "baselines" in m:
        _verdict(Baselines(**m["baselines"]), m, classification)
    if qat:
        name = "accuracy" if qat["metric"] == "accuracy" else "RMSE"
        split_q = "test" if "test" in qat["before"]["float"] else "val"
        before, after = qat["before"]["fake_quant"][split_q], qat["after"]["fake_quant"][split_q]
        print(
            f"quantization-aware fine-tuning: {split_q} {name} through the integer contract {before:.4g} -> "
            f"{after:.4g} (best epoch {qat['best_epoch']} of {qat['epochs_run']}, {qat['seconds']:.1f} s; "
            f"lr {qat['lr']:.3g}, weight decay {qat['weight_decay']:g}, augmentation: {qat['augment']})"
        )
        if qat.get("input_choice", "given") != "given":  # --qat-input-bits left to export's auto
            print(f"  input {qat['input_choice']}")
    for path in (result.checkpoint_path, result.curves_path, result.metrics_path):
        print(f"wrote {path}")
    return 0


def _verdict(baselines: Baselines, m: dict[str, Any], classification: bool) -> None:
    """The held-out score beside the naive baselines and the 1-NN one, and what to try when it does not beat
    them."""
    if classification:
        interval = m.get("test_accuracy_interval")
        beats, line = baselines.verdict(
            accuracy=m["test_accuracy"], interval=None if interval is None else Interval(**interval)
        )
        nearest = baselines.nearest_verdict(accuracy=m["test_accuracy"])
    else:
        beats, line = baselines.verdict(rmse=m["test_rmse"])
        nearest = baselines.nearest_verdict(rmse=m["test_rmse"])
    if not beats:
        print(
            f"WARNING: the model does not beat the naive baselines: {line}. Try: more epochs (--epochs), a "
            "larger or smaller model (--hidden), the other cell (--cell), a shorter --window, or more data; "
            "`tinylstm search` tries architectures for you"
        )
    else:
        print(f"baselines: {line}: the model beats them")
    if baselines.nearest_skipped is not None:
        print(f"baselines: no 1-NN baseline ({baselines.nearest_skipped})")
    if nearest is None or not beats:
        return
    matches, nn_line = nearest
    if matches:
        print(f"baselines: {nn_line}: the model matches or beats it")
        return
    bidirectional = "--bidirectional on short windows of one length, " if classification else ""
    print(
        f"WARNING: the model scores below the nearest training window: {nn_line}; it has learned less than "
        "matching the training windows. Try: another readout (--readout), a larger model (--hidden), another "
        f"cell (--cell), {bidirectional}or more data; `tinylstm search` tries architectures for you"
    )
