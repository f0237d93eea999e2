"""`tinylstm prune`: remove whole hidden units from a trained model, fine-tuning, down to a unit count or a
board's budget."""

from __future__ import annotations

import argparse

from tinylstm.api import DEFAULT_PRUNE_STEP, prune
from tinylstm.contract.constants import HIDDEN_BITS, input_bits
from tinylstm.host.boards.registry import BOARDS
from tinylstm.host.cli.options import add_moved_data
from tinylstm.host.search.cost import Cost


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="make a trained model smaller: remove whole hidden units, fine-tune, repeat",
        description="Structured pruning: remove the least important hidden units (mean |h| x the norm of the "
        "weights reading them) of every layer in rounds, fine-tuning after each, down to --hidden units or "
        "to the most units whose architecture fits --board within --max-flash/--max-ram/--max-latency-ms. "
        "The result is an ordinary, smaller dense checkpoint: export, check and build it as any other.",
    )
    p.add_argument("model", help="TinyLSTM checkpoint (model.pt) written by tinylstm train")
    p.add_argument("--out", required=True, help="output directory: model.pt and prune-report.json")
    p.add_argument("--hidden", type=int, help="units per layer to keep")
    p.add_argument("--board", choices=sorted(BOARDS), help="the board whose budget the pruned model must fit")
    p.add_argument("--max-flash", help="with --board: model data + kernel code, e.g. 8k")
    p.add_argument("--max-ram", help="with --board: the model state the kernel keeps, e.g. 1k")
    p.add_argument(
        "--max-latency-ms", type=float, help="with --board: the slowest sample at the board's clock"
    )
    p.add_argument(
        "--step",
        type=float,
        default=DEFAULT_PRUNE_STEP,
        help=f"the fraction of units one round removes at most (default {DEFAULT_PRUNE_STEP})",
    )
    p.add_argument(
        "--epochs", type=int, help="fine-tuning epochs per round (default: the recipe's / 4, >= 5)"
    )
    p.add_argument(
        "--lr", type=float, help="fine-tuning one-cycle peak learning rate (default: training's / 3)"
    )
    p.add_argument("--seed", type=int, help="fine-tuning seed (default: the training's)")
    add_moved_data(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = prune(
        args.model,
        args.out,
        hidden=args.hidden,
        board=args.board,
        max_flash=args.max_flash,
        max_ram=args.max_ram,
        max_latency_ms=args.max_latency_ms,
        step=args.step,
        epochs=args.epochs,
        lr=args.lr,
        seed=args.seed,
        data=args.data,
        test_data=args.test_data,
        log=print,
    )
    test, size, hidden = report["test"], report["model_data_bytes"], report["hidden"]
    if test["before"] is not None:
        pct = report["metric"] == "accuracy"
        fmt = (lambda v: f"{100 * v:.1f} %") if pct else (lambda v: f"{v:.4g}")
        score = f"held-out {report['metric']} {fmt(test['before'])} -> {fmt(test['after'])} (float)"
    else:
        score = "no held-out split"
    print(
        f"pruned {hidden['before']} -> {hidden['after']} units per layer: model data {size['before']} -> "
        f"{size['after']} B ({size['saved']} B less); {score}"
    )
    if "board" in report:
        b = report["board"]
        before, after = (Cost(**b[k]).slowest_sample_ms for k in ("before", "after"))
        latency = (
            "" if before is None or after is None else f", slowest sample {before:.3g} -> {after:.3g} ms"
        )
        print(
            f"  on {b['name']}: flash {b['before']['flash_bytes']} -> {b['after']['flash_bytes']} B, RAM "
            f"{b['before']['ram_bytes']} -> {b['after']['ram_bytes']} B{latency}"
        )
    bits, in_bits = report["hidden_bits"], report["input_bits"]
    if report["source_qat"]:
        print(
            f"  the source's quantization-aware fine-tuning is not carried over (fine-tuning is float); "
            f"sizes are priced with the int{bits} hidden state and int{in_bits} input it was trained for"
        )
    wide = f" --hidden-bits {bits}" if bits != HIDDEN_BITS else ""
    # a budget was priced with this input: name it, as export's default (auto) could widen an int8 one
    named = "board" in report or in_bits != input_bits(bits)
    wide += f" --input-bits {in_bits}" if bits == HIDDEN_BITS and named else ""
    print(
        f"  wrote {args.out}/model.pt and {args.out}/prune-report.json; "
        f"next: tinylstm export {args.out}/model.pt{wide}"
    )
    return 0
