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
import math
import typing
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

    def __post_init__(self) -> None:
        w = self.window
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise TinyLSTMError(
                f"DriftThresholds window {w!r}: give a whole number of predictions >= 1, or None"
            )
        for name in ("confidence_drop", "rare_class_share", "out_of_range"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise TinyLSTMError(f"DriftThresholds {name} {v!r}: give a fraction from 0 to 1")


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
    if ref is None:
        return None
    check_reference(ref, f"{report}'s drift_reference")
    return typing.cast(dict[str, Any], ref)


def _finite(x: object) -> bool:
    """A finite number (not a bool, which JSON would have as true/false)."""
    number = isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
    return number and math.isfinite(typing.cast(float, x))


def _numbers(
    ref: dict[str, Any], key: str, where: str, size: int | None = None, low: float | None = None
) -> list[float]:
    """``ref[key]``, refused unless a non-empty list of ``size`` finite numbers (each >= ``low``)."""
    v = ref.get(key)
    values: list[Any] = v if isinstance(v, list) else []
    ok = len(values) > 0 and (size is None or len(values) == size)
    ok = ok and all(_finite(x) for x in values)
    if not ok or (low is not None and min(values) < low):
        want = f"{size} " if size is not None else ""
        floor = f" >= {low:g}" if low is not None else ""
        raise TinyLSTMError(
            f"{where} is damaged ({key} is {str(v)[:60]!r}, not a list of {want}finite numbers{floor}): "
            "export the model again (tinylstm export), or stream without drift alerts (--no-drift)"
        )
    return values


def check_reference(ref: object, where: str = "the drift reference") -> None:
    """Refuse, in one line, a reference that is not what codegen/drift_reference.py writes (an edited
    export-report.json): missing keys, wrong types or lengths, non-finite values, negative stds, ranges whose
    low end is above their high end."""

    def damaged(what: str) -> TinyLSTMError:
        return TinyLSTMError(
            f"{where} is damaged ({what}): export the model again (tinylstm export), or stream without drift "
            "alerts (--no-drift)"
        )

    if not isinstance(ref, dict):
        raise damaged(f"a {type(ref).__name__}, not an object")
    w = ref.get("window", 0)
    if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 0):
        raise damaged(f"window is {w!r}, not a whole number >= 0")
    for key in ("confidence_drop_seen", "input_out_of_range_seen", "output_out_of_range_seen"):
        v = ref.get(key, 0.0)
        if not _finite(v):
            raise damaged(f"{key} is {v!r}, not a finite number")
    if "class_histogram" in ref:
        n = len(_numbers(ref, "class_histogram", where, low=0.0))
        _numbers(ref, "confidence_by_class", where, n, low=0.0)
    for name in ("input",) if "class_histogram" in ref else ("input", "output"):
        n = len(_numbers(ref, f"{name}_mean", where))
        if f"{name}_std" in ref:
            _numbers(ref, f"{name}_std", where, n, low=0.0)
        r = ref.get(f"{name}_range")
        if not isinstance(r, dict):
            raise damaged(f"{name}_range is {str(r)[:60]!r}, not an object with low and high")
        lo, hi = (
            _numbers(r, "low", f"{where}'s {name}_range", n),
            _numbers(r, "high", f"{where}'s {name}_range", n),
        )
        if any(a > b for a, b in zip(lo, hi, strict=True)):
            raise damaged(f"{name}_range has a low end above its high end")


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
        check_reference(self.ref)
        if not isinstance(self.thresholds, DriftThresholds):
            raise TinyLSTMError(f"thresholds {self.thresholds!r}: give a DriftThresholds")
        scale = self.output_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
            raise TinyLSTMError(f"output_scale {scale!r}: give the model's output scale, a finite number > 0")
        t = self.thresholds
        self.window = window_for(self.ref, t)
        # a rolling statistic must move further than it did on the held-out stream itself
        self.confidence_drop = max(t.confidence_drop, MARGIN * self.ref.get("confidence_drop_seen", 0.0))
        self.input_far = max(t.out_of_range, MARGIN * self.ref.get("input_out_of_range_seen", 0.0))
        self.output_far = max(t.out_of_range, MARGIN * self.ref.get("output_out_of_range_seen", 0.0))
        self.classification = "class_histogram" in self.ref
        self.outputs = len(self.ref["class_histogram"] if self.classification else self.ref["output_mean"])
        self.inputs = len(self.ref["input_mean"])
        self._conf = _Rolling(self.window, 1)
        self._classes = _Rolling(self.window, self.outputs)  # one-hot predictions (classification)
        self._out_far = _Rolling(self.window, self.outputs)  # outside the held-out range (regression)
        self._in_far = _Rolling(self.window, self.inputs)

    def _vector(self, value: object, size: int, what: str) -> np.ndarray:
        try:
            v = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            problem = "are not numbers"
        else:
            if v.shape == (size,) and np.all(np.isfinite(v)):
                return v
            problem = f"have shape {v.shape}" if v.shape != (size,) else "hold NaN or infinity"
        raise TinyLSTMError(
            f"DriftMonitor.update: the {what} {problem}: give the {size} finite {what} of one step, as the "
            "drift reference has them"
        )

    def update(
        self, outputs: tuple[int, ...] | np.ndarray, inputs: np.ndarray | None = None
    ) -> list[DriftEvent]:
        """Add one prediction (its int16 outputs) and, for host-fed streams, the quantized input it answered;
        returns the alerts raised or cleared by it."""
        y = self._vector(outputs, self.outputs, "outputs") * self.output_scale
        x = None if inputs is None else self._vector(inputs, self.inputs, "inputs")
        self.seen += 1
        if self.classification:
            p = softmax(y)
            self._conf.add(np.array([p.max()]))
            self._classes.add(np.eye(len(p))[int(p.argmax())])
        else:
            r = self.ref["output_range"]
            self._out_far.add(((y < r["low"]) | (y > r["high"])).astype(np.float64))
        if x is not None:
            r = self.ref["input_range"]
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
