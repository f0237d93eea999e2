"""`tinylstm explain`: gate activations and hidden state over time, float beside int8."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinylstm.api import explain
from tinylstm.host.analysis.explain import MAX_STEPS
from tinylstm.host.cli.options import add_moved_data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="heatmaps of gates and hidden state over time, float vs int8, per class",
        description="Trace held-out examples (per class for a window classifier) through the float "
        "model and the integer kernel's golden reference: gate activations, hidden state and outputs "
        "over time, the step each keeps its decision from, where int8 departs from float. "
        "Writes explain.json and one PNG per example.",
    )
    p.add_argument("export_dir", help="directory written by `tinylstm export`")
    add_moved_data(p)
    p.add_argument("--out", help="output directory (default: EXPORT_DIR/explain)")
    p.add_argument(
        "--sequences",
        type=int,
        default=1,
        help="streams and regression: how many held-out sequences (default 1)",
    )
    p.add_argument(
        "--max-steps", type=int, default=MAX_STEPS, help=f"steps of a stream to show (default {MAX_STEPS})"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = explain(
        args.export_dir,
        data=args.data,
        test_data=args.test_data,
        out=args.out,
        sequences=args.sequences,
        max_steps=args.max_steps,
    )
    out = Path(report["out_dir"])
    for ex in report["examples"]:
        line = f"{ex['title']}: held-out sequence {ex['sequence']}, {ex['steps']} steps"
        if "prediction" in ex:
            p, d = ex["prediction"], ex["decision_step"]
            line += f"; predicts float {p['float']!r} from step {d['float']}"
            line += f", {report['integer']} {p['int8']!r} from step {d['int8']}"
        dep = ex["departure"]
        worst = max(dep["gates"].items(), key=lambda kv: kv[1]["max_abs"])
        line += (
            f"; largest gate departure {worst[0]} {worst[1]['max_abs']:.3g} at step {worst[1]['step_of_max']}"
        )
        print(line)
        print(f"wrote {out / ex['png']}")
    print(f"wrote {out / 'explain.json'}")
    return 0
