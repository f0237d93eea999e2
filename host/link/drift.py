"""Drift alerts: the live predictions (and, for host-fed streams, inputs) against the held-out data's.

``tinylstm export`` stores ``drift_reference`` (codegen/drift_reference.py) in export-report.json: over every
step of the held-out split, run through the integer golden reference as a board runs it (each
sequence from a zero state, as the window rule does), the class histogram and the confidence
(largest softmax probability) of the int16 outputs overall (mean and quantiles) and per predicted
class, or for regression the mean, std and range of each output, and the mean, std and range
(0.1-99.9 percentiles) of each quantized input channel (int8, an int16-h model's int16). ``DriftMonitor``
keeps rolling statistics over the last ``window`` predictions and raises an alert (a ``DriftEvent``) when,
with a full window, one departs beyond its threshold (``DriftThresholds``), and clears it when it returns;
``tinylstm stream`` shows the active alerts in its status line and log; ``BoardStream`` calls ``on_drift``
with each event, keeps them in ``.drift.events`` and marks every ``Prediction.drift``.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinylstm.codegen.drift_reference import rolling_window, softmax
from tinylstm.errors import TinyLSTMError

RARE_CLASS = 0.02  # a class predicted on fewer held-out steps than this is rare
MARGIN = 1.5  # alerts need 1.5x the largest rolling departure the held-out stream itself shows


@dataclass(frozen=True)
class DriftThresholds:
    """When an alert is raised. A live stream is rarely a mix like the held-out split (one activity at a
    time), so the tests compare like with like: confidence against what held-out data gave for the
    classes now predicted, values against the held-out range, not against the held-out mean."""

    window: int | None = None  # predictions per rolling window; None: codegen/drift_reference.py's rule
    confidence_drop: float = 0.05  # mean confidence this far below held-out's for the same classes (5 points)
    rare_class_share: float = 0.5  # a rare class (RARE_CLASS) predicted on more than this share of steps
    out_of_range: float = 0.1  # an input channel (or regression output) outside its held-out range this often


DEFAULT_DRIFT = DriftThresholds()


def drift_reference(export_dir: Path) -> dict[str, Any] | None:
    """The export's reference statistics; None for an export made before drift alerts existed."""
    report = export_dir / "export-report.json"
    if not report.is_file():
        return None
    try:
        doc = json.loads(report.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TinyLSTMError(
            f"{report} is damaged ({exc}): export the model again (tinylstm export), or stream without "
            "--export"
        ) from None
    ref = doc.get("drift_reference") if isinstance(doc, dict) else None
    return ref if isinstance(ref, dict) else None


def window_for(ref: dict[str, Any], thresholds: DriftThresholds) -> int:
    """Predictions per rolling window."""
    return rolling_window(int(ref.get("window") or 0), thresholds.window)


@dataclass(frozen=True)
class DriftEvent:
    prediction: int  # predictions seen when it happened
    kind: str  # "confidence", "classes", "input", "output"
    state: str  # "raised" or "cleared"
    message: str


class _Rolling:
    """Mean and std of vectors over the last ``n`` updates, in O(size) per update."""

    def __init__(self, n: int, size: int) -> None:
        self.values: deque[np.ndarray] = deque(maxlen=n)
        self.total = np.zeros(size)
        self.squares = np.zeros(size)

    def add(self, v: np.ndarray) -> None:
        if len(self.values) == self.values.maxlen:
            old = self.values[0]
            self.total -= old
            self.squares -= old * old
        self.values.append(v)
        self.total += v
        self.squares += v * v

    @property
    def full(self) -> bool:
        return len(self.values) == self.values.maxlen

    def mean(self) -> np.ndarray:
        return self.total / max(len(self.values), 1)

    def std(self) -> np.ndarray:
        m = self.mean()
        return np.sqrt(np.maximum(self.squares / max(len(self.values), 1) - m * m, 0.0))


@dataclass
class DriftMonitor:
    """Rolling statistics of a live stream against an export's ``reference`` statistics."""

    ref: dict[str, Any]
    output_scale: float
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    seen: int = 0
    active: dict[str, str] = field(default_factory=dict)  # kind -> message of the alerts now raised
    events: list[DriftEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        t = self.thresholds
        self.window = window_for(self.ref, t)
        # a rolling statistic must move further than it did on the held-out stream itself
        self.confidence_drop = max(t.confidence_drop, MARGIN * self.ref.get("confidence_drop_seen", 0.0))
        self.input_far = max(t.out_of_range, MARGIN * self.ref.get("input_out_of_range_seen", 0.0))
        self.output_far = max(t.out_of_range, MARGIN * self.ref.get("output_out_of_range_seen", 0.0))
        self.classification = "class_histogram" in self.ref
        outputs = len(self.ref["class_histogram"] if self.classification else self.ref["output_mean"])
        self._conf = _Rolling(self.window, 1)
        self._classes = _Rolling(self.window, outputs)  # one-hot predictions (classification)
        self._out_far = _Rolling(self.window, outputs)  # outside the held-out range (regression)
        self._in_far = _Rolling(self.window, len(self.ref["input_mean"]))

    def update(
        self, outputs: tuple[int, ...] | np.ndarray, inputs: np.ndarray | None = None
    ) -> list[DriftEvent]:
        """Add one prediction (its int16 outputs) and, for host-fed streams, the quantized input it answered;
        returns the alerts raised or cleared by it."""
        self.seen += 1
        y = np.asarray(outputs, dtype=np.float64) * self.output_scale
        if self.classification:
            p = softmax(y)
            self._conf.add(np.array([p.max()]))
            self._classes.add(np.eye(len(p))[int(p.argmax())])
        else:
            r = self.ref["output_range"]
            self._out_far.add(((y < r["low"]) | (y > r["high"])).astype(np.float64))
        if inputs is not None:
            r = self.ref["input_range"]
            x = np.asarray(inputs, dtype=np.float64)
            self._in_far.add(((x < r["low"]) | (x > r["high"])).astype(np.float64))
        if self.seen < self.window:
            return []
        found = self._check()
        new = []
        for kind in sorted(set(found) | set(self.active)):
            if kind in found and kind not in self.active:
                new.append(DriftEvent(self.seen, kind, "raised", found[kind]))
            elif kind not in found and kind in self.active:
                new.append(DriftEvent(self.seen, kind, "cleared", f"{kind} back within its threshold"))
        self.active = found
        self.events += new
        return new

    def _check(self) -> dict[str, str]:
        t, ref, found = self.thresholds, self.ref, {}
        if self.classification:
            share = self._classes.mean()
            conf = float(self._conf.mean()[0])
            expected = float(share @ np.asarray(ref["confidence_by_class"]))
            if expected - conf > self.confidence_drop:
                found["confidence"] = (
                    f"mean confidence {100 * conf:.1f}% vs {100 * expected:.1f}% on held-out data for the "
                    f"same classes ({100 * (conf - expected):+.1f} points)"
                )
            rare = np.asarray(ref["class_histogram"]) < RARE_CLASS
            if np.any(rare & (share > t.rare_class_share)):
                k = int(np.argmax(np.where(rare, share, -1.0)))
                found["classes"] = (
                    f"class {k} predicted on {100 * share[k]:.0f}% of the steps, "
                    f"{100 * ref['class_histogram'][k]:.1f}% on held-out data"
                )
        elif self._out_far.full:
            far = self._out_far.mean()
            if far.max() > self.output_far:
                k = int(far.argmax())
                found["output"] = f"output {k} outside its held-out range on {100 * far[k]:.0f}% of the steps"
        if self._in_far.full:
            far = self._in_far.mean()
            if far.max() > self.input_far:
                k = int(far.argmax())
                found["input"] = (
                    f"input channel {k} outside its held-out range on {100 * far[k]:.0f}% of the steps"
                )
        return found

    def status(self) -> str:
        """One phrase for a status line."""
        if self.seen < self.window:
            return f"drift: warming up ({self.seen}/{self.window})"
        if not self.active:
            return "drift: none"
        return "DRIFT " + "; ".join(self.active.values())

    def to_dict(self) -> dict[str, Any]:
        return {"window": self.window, "seen": self.seen, "active": dict(self.active),
                "events": [asdict(e) for e in self.events]}  # fmt: skip
