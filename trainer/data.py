"""Dataset entry points: ``load_dataset`` (builtin name or file path), ``split`` and ``Normalizer``."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.arff_format import load_arff
from tinylstm.trainer.csv_format import load_csv
from tinylstm.trainer.npz_format import load_npz
from tinylstm.trainer.sequence_set import SequenceSet
from tinylstm.trainer.ts_format import load_ts
from tinylstm.trainer.tsv_format import load_tsv
from tinylstm.trainer.watch import load_watch

__all__ = ["BUILTINS", "Normalizer", "SequenceSet", "load_dataset", "split"]

BUILTINS: dict[str, Callable[..., SequenceSet]] = {"watch": load_watch}
FILE_LOADERS: dict[str, Callable[..., SequenceSet]] = {
    ".ts": load_ts,
    ".tsv": load_tsv,
    ".arff": load_arff,
    ".csv": load_csv,
    ".npz": load_npz,
}
OPTIONS: dict[str, set[str]] = {
    "watch": {"window", "hop"},
    ".ts": {"missing", "task"},
    ".tsv": {"missing", "task"},
    ".arff": {"missing", "task"},
    ".csv": {"target", "group", "channels", "task", "forecast", "window", "hop"},
    ".npz": {"task"},
}


def load_dataset(spec: str = "watch", **options: Any) -> SequenceSet:
    """Load a builtin dataset by name (``watch``) or a ``.ts``/``.tsv``/``.arff``/``.csv``/``.npz`` file.

    ``options`` are format-specific (see each loader); ones a format does not use raise
    TinyLSTMError, and options set to None are dropped so defaults apply.
    """
    options = {k: v for k, v in options.items() if v is not None}
    suffix = Path(spec).suffix.lower()
    args: tuple[Path, ...] = ()
    if spec in BUILTINS:
        key, loader = spec, BUILTINS[spec]
    elif suffix in FILE_LOADERS:
        path = Path(spec)
        if not path.is_file():
            raise TinyLSTMError(f"data file {spec} does not exist; check the path")
        key, loader, args = suffix, FILE_LOADERS[suffix], (path,)
    else:
        raise TinyLSTMError(
            f"unknown dataset {spec!r}: use a builtin name ({', '.join(BUILTINS)}) or a path ending in "
            f"{', '.join(FILE_LOADERS)}"
        )
    unused = sorted(set(options) - OPTIONS[key])
    if unused:
        raise TinyLSTMError(
            f"option(s) {', '.join(unused)} do not apply to {spec}; {key} accepts "
            f"{', '.join(sorted(OPTIONS[key]))}"
        )
    ds = loader(*args, **options)
    ds.spec = spec if spec in BUILTINS else str(Path(spec).resolve())
    ds.options = dict(options)
    return ds


def _split_units(
    units: np.ndarray, strata: np.ndarray | None, val: float, test: float, rng: np.random.Generator
) -> tuple[list[Any], list[Any], list[Any]]:
    """Assign units (groups or sequence indices) to train/val/test, per stratum when given."""
    train: list[Any] = []
    val_u: list[Any] = []
    test_u: list[Any] = []
    keys = np.zeros(len(units), dtype=np.int64) if strata is None else strata
    for key in np.unique(keys):
        members = units[keys == key]
        members = members[rng.permutation(len(members))]
        n_test = round(test * len(members))
        n_val = round(val * len(members))
        excess = n_test + n_val - (len(members) - 1)  # one unit of each stratum stays in training
        if excess > 0:
            from_val = min(excess, n_val)
            n_val, n_test = n_val - from_val, n_test - (excess - from_val)
        test_u += members[:n_test].tolist()
        val_u += members[n_test : n_test + n_val].tolist()
        train += members[n_test + n_val :].tolist()
    key_of = dict(zip(units.tolist(), keys.tolist(), strict=True))
    for part, frac in ((val_u, val), (test_u, test)):
        if frac > 0 and not part:
            # an empty part takes a unit whose stratum keeps another in training (a class's only one stays)
            counts = Counter(key_of[u] for u in train)
            spare = [i for i, u in enumerate(train) if counts[key_of[u]] > 1]
            if spare:
                part.append(train.pop(spare[int(rng.integers(len(spare)))]))
    return train, val_u, test_u


def split(
    ds: SequenceSet, val: float = 0.15, test: float = 0.15, seed: int = 0
) -> tuple[SequenceSet, SequenceSet, SequenceSet]:
    """Deterministic train/val/test split: by group when ``ds.groups`` exists, else by sequence.

    Stratified by class where each unit has one class (window classification).
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise TinyLSTMError(f"val={val} and test={test} must be fractions in [0, 1) summing to < 1")
    rng = np.random.default_rng(seed)
    cls = ds.class_per_sequence()
    if ds.groups is not None:
        groups = np.asarray(ds.groups)
        units, first = np.unique(groups, return_index=True)
        strata = None
        if cls is not None and all(len(np.unique(cls[groups == g])) == 1 for g in units):
            strata = cls[first]
        parts = _split_units(units, strata, val, test, rng)
        index = [np.flatnonzero(np.isin(groups, p)) for p in parts]
    else:
        index = [np.asarray(p, dtype=np.int64) for p in _split_units(np.arange(len(ds)), cls, val, test, rng)]
    for name, idx, frac in (("validation", index[1], val), ("test", index[2], test)):
        if frac > 0 and idx.size == 0:
            raise TinyLSTMError(
                f"the {name} split of {ds.name!r} is empty ({len(ds)} sequences"
                f"{'' if ds.groups is None else f' in {len(np.unique(ds.groups))} groups'}); "
                "use more sequences (a CSV's shorter --window makes more), larger --val/--test fractions, or "
                "give the held-out data as a file (--test-data)"
            )
    train, val_ds, test_ds = (ds.subset(i) for i in index)
    _check_classes_trained(ds, train)
    return train, val_ds, test_ds


def _present(s: SequenceSet) -> set[int]:
    """The classes ``s``'s labels hold (not those it declares)."""
    flat = np.asarray(s.labels) if s.mode == "window" else np.concatenate([np.empty(0), *s.labels])
    return set(np.unique(flat.astype(np.int64)).tolist())


def check_training_classes(train: SequenceSet) -> None:
    """Refuse a classifier's training split that holds fewer than two classes, whatever the data declares (a
    one-class model scores 100 % on data of that class)."""
    if train.task != "classification" or train.classes is None:
        return
    held = _present(train)
    if len(held) < 2:
        names = ", ".join(repr(train.classes[k]) for k in sorted(held))
        named = f" of the {len(train.classes)} it names" if len(train.classes) > 1 else ""
        raise TinyLSTMError(
            f"the training data of {train.name!r} holds one class ({names}){named}: classification needs "
            "sequences of at least 2; add recordings of another class, check the target column, or use "
            "--task regression"
        )


def _check_classes_trained(ds: SequenceSet, train: SequenceSet) -> None:
    """Refuse a split whose training part lacks a class the data has: the model would never see it, yet
    its held-out windows would be scored (and its head's guess could pass)."""
    if ds.task != "classification" or ds.classes is None:
        return
    missing = sorted(_present(ds) - _present(train))
    if missing:
        names = ", ".join(repr(ds.classes[k]) for k in missing)
        unit = "group" if ds.groups is not None else "sequence"
        raise TinyLSTMError(
            f"class {names} of {ds.name!r} has no training {unit} after the split (each {unit} of it went to "
            "the validation or test split): add recordings of it, or give the held-out data as a file "
            "(--test-data)"
        )


def load_test_set(spec: str, train: SequenceSet) -> SequenceSet:
    """Load an explicit held-out file with the training set's options, labels mapped by class name."""
    test = load_dataset(spec, **train.options)
    if test.channels != train.channels or test.task != train.task or test.mode != train.mode:
        raise TinyLSTMError(
            f"test data {spec} ({len(test.channels)} channels, {test.task}, {test.mode} mode) does not match "
            "the "
            f"training data ({len(train.channels)} channels, {train.task}, {train.mode} mode): give the same "
            "kind of file"
        )
    if test.classes != train.classes and test.classes is not None and train.classes is not None:
        unknown = sorted(set(test.classes) - set(train.classes))
        if unknown:
            raise TinyLSTMError(f"test data {spec} has classes {unknown} that the training data lacks")
        index = np.array([train.classes.index(c) for c in test.classes], dtype=np.int64)
        labels = index[np.asarray(test.labels)] if test.mode == "window" else [index[y] for y in test.labels]
        test = dataclasses.replace(test, labels=labels, classes=train.classes)
    test.validate()
    if test.task == "classification" and train.classes is not None:
        missing = sorted(_present(test) - _present(train))
        if missing:  # the model would never see it, yet be scored on it
            names = ", ".join(repr(train.classes[k]) for k in missing)
            raise TinyLSTMError(
                f"the held-out file {spec} holds class {names}, which no sequence of the training data "
                f"{train.name!r} has: add training data of it, or leave it out of the held-out file"
            )
    return test


# a channel whose standard deviation exceeds this many robust ones (IQR / 1.349) is ruled by a few extreme
# values: normalising by it squashes every ordinary sample towards zero
OUTLIER_RATIO = 20.0
FLOAT32_SAFE = 1e30  # |values| above this overflow float32 arithmetic in normalisation and calibration
LARGE_OFFSET = 1e6  # a value this large in float32 steps by 0.06 or more: a small variation on it is lost


COARSE_SPLIT = 0.1  # a split this much larger than its fraction asked (and twice it) is worth a warning


def split_warnings(ds: SequenceSet, parts: dict[str, tuple[SequenceSet, float]]) -> list[str]:
    """A held-out part far larger than its fraction (few recordings, or sequences per class, split coarsely):
    say so. ``parts``: the option (``--val``, ``--test``) -> (its part of ``ds``, the fraction asked)."""
    unit = "recording" if ds.groups is not None else "sequence"
    out = []
    for option, (part, frac) in parts.items():
        share = part.cases() / ds.cases()
        if frac > 0 and share >= 2 * frac and share - frac >= COARSE_SPLIT:
            out.append(
                f"{option} {frac:g} held out {part.cases()} of {ds.cases()} {unit}s ({share:.0%}): each "
                f"{unit} goes whole to one split, so few {unit}s split coarsely; add {unit}s, or give the "
                "held-out data as a file (--test-data)"
            )
    return out


def window_warnings(ds: SequenceSet) -> list[str]:
    """A hop longer than the window leaves the samples between windows out of training: say how many."""
    hop, window = ds.options.get("hop"), ds.window
    if hop is None or window is None or hop <= window:
        return []
    return [
        f"--hop {hop} is longer than the {window}-sample window: {hop - window} of every {hop} samples fall "
        "between windows and never train; use a hop of at most the window to train on all of them"
    ]


def channel_warnings(arrays: list[np.ndarray], names: list[str]) -> list[str]:
    """What is wrong with the training split's channels, one sentence each naming the channel and the fix:
    values beyond float32's safe range, a constant channel, a few extreme values that set the scale."""
    stacked = np.concatenate([np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in arrays])
    out = []
    for c, name in enumerate(names):
        v = stacked[:, c]
        if not np.all(np.isfinite(v)):
            continue  # refused by the loaders' own checks
        top = float(np.max(np.abs(v)))
        if top > FLOAT32_SAFE:
            out.append(
                f"channel {name!r} holds values up to {top:.3g}, beyond what float32 normalises safely: "
                "rescale it (other units) or drop it (--channels)"
            )
            continue
        if float(np.ptp(v)) == 0.0:
            out.append(
                f"channel {name!r} is constant ({v[0]:.7g}) in the training split{_float32_hint(v[0])}: it "
                "carries no information; leave it out (--channels)"
            )
            continue
        q1, q3 = np.percentile(v, (25, 75))
        robust = (q3 - q1) / 1.349
        if robust > 0 and float(v.std()) > OUTLIER_RATIO * robust:
            median = float(np.median(v))
            far = int(np.sum(np.abs(v - median) > OUTLIER_RATIO * robust))
            out.append(
                f"channel {name!r}: {far} extreme value(s) (up to {top:.3g}, the median {median:.3g}) set "
                f"its scale ({float(v.std()):.3g} std against {robust:.3g} for the bulk), so normalisation "
                "squashes the other samples towards zero: clip or remove the outliers"
            )
    return out


def constant_target_error(arrays: list[np.ndarray]) -> str | None:
    """Why a regression's training targets (rows of [T_i, O] arrays) leave nothing to learn: an output that
    is constant; None if every output varies."""
    stacked = np.concatenate([np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in arrays])
    constant = np.flatnonzero(np.ptp(stacked, axis=0) == 0)
    if not constant.size:
        return None
    k = int(constant[0])
    value = float(stacked[0, k])
    return (
        f"target {k} is constant ({value:.7g}) in the training split{_float32_hint(value)}: there is "
        "nothing to learn; check the target column"
    )


def _float32_hint(value: float) -> str:
    """For a constant that may be float32's doing: a large offset leaves no digits for what varies."""
    if abs(float(value)) < LARGE_OFFSET:
        return ""
    return " (float32 keeps about 7 significant digits: if it varies in the file, subtract its offset)"


def duplicate_warnings(train: list[np.ndarray], held_out: list[np.ndarray]) -> list[str]:
    """A sentence when held-out sequences are exact copies of training ones (a recording saved twice,
    overlapping exports): their score is the training score, not what a new recording would get."""

    def key(a: np.ndarray) -> tuple[tuple[int, ...], bytes]:
        return a.shape, hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).digest()

    seen = {key(a) for a in train}
    copies = sum(key(a) in seen for a in held_out)
    if not copies:
        return []
    return [
        f"{copies} of the {len(held_out)} held-out sequences are exact copies of training sequences: their "
        "score overstates what new recordings would get; remove the duplicates, or split by recording "
        "(groups)"
    ]


class Normalizer:
    """Per-channel mean/std, fitted on the training split only. The std is floored (a constant channel's 0
    must not divide) at STD_FLOOR times the channel's largest |value|, and at most STD_FLOOR: a channel in
    small units (a magnetometer in tesla, 1e-5) keeps its variation, where a fixed floor of 1e-6 flattened
    it."""

    STD_FLOOR = 1e-6
    TINY = 1e-30  # an all-zero channel's floor (its normalised values are 0 whatever it is)

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.maximum(np.asarray(std, dtype=np.float32), np.float32(self.TINY))

    @classmethod
    def fit(cls, arrays: list[np.ndarray]) -> Normalizer:
        """Fit on the rows of 2-D arrays [T_i, C] (every step counts once)."""
        if not arrays:
            raise TinyLSTMError("cannot fit a normalizer on an empty training split; use more data")
        stacked = np.concatenate([np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in arrays])
        floor = cls.STD_FLOOR * np.minimum(np.max(np.abs(stacked), axis=0), 1.0)
        return cls(stacked.mean(axis=0), np.maximum(stacked.std(axis=0), floor))

    def apply(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def invert(self, values: np.ndarray) -> np.ndarray:
        return (values * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> Normalizer:
        try:
            return cls(np.asarray(d["mean"]), np.asarray(d["std"]))
        except (KeyError, TypeError, ValueError):
            raise TinyLSTMError("normalisation data must be a dict with 'mean' and 'std' lists") from None
