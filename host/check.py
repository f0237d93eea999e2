"""`tinylstm check`: float vs int8 quality on held-out data, and golden vs C bit-exactness.

The C side is the cffi build of the export directory's own generated files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tinylstm.codegen import golden
from tinylstm.codegen.export import ModelSource, data_splits
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.spec import FloatModel, by_length, float_forward, normalise
from tinylstm.codegen.store import load_int_model
from tinylstm.host.bridge import CModel, load_library
from tinylstm.trainer.errors import TinyLSTMError
from tinylstm.trainer.sequence_set import SequenceSet

LONG_STREAM_STEPS = 10_000


@dataclass
class Thresholds:
    max_accuracy_drop_pp: float = 1.0
    min_agreement_pct: float = 98.0
    max_rmse_increase_pct: float = 2.0  # regression: int8 RMSE - float RMSE, in % of the target's std


def _outputs(fm: FloatModel, m: IntModel,
             test: SequenceSet) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per test sequence, all steps: float outputs, int8 inputs and golden int16 outputs."""
    flo: list[np.ndarray] = [np.empty(0)] * len(test)
    xqs: list[np.ndarray] = [np.empty(0)] * len(test)
    ints: list[np.ndarray] = [np.empty(0)] * len(test)
    for idx in by_length(test.sequences).values():
        raw = np.stack([test.sequences[k] for k in idx])
        yf = float_forward(fm, normalise(fm, raw))["y"]
        xq = golden.quantize_input(m, raw)
        yq, _, _ = golden.run(m, xq)
        for j, k in enumerate(idx):
            flo[k], xqs[k], ints[k] = yf[j], xq[j], yq[j]
    return flo, xqs, ints


def _select(test: SequenceSet, ys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, targets) at the steps that carry a label: last step (window) or all (stream)."""
    if test.mode == "window":
        return np.stack([y[-1] for y in ys]), np.asarray(test.labels)
    return np.concatenate(ys), np.concatenate(list(test.labels))


def _quality(fm: FloatModel, m: IntModel, test: SequenceSet, ints: list[np.ndarray],
             flo: list[np.ndarray]) -> dict[str, Any]:
    pf, target = _select(test, flo)
    pq, _ = _select(test, [golden.dequantize_output(m, y) for y in ints])
    if fm.meta.task == "classification":
        af, aq = pf.argmax(-1), pq.argmax(-1)
        acc_f, acc_q = 100.0 * np.mean(af == target), 100.0 * np.mean(aq == target)
        return {"metric": "accuracy_pct", "float": acc_f, "int8": acc_q, "accuracy_drop_pp": acc_f - acc_q,
                "agreement_pct": 100.0 * np.mean(af == aq), "predictions": len(target)}
    if fm.meta.target_std is not None and fm.meta.target_mean is not None:
        pf = pf * np.asarray(fm.meta.target_std) + np.asarray(fm.meta.target_mean)
    target = np.asarray(target, dtype=np.float64).reshape(pf.shape)
    rmse = lambda p: float(np.sqrt(np.mean((p - target) ** 2)))
    spread = float(np.std(target)) or 1.0
    return {"metric": "rmse", "float": rmse(pf), "int8": rmse(pq),
            "rmse_increase_pct_of_std": 100.0 * (rmse(pq) - rmse(pf)) / spread,
            "mae_float": float(np.mean(np.abs(pf - target))),
            "mae_int8": float(np.mean(np.abs(pq - target))), "max_abs_float_vs_int8": float(np.max(np.abs(pf - pq))),
            "predictions": len(target)}


def _bit_exact(m: IntModel, cm: CModel, xqs: list[np.ndarray], ints: list[np.ndarray]) -> dict[str, Any]:
    """Every test sequence through C (reset between them), then one long stream with every state word."""
    mismatched, steps = [], 0
    for k, xq_seq in enumerate(xqs):
        cm.reset()
        steps += len(xq_seq)
        if not np.array_equal(cm.run(xq_seq), ints[k]):
            mismatched.append(k)
    stream = np.concatenate(xqs)
    reps = -(-LONG_STREAM_STEPS // len(stream))
    xq = np.concatenate([stream] * reps)[:max(LONG_STREAM_STEPS, len(stream))]
    y_ref, _, tr = golden.run(m, xq[None], trace=True)
    cm.reset()
    first_bad = None
    for t in range(len(xq)):
        y = cm.step(xq[t])
        if not (np.array_equal(y, y_ref[0, t]) and np.array_equal(cm.h, tr["h"][0, t])
                and np.array_equal(cm.c, tr["c"][0, t])):
            first_bad = t
            break
    words = len(xq) * (m.output_size + 2 * m.num_layers * m.hidden_size)
    return {"sequences": len(xqs), "steps": steps, "mismatched_sequences": len(mismatched),
            "long_stream_steps": len(xq), "long_stream_first_mismatch": first_bad,
            "state_and_output_words_compared": int(words),
            "ok": not mismatched and first_bad is None}


def check(export_dir: Path, data: str | None = None, thresholds: Thresholds | None = None) -> dict[str, Any]:
    thresholds = thresholds or Thresholds()
    m, doc = load_int_model(export_dir)
    src = ModelSource(**doc["source"])
    if data:
        src.data = data
    loaded = src.load()
    _, test = data_splits(loaded, src.data)
    flo, xqs, ints = _outputs(loaded.float_model, m, test)
    quality = _quality(loaded.float_model, m, test, ints, flo)
    cm = CModel(load_library(export_dir, doc.get("name", "model")))
    if cm.hash != m.model_hash:
        raise TinyLSTMError(f"the C files in {export_dir} have hash 0x{cm.hash:08x}, the model "
                            f"0x{m.model_hash:08x}: export again")
    exact = _bit_exact(m, cm, xqs, ints)
    passed = exact["ok"]
    if quality["metric"] == "accuracy_pct":
        passed = passed and quality["accuracy_drop_pp"] <= thresholds.max_accuracy_drop_pp \
            and quality["agreement_pct"] >= thresholds.min_agreement_pct
    else:
        passed = passed and quality["rmse_increase_pct_of_std"] <= thresholds.max_rmse_increase_pct
    return {"model": {k: doc.get(k) for k in ("hash", "cell", "num_layers")} | {"export_dir": str(export_dir)},
            "data": {"spec": src.data or "(recorded in checkpoint)", "test_sequences": len(test)},
            "quality": quality, "bit_exact": exact, "thresholds": thresholds.__dict__, "passed": bool(passed)}
