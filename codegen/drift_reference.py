"""The held-out statistics `tinylstm stream`'s drift alerts compare live data with (host/link/drift.py).

``reference`` runs the held-out split through the integer golden reference as a board runs it (each
sequence from a zero state, as the window rule does) and records the class histogram and confidence
(overall, quantiles, per predicted class) of the int16 outputs, or each regression output's mean, std
and range, the mean, std and range of each input channel (the model's input words: int8, or int16 for an
int16-h model), and how far the rolling statistics
move on the held-out stream itself, in order: the floor of the alerts' thresholds.
``tinylstm export`` stores it as ``drift_reference`` in export-report.json.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinylstm.codegen import golden
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.spec import by_length

WINDOW_SEQUENCES = 20  # window models: the rolling window spans this many windows
MIN_WINDOW = 1000  # predictions
RANGE_PCT = (0.1, 99.9)  # the held-out range of a value: these percentiles


def rolling_window(model_window: int, override: int | None = None) -> int:
    """Predictions per rolling window: ``override``, else max(MIN_WINDOW, 20 model windows)."""
    return override or max(MIN_WINDOW, WINDOW_SEQUENCES * model_window)


def softmax(y: np.ndarray) -> np.ndarray:
    """Class probabilities of logits along the last axis."""
    e = np.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _range(v: np.ndarray) -> dict[str, list[float]]:
    lo, hi = np.percentile(v, RANGE_PCT, axis=0)
    return {"low": np.round(lo, 6).tolist(), "high": np.round(hi, 6).tolist()}


def model_window(m: IntModel) -> int:
    """The reference's ``window``: the model's window length in window mode, 0 for a stream model."""
    return int(m.meta.window or 0) if m.meta.mode == "window" else 0


def _rolling_max(v: np.ndarray, n: int) -> np.ndarray:
    """The largest mean of ``n`` consecutive rows of ``v`` [T, K], per column (the whole mean if T < n)."""
    if len(v) <= n:
        return v.mean(axis=0)
    c = np.concatenate([np.zeros((1, v.shape[1])), np.cumsum(v, axis=0)])
    return ((c[n:] - c[:-n]) / n).max(axis=0)


HELD_OUT = "held-out split"
TRAINING = "training split"


def reference(m: IntModel, sequences: list[np.ndarray], data: str = HELD_OUT) -> dict[str, Any]:
    """Reference statistics of the quantized held-out sequences ``sequences`` ([T, C] each), including how far
    the rolling statistics move on the held-out stream itself (in order): the alerts' floor. ``data`` says
    which split they are: TRAINING where the model has no held-out data (its confidence is then higher than
    unseen data gives, so the confidence alerts fire sooner)."""
    ys: list[np.ndarray] = [np.empty(0)] * len(sequences)
    for idx in by_length(sequences).values():
        y, _, _ = golden.run(m, np.stack([sequences[k] for k in idx]))
        for j, k in enumerate(idx):
            ys[k] = golden.dequantize_output(m, y[j])
    y_all = np.concatenate(ys)
    x_all = np.concatenate(sequences).astype(np.float64)
    out: dict[str, Any] = {
        "data": data,
        "steps": len(y_all),
        "window": model_window(m),
        "input_mean": np.round(x_all.mean(axis=0), 4).tolist(),  # input words
        "input_std": np.round(x_all.std(axis=0), 4).tolist(),
        "input_range": _range(x_all),
    }
    n = rolling_window(out["window"])
    r = out["input_range"]
    far = ((x_all < r["low"]) | (x_all > r["high"])).astype(np.float64)
    out["input_out_of_range_seen"] = round(float(_rolling_max(far, n).max()), 5)
    if m.meta.task == "classification":
        p = softmax(y_all)
        conf, pred = p.max(axis=1), p.argmax(axis=1)
        hist = np.bincount(pred, minlength=m.output_size) / len(p)
        by_class = np.array(
            [
                float(conf[pred == k].mean()) if np.any(pred == k) else float(conf.mean())
                for k in range(m.output_size)
            ]
        )
        deficit = (by_class[pred] - conf)[:, None]  # expected minus actual confidence, per step
        out |= {
            "class_histogram": np.round(hist, 5).tolist(),
            "confidence_mean": round(float(conf.mean()), 5),
            "confidence_quantiles": dict(
                zip(
                    ("p10", "p50", "p90"),
                    np.round(np.percentile(conf, (10, 50, 90)), 5).tolist(),
                    strict=True,
                )
            ),
            "confidence_by_class": np.round(by_class, 5).tolist(),
            "confidence_drop_seen": round(float(_rolling_max(deficit, n)[0]), 5),
        }
    else:
        out |= {
            "output_mean": np.round(y_all.mean(axis=0), 6).tolist(),
            "output_std": np.round(y_all.std(axis=0), 6).tolist(),
            "output_range": _range(y_all),
        }
        r = out["output_range"]
        far = ((y_all < r["low"]) | (y_all > r["high"])).astype(np.float64)
        out["output_out_of_range_seen"] = round(float(_rolling_max(far, n).max()), 5)
    return out
