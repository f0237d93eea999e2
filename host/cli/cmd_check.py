"""`tinylstm check`: float vs int8 on held-out data and golden vs C bit-exactness."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tinylstm.api import check
from tinylstm.host.cli.options import add_moved_data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="report float vs int8 quality and golden vs C bit-exactness",
        description="Evaluate an export directory on held-out data; exit 1 if a bound fails.",
    )
    p.add_argument("export_dir", help="directory written by `tinylstm export`")
    add_moved_data(p)
    p.add_argument(
        "--max-accuracy-drop", type=float, default=1.0, help="allowed float-int8 accuracy drop, points"
    )
    p.add_argument(
        "--min-agreement", type=float, default=98.0, help="required float/int8 argmax agreement, %%"
    )
    p.add_argument(
        "--max-rmse-increase",
        type=float,
        default=2.0,
        help="regression: allowed int8 RMSE - float RMSE, in %% of the target's std (default 2)",
    )
    p.add_argument(
        "--allow-below-baseline",
        action="store_true",
        help="pass a classifier that does not beat always predicting the majority class (default: a FAIL)",
    )
    p.add_argument(
        "--json", dest="json_out", help="also write the report as JSON to this file ('-' for stdout)"
    )
    p.set_defaults(func=run)


def _blob_line(blob: dict[str, Any]) -> str:
    if "error" in blob:
        return f"  model.tlm: FAIL ({blob['error']})"
    c, mp = blob["c_reader"], blob["micropython"]
    parts = [
        f"{blob['bytes']} B, {'same bytes as' if blob['same_bytes_as_model'] else 'DIFFERENT bytes from'} "
        "the "
        "exported model"
    ]
    if c["ok"]:
        parts.append(f"C reader: hash {c['hash']}, {c['steps']} steps bit-exact")
    else:
        why = c.get("error") or f"hash {c.get('hash')}, first mismatch at step {c.get('first_mismatch')}"
        parts.append(f"C reader: FAIL ({why})")
    if mp["ok"] is None:
        parts.append(f"MicroPython: not run ({mp['skipped']})")
    elif mp["ok"]:
        parts.append(f"MicroPython fallback: {mp['steps']} steps bit-exact")
    else:
        parts.append(f"MicroPython: FAIL ({mp.get('error') or 'outputs differ'})")
    return f"  model.tlm: {'; '.join(parts)}: {'OK' if blob['ok'] else 'FAIL'}"


def render(report: dict[str, Any]) -> str:
    q, b, base = report["quality"], report["bit_exact"], report["baselines"]
    lines = [
        (
            f"model {report['model']['hash']} ({report['model']['cell']}), "
            f"{report['data']['test_sequences']} held-out sequences"
        ),
        (
            f"  hidden state {report['model']['hidden_format']}, input int{report['model']['input_bits']}; "
            f"{report['model']['training']['detail']}"
        ),
    ]
    if q["metric"] == "accuracy_pct":
        lines.append(
            f"  accuracy: float {q['float']:.2f}%  {q['integer']} {q['int8']:.2f}%  drop "
            f"{q['accuracy_drop_pp']:+.2f} "
            "pp  "
            f"argmax agreement {q['agreement_pct']:.2f}%"
        )
        if "qat_forward" in q:
            qf = q["qat_forward"]
            lines.append(
                f"  {q['integer']} vs the quantization-aware forward it was fine-tuned as: argmax agreement "
                f"{qf['agreement_pct']:.2f}%, {qf['equal_output_words_pct']:.2f}% of the output words equal"
            )
        line = (
            f"  baseline: always {base['majority_class']!r} (majority class of the training split) "
            f"{base['majority_accuracy_pct']:.2f}%"
        )
        if "int8_accuracy_interval_pct" in base:
            low, high = base["int8_accuracy_interval_pct"]
            cases = base["interval_cases"]
            interval = f"95 % interval {low:.1f}-{high:.1f}% over {cases} held-out windows"
            line += f"; {q['integer']} accuracy's {interval}"
            if base["beaten"] and low <= base["majority_accuracy_pct"]:
                line += " (it reaches the majority class's: the lead is within the noise of so few)"
        lines.append(line)
        if "nearest_accuracy_pct" in base:
            lines.append(f"  baseline: {base['nearest_rule']} {base['nearest_accuracy_pct']:.2f}%")
    else:
        lines.append(
            f"  RMSE: float {q['float']:.5g}  {q['integer']} {q['int8']:.5g}  "
            f"({q['rmse_increase_pct_of_std']:+.2f}% "
            "of "
            f"the target's std; MAE {q['mae_float']:.5g} / "
            f"{q['mae_int8']:.5g}, max |float-{q['integer']}| {q['max_abs_float_vs_int8']:.4g})"
        )
        text = f"  baselines: training mean RMSE {base['mean_rmse']:.5g}"
        if "persistence_rule" in base:
            text += f"; persistence ({base['persistence_rule']}) RMSE {base['persistence_rmse']:.5g}"
        elif "persistence_rmse" in base:
            same = base["model_rmse_same_steps"]
            text += (
                f"; persistence ({base['persistence_lag']} step(s) back) RMSE {base['persistence_rmse']:.5g} "
                f"vs the model's {same['float']:.5g} / {same['int8']:.5g} on the same steps"
            )
        if "nearest_rmse" in base:
            text += f"; {base['nearest_rule']} RMSE {base['nearest_rmse']:.5g}"
        lines.append(text)
    if "nearest_skipped" in base:
        lines.append(f"  baseline: no 1-NN ({base['nearest_skipped']})")
    lines.append(
        f"  golden vs C: {b['steps']} steps in {b['sequences']} sequences, {b['mismatched_sequences']} "
        f"mismatched; long stream {b['long_stream_steps']} steps, {b['state_and_output_words_compared']} "
        "words compared: "
        f"{'BIT-EXACT' if b['ok'] else 'MISMATCH at step ' + str(b['long_stream_first_mismatch'])}"
    )
    lines.append(_blob_line(report["blob"]))
    lines += [f"WARNING: {w}" for w in report["warnings"]]
    failed = [r["rule"] for r in report["rules"] if not r["passed"]]
    lines.append(
        f"FAIL: {'; '.join(failed)}"
        if failed
        else f"PASS: all {len(report['rules'])} rules hold ({'; '.join(r['rule'] for r in report['rules'])})"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = check(
        args.export_dir,
        args.data,
        test_data=args.test_data,
        max_accuracy_drop=args.max_accuracy_drop,
        min_agreement=args.min_agreement,
        max_rmse_increase=args.max_rmse_increase,
        allow_below_baseline=args.allow_below_baseline,
        json_out=args.json_out,  # "-": not written; printed here instead of the text
    )
    print(json.dumps(report, indent=2) if args.json_out == "-" else render(report))
    return 0 if report["passed"] else 1
