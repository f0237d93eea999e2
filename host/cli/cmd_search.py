"""`tinylstm search`: the most accurate LSTM/GRU that fits a board's flash, RAM and latency budget."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinylstm.api import DEFAULT_SPACE, search
from tinylstm.contract.cells import NAMES as CELL_NAMES
from tinylstm.contract.constants import MAX_INPUT
from tinylstm.contract.readouts import NAMES as READOUT_NAMES
from tinylstm.host.boards.registry import BOARDS
from tinylstm.host.search.selection import CV_BELOW_HELD_OUT, CV_FOLDS
from tinylstm.host.search.study import SELECTIONS, check_verdict
from tinylstm.trainer.recipe import STACK_MIN_STEPS, STACK_TARGET_STEPS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="find the most accurate model that fits a board (Optuna study)",
        description="Search cell, hidden size, layers, hidden-state bits, readout, input stacking, learning "
        "rate, dropout, QAT (and window) for the best held-out int8 accuracy (or RMSE) under flash, RAM and "
        "latency budgets on a board. Every architecture is priced on the board first and trials draw only "
        "those within the budget; each trial trains with the training recipe. Resumable: run the same "
        "command again to continue the study.",
    )
    p.add_argument("--data", required=True, help="dataset name or .ts/.tsv/.arff/.csv/.npz file")
    p.add_argument("--board", required=True, choices=sorted(BOARDS), help="the board the model must fit")
    p.add_argument("--max-flash", help="model data + kernel code, e.g. 32k")
    p.add_argument("--max-ram", help="the model state the kernel keeps, e.g. 4k")
    p.add_argument(
        "--max-latency-ms",
        type=float,
        help="the slowest sample on the board's core at its clock (a stacked model's: the one in k that runs "
        "the layers), so every sample is answered before the next",
    )
    p.add_argument("--trials", type=int, default=20, help="trained trials the study ends with (default 20)")
    p.add_argument(
        "--epochs", type=int, help="training epochs per trial (default: the recipe's, from the data size)"
    )
    p.add_argument(
        "--select",
        choices=SELECTIONS,
        help="model selection: last (the last epoch), best (the lowest validation loss: early stopping) or "
        "cv (the epoch budget by cross-validation, then all data trains); default: the recipe's (last for "
        "classification, cv for small regression sets)",
    )
    p.add_argument("--patience", type=int, help="with --select best: early-stopping patience (default 10)")
    p.add_argument(
        "--folds",
        type=int,
        help="how each trial is scored: 0: on its held-out split; k >= 2: by k-fold cross-validation on all "
        f"the data (each trial trains k more times); default: {CV_FOLDS} folds where the held-out split has "
        f"fewer than {CV_BELOW_HELD_OUT} sequences (windows cut from recordings: recordings), else the "
        "held-out split",
    )
    p.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        help="train the best trial's settings again on all the data for OUT/best-export (nothing held out: "
        "its estimate is the trial's score; golden == C and the blob verified on every sequence); default: "
        "where the trials were cross-validated (--no-refit: the best trial's own export)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampler and training seed: a study is reproducible")
    p.add_argument("--cells", default=",".join(CELL_NAMES), help="cells to try (default: all)")
    p.add_argument("--hidden", default=",".join(map(str, DEFAULT_SPACE.hidden)), help="hidden sizes to try")
    p.add_argument("--layers", default=",".join(map(str, DEFAULT_SPACE.layers)), help="layer counts to try")
    p.add_argument(
        "--hidden-bits",
        default=",".join(map(str, DEFAULT_SPACE.hidden_bits)),
        help="hidden-state formats to try: 8 (int8) and/or 16 (int16) (default: 8,16)",
    )
    p.add_argument(
        "--input-bits",
        default=",".join(map(str, DEFAULT_SPACE.input_bits)),
        help="the int8 hidden state's inputs to try: 8 and/or 16 (an int16 input, as `export --input-bits "
        "16`: for heavy-tailed or high-resolution sensors; an int16-h model's input is int16 always) "
        "(default: 8)",
    )
    p.add_argument(
        "--readouts",
        default=",".join(DEFAULT_SPACE.readouts),
        help=f"what the head reads, to try: {', '.join(READOUT_NAMES)} (mean and max pool over a window: "
        f"window data only; stream data tries last) (default: {','.join(DEFAULT_SPACE.readouts)})",
    )
    p.add_argument(
        "--stacks",
        help="input stacking to try: samples per recurrent step k, e.g. 1,4,16 (1: none; k * channels <= "
        f"{MAX_INPUT}) (default: the recipe's choice for the data, one value: k = median window // "
        f"{STACK_TARGET_STEPS} for windows of {STACK_MIN_STEPS} samples or more, else 1)",
    )
    p.add_argument("--windows", help="window lengths to try (datasets with a window option)")
    p.add_argument("--hop", type=int, help="steps between windows (dataset option)")
    p.add_argument("--no-qat", action="store_true", help="never use quantization-aware fine-tuning")
    p.add_argument(
        "--bidirectional",
        action="store_true",
        help="also try bidirectional architectures (window classification of one length; int8 h, no QAT)",
    )
    p.add_argument(
        "--storage", help="Optuna storage URL, e.g. postgresql://user:pw@host/db (default: OUT/study.db)"
    )
    p.add_argument("--study-name", default="tinylstm")
    p.add_argument("--workers", type=int, default=1, help="trial processes on this machine (default 1)")
    p.add_argument("--out", default="runs/search", help="output directory (default: runs/search)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tinylstm.host.cli.main import Terminated

    try:
        return _run(args)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the study keeps its finished trials
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"tinylstm search: {how}: run the same command again to continue the study", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    doc = search(
        args.data,
        args.board,
        max_flash=args.max_flash,
        max_ram=args.max_ram,
        max_latency_ms=args.max_latency_ms,
        trials=args.trials,
        epochs=args.epochs,
        select=args.select,
        folds=args.folds,
        refit=args.refit,
        patience=args.patience,
        seed=args.seed,
        cells=args.cells,
        hidden=args.hidden,
        layers=args.layers,
        hidden_bits=args.hidden_bits,
        input_bits=args.input_bits,
        readouts=args.readouts,
        stacks=args.stacks,
        windows=args.windows,
        hop=args.hop,
        qat=not args.no_qat,
        bidirectional=args.bidirectional,
        storage=args.storage,
        study_name=args.study_name,
        workers=args.workers,
        out=out,
        progress=not args.quiet,
    )
    c, archs = doc["counts"], doc["architectures"]
    fit = archs["fit"]
    listed = ", ".join(fit[:12]) + (f", ... ({len(fit) - 12} more in search.json)" if len(fit) > 12 else "")
    print(f"{len(fit)} of {archs['priced']} architectures fit the budget: {listed}")
    print(
        f"{c['complete'] + c['pruned']} trials trained ({c['pruned']} over the budget as measured), "
        f"{c['fail']} failed"
    )
    for t in doc["trials"]:
        if t.get("origin") and t["state"] == "complete":
            print(f"trial {t['number']} is {t['origin']} model, {t['params']['arch']}: {t['value']:.4g}")
    if doc["best"] is None:
        print("no trial trained to a bit-exact export within the budget: see search.md for why")
        code = 1
    else:
        b, m = doc["best"], doc["best"]["measured"]
        cv = m.get("cv")
        bits = (
            "int16-h"
            if b["params"].get("hidden_bits") == 16
            else "int8-x16"
            if b["params"].get("input16")
            else "int8"
        )
        held = f"{m['int8']:.4g} ({bits}) (float {m['float']:.4g})"
        score = (
            f"{cv['int8']:.4g} (float {cv['float']:.4g}; {cv['why']}); "
            f"its export on its held-out split {held}"
            if cv
            else held
        )
        print(
            f"best: trial {b['number']} {b['params']}: {doc['objective']} {score}, "
            f"flash {m['flash_bytes']} B, RAM {m['ram_bytes']} B"
            + (f", {m['latency_ms']:.3f} ms per sample" if m["latency_ms"] is not None else "")
            + (
                f" ({m['peak_latency_ms']:.3f} ms at the one in {m['stack']} that runs the layers)"
                if m.get("peak_latency_ms") is not None and m.get("stack", 1) > 1
                else ""
            )
        )
        choice = doc.get("choice")
        if choice:  # the default model and the top score, weighed (host/search/selection.py prefer_default)
            print(
                ("the default model is kept: " if choice["kept_default"] else "not the default model: ")
                + choice["why"]
            )
        r = doc.get("refit") or {}
        # a refit has no held-out data: the verdict is its trial's export's
        whose = f"trial {b['number']}'s" if r.get("done") else "best's"
        print(f"{whose} export: {check_verdict(m)}")
        if r.get("done"):
            print(
                f"refit: its settings trained again on all {r['sequences']} sequences ({r['why']}"
                + ("; the one made before" if r["reused"] else "")
                + f"), golden == C bit-exact on them, flash {r['flash_bytes']} B"
            )
        print(f"Pareto front, {doc['objective']} vs flash: trials {doc['pareto']['flash']}")
        if m["check_passed"]:
            print(f"next: tinylstm build {doc['best_export']} --board {args.board}")
        else:  # building it would flash a model its own check refuses (a refit's check: its trial's)
            where = m["export"] if r.get("done") else doc["best_export"]
            print(f"next: tinylstm check {where} says what failed, before anything is built")
        code = 0
    if doc.get("replaced_study"):
        print(
            "note: search.json, search.md, pareto.png and best-export held study "
            f"{doc['replaced_study']!r}'s results; they now hold {doc['study']!r}'s (each study's trials "
            f"stay in {out / 'trials'})"
        )
    for name in ("search.json", "search.md", "pareto.png"):
        print(f"wrote {out / name}")
    return code
