"""Naive baselines on held-out data, the yardstick a trained model must beat to be worth flashing.

Classification: always predicting the training split's majority class. Regression: predicting the
training mean, and persistence: in stream mode the target ``lag`` steps back (the forecast horizon, else
one step); in window mode the window's last value of the input channel that, used as it is, predicts the
training targets best (for a series whose target continues it, "the next value is the last one").
Every score is in the data's own units, at the labelled steps (a window's label, every step of a stream).

Window data also gets a stronger yardstick, the one time-series classification is measured against: the
1-nearest-neighbour predictor (``add_nearest_neighbour``). Each held-out window takes the label or target of
the training window nearest to it in Euclidean distance over the normalised windows (per-channel mean and
std of the training split, as the model sees them; windows of several lengths padded to the longest with
their last value, as the quality benchmark pads). A model that scores below it has learned less than
matching the training windows as templates. It costs one distance per training and held-out window pair;
above ``MAX_NEAREST_MACS`` multiply-adds, or ``MAX_NEAREST_VALUES`` padded values held, it is skipped, and
the reason recorded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from tinylstm.trainer.data import Normalizer
from tinylstm.trainer.sequence_set import SequenceSet

# the 1-NN baseline's largest cost (training x held-out windows x padded length x channels): some seconds of
# one core's BLAS (the watch demo's 6,051 x 1,090 windows of 128 x 6 values are 5.1e9)
MAX_NEAREST_MACS = 20_000_000_000
# and its largest memory: the padded windows it holds as float64 (watch's 7,141 x 768 are 5.5e6: 44 MB)
MAX_NEAREST_VALUES = 25_000_000
NEAREST_BLOCK = 1 << 21  # distances per block of held-out windows (float64: 16 MB; at least one window's)


@dataclass
class Baselines:
    task: str
    majority_class: str | None = None
    majority_accuracy: float | None = None  # fraction, like the model's accuracy
    majority_index: int | None = None  # the majority class's label
    mean_rmse: float | None = None
    persistence_rmse: float | None = None
    persistence_rule: str | None = None
    nearest_accuracy: float | None = None  # window classification: 1-NN (add_nearest_neighbour)
    nearest_rmse: float | None = None  # window regression: 1-NN
    nearest_rule: str | None = None  # how the 1-NN baseline measured
    nearest_skipped: str | None = None  # why there is no 1-NN baseline (window data too large for it)

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def verdict(
        self, accuracy: float | None = None, rmse: float | None = None, interval: Interval | None = None
    ) -> tuple[bool, str]:
        """Whether a model with this held-out ``accuracy`` (classification) or ``rmse`` beats every
        baseline (the rule: a higher accuracy, a lower RMSE than each), and one line saying so beside the
        baselines' scores, with the accuracy's ``interval`` where there is one (``accuracy_interval``)."""
        if accuracy is not None and self.majority_accuracy is not None:
            beats = accuracy > self.majority_accuracy
            line = (
                f"held-out accuracy {accuracy:.1%} vs {self.majority_accuracy:.1%} for always predicting "
                f"the majority class {self.majority_class!r}"
            )
            if interval is not None:
                low, high = interval.low, interval.high
                line += f" (95 % interval {low:.1%}-{high:.1%} over {interval.cases} held-out windows"
                if beats and interval.low <= self.majority_accuracy:
                    line += ": it reaches the majority class's, so the lead is within the noise of so few"
                line += ")"
            return beats, line
        assert rmse is not None and self.mean_rmse is not None
        parts = [f"training mean {self.mean_rmse:.4g}"]
        beats = rmse < self.mean_rmse
        if self.persistence_rmse is not None:
            parts.append(f"persistence ({self.persistence_rule}) {self.persistence_rmse:.4g}")
            beats = beats and rmse < self.persistence_rmse
        return beats, f"held-out RMSE {rmse:.4g} vs {', '.join(parts)}"

    def nearest_verdict(
        self, accuracy: float | None = None, rmse: float | None = None
    ) -> tuple[bool, str] | None:
        """Whether a model with this held-out ``accuracy`` or ``rmse`` at least matches the 1-NN baseline (the
        rule: an accuracy as high, an RMSE as low), and one line with both scores; None where there is no 1-NN
        baseline (stream data, or skipped for its cost)."""
        if accuracy is not None and self.nearest_accuracy is not None:
            line = f"{self.nearest_rule}: {self.nearest_accuracy:.1%} vs the model's {accuracy:.1%}"
            return accuracy >= self.nearest_accuracy, line
        if rmse is not None and self.nearest_rmse is not None:
            line = f"{self.nearest_rule}: RMSE {self.nearest_rmse:.4g} vs the model's {rmse:.4g}"
            return rmse <= self.nearest_rmse, line
        return None


class Interval(NamedTuple):
    """A held-out accuracy's 95 % interval (fractions) over ``cases`` independent held-out windows."""

    low: float
    high: float
    cases: int


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of an accuracy of ``correct`` of ``n`` independent trials (95 % at z = 1.96):
    how far the held-out accuracy of a small test set may be from the model's accuracy on more such data."""
    if not 0 <= correct <= n or n < 1:
        raise ValueError(f"{correct} correct of {n} is no accuracy")
    p, z2 = correct / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_interval(accuracy: float, test: SequenceSet) -> Interval | None:
    """The 95 % interval of a window classifier's held-out ``accuracy`` on ``test``, when its windows are
    independent cases (one per recording); None for a stream's labelled steps, or for windows cut from
    fewer recordings (they overlap and share a recording's conditions: an interval over them would be too
    narrow)."""
    n = len(test)
    if test.task != "classification" or test.mode != "window" or not n or test.cases() != n:
        return None
    return Interval(*wilson_interval(round(accuracy * n), n), n)


def _rmse(pred: np.ndarray, target: np.ndarray) -> float:
    return math.sqrt(float(np.mean((np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2)))


def _targets(ds: SequenceSet) -> np.ndarray:
    if ds.mode == "stream":
        return np.concatenate([np.asarray(y) for y in ds.labels])
    return np.asarray(ds.labels)


def _padded(sequences: list[np.ndarray], norm: Normalizer, steps: int) -> np.ndarray:
    """[N, steps * C] float64: each normalised window padded to ``steps`` with its last value, flattened."""
    out = np.empty((len(sequences), steps, norm.mean.size))
    for n, s in enumerate(sequences):
        z = norm.apply(np.asarray(s, dtype=np.float32).reshape(len(s), -1))
        out[n, : len(z)], out[n, len(z) :] = z, z[-1]
    return out.reshape(len(sequences), -1)


def add_nearest_neighbour(out: Baselines, train: SequenceSet, test: SequenceSet) -> Baselines:
    """``out`` with the 1-NN baseline of window data (the module docstring) filled in: the held-out accuracy
    (classification) or RMSE (regression) of predicting each ``test`` window's label from its nearest
    ``train`` window (equal distances: the first, up to rounding), or ``nearest_skipped`` saying why where it
    costs more than MAX_NEAREST_MACS or holds more than MAX_NEAREST_VALUES. Stream data (a label per step)
    and an empty ``test`` have none: ``out`` unchanged."""
    if train.mode != "window" or not len(test):
        return out
    steps = max(len(s) for s in (*train.sequences, *test.sequences))
    width = steps * train.num_channels
    macs, values = len(train) * len(test) * width, (len(train) + len(test)) * width
    shape = f"windows of {steps} x {train.num_channels} values"
    if macs > MAX_NEAREST_MACS:
        out.nearest_skipped = (
            f"{len(train)} x {len(test)} {shape} are {macs:,} multiply-adds, more than {MAX_NEAREST_MACS:,}"
        )
        return out
    if values > MAX_NEAREST_VALUES:
        held = f"{len(train)} + {len(test)} {shape} are {values:,} values to hold"
        out.nearest_skipped = f"{held}, more than {MAX_NEAREST_VALUES:,}"
        return out
    norm = Normalizer.fit([np.asarray(s).reshape(len(s), -1) for s in train.sequences])
    a, b = _padded(train.sequences, norm, steps), _padded(test.sequences, norm, steps)
    a2 = np.einsum("ij,ij->i", a, a)
    # |b - a|^2 = |b|^2 - 2 a.b + |a|^2: |b|^2 is the same for every training window, so it cannot choose
    rows = max(1, NEAREST_BLOCK // len(a))
    nearest = np.concatenate(
        [(a2[None, :] - 2.0 * b[k : k + rows] @ a.T).argmin(axis=1) for k in range(0, len(b), rows)]
    )
    padded = any(len(s) != steps for s in (*train.sequences, *test.sequences))
    out.nearest_rule = "1-NN Euclidean over the normalised windows" + (
        " (padded with their last value)" if padded else ""
    )
    y_train, y_test = _targets(train), _targets(test)
    if train.task == "classification":
        out.nearest_accuracy = float(np.mean(y_train.astype(np.int64)[nearest] == y_test.astype(np.int64)))
    else:
        k = train.output_size
        out.nearest_rmse = _rmse(y_train.reshape(-1, k)[nearest], y_test.reshape(-1, k))
    return out


def naive_baselines(train: SequenceSet, test: SequenceSet, lag: int | None = None) -> Baselines:
    """The naive baselines of ``test`` with everything fitted on ``train``; ``lag``: stream persistence
    (default: the dataset's forecast horizon, else 1)."""
    if train.task == "classification":
        counts = np.bincount(_targets(train).astype(np.int64))
        majority = int(counts.argmax())
        name = train.classes[majority] if train.classes else str(majority)
        accuracy = float(np.mean(_targets(test).astype(np.int64) == majority))
        return Baselines(
            "classification", majority_class=name, majority_accuracy=accuracy, majority_index=majority
        )
    k = train.output_size
    mean = _targets(train).reshape(-1, k).astype(np.float64).mean(axis=0)
    target = _targets(test).reshape(-1, k).astype(np.float64)
    out = Baselines("regression", mean_rmse=_rmse(np.broadcast_to(mean, target.shape), target))
    if test.mode == "stream":
        lag = lag or int(train.options.get("forecast") or 1)
        pairs = [(np.asarray(y)[lag:], np.asarray(y)[:-lag]) for y in test.labels if len(y) > lag]
        if pairs:
            out.persistence_rmse = _rmse(
                np.concatenate([p for _, p in pairs]), np.concatenate([t for t, _ in pairs])
            )
            out.persistence_rule = f"the target {lag} step{'s' if lag > 1 else ''} back"
        return out
    last_train = np.stack([s[-1] for s in train.sequences]).astype(np.float64)  # [N, C]
    y_train = np.asarray(train.labels, np.float64).reshape(-1, k)
    errors = [
        _rmse(np.broadcast_to(last_train[:, [c]], y_train.shape), y_train) for c in range(train.num_channels)
    ]
    best = int(np.argmin(errors))
    last_test = np.stack([s[-1] for s in test.sequences]).astype(np.float64)[:, [best]]
    out.persistence_rmse = _rmse(np.broadcast_to(last_test, target.shape), target)
    out.persistence_rule = f"the window's last value of {train.channels[best]}"
    return out
