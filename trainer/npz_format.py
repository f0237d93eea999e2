"""NumPy ``.npz`` datasets.

Arrays: ``X`` float [N, T, C]; ``y`` either [N] (one label/target per sequence, window mode) or
[N, T] / [N, T, K] (per-step, stream mode); optional ``lengths`` int [N] (sequence i uses
``X[i, :lengths[i]]`` and, per step, ``y[i, :lengths[i]]``: the padding beyond is never read and may hold
anything); optional ``classes`` (names for integer labels); optional ``groups`` [N] (a
recording id per sequence: windows of one recording never land in two splits or folds); any other array is
refused (a misspelt ``lengths`` would have the padding trained on). Integer ``y``
means classification and float ``y`` regression unless ``task`` says otherwise. With ``classes`` the labels
are its indices 0..K-1; without, the classes are the distinct label values, named by them (labels 10 and 20:
classes "10" and "20"), as for a CSV's numeric labels; an explicit held-out file's are matched by name.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.csv_format import MAX_AUTO_CLASSES
from tinylstm.trainer.sequence_set import Mode, SequenceSet, Task, as_float32, nonfinite_problem

REAL_KINDS = "iuf"  # dtype kinds X may hold: signed and unsigned integers, floats
LABEL_KINDS = "biuf"  # and y: those or booleans
ARRAYS = ("X", "y", "lengths", "classes", "groups")  # every array a .npz dataset may hold
NPY_MAGIC = b"\x93NUMPY"  # how a single array's .npy file starts


def _arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        if not zipfile.is_zipfile(path):
            with path.open("rb") as fh:
                npy = fh.read(len(NPY_MAGIC)) == NPY_MAGIC
            what = "it holds a single .npy array" if npy else "not a zip archive, or a truncated one"
            raise TinyLSTMError(
                f"{path} is not a readable .npz ({what}); save the arrays with numpy.savez(path, X=x, y=y)"
            )
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except OSError as exc:
        raise TinyLSTMError(f"cannot read {path}: {exc}; check the path") from None
    except (ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise TinyLSTMError(
            f"{path} is not a readable .npz of plain arrays ({exc}); save it with numpy.savez"
        ) from None
    return arrays


def _check_x(path: Path, x: np.ndarray) -> None:
    if x.ndim != 3:
        raise TinyLSTMError(f"{path}: X has shape {x.shape} ({x.dtype}); expected a numeric [N, T, C] array")
    if x.dtype.kind not in REAL_KINDS:
        raise TinyLSTMError(
            f"{path}: X holds {x.dtype} values; the model reads real numbers: save X as float32 (complex "
            "signals as their magnitude, or real and imaginary parts as two channels; times as seconds)"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise TinyLSTMError(f"{path}: X has shape {x.shape}, no sequences or no steps: save recordings in it")


def _check_y(path: Path, y: np.ndarray, n: int, t: int) -> None:
    if y.ndim not in (1, 2, 3) or y.shape[0] != n or (y.ndim >= 2 and y.shape[1] != t):
        raise TinyLSTMError(f"{path}: y has shape {y.shape}; expected [{n}], [{n}, {t}] or [{n}, {t}, K]")
    if y.dtype.kind not in LABEL_KINDS:
        raise TinyLSTMError(
            f"{path}: y holds {y.dtype} values; labels must be integers 0..K-1 (their names in a `classes` "
            "array) for classification, or floats for regression"
        )


def _class_names(path: Path, arrays: dict[str, np.ndarray]) -> list[str] | None:
    """The ``classes`` array as names, one per class number; None when the file has none."""
    if "classes" not in arrays:
        return None
    given = arrays["classes"]
    if given.ndim != 1:
        raise TinyLSTMError(
            f"{path}: classes has shape {given.shape}; give a 1-D array with one name per class number"
        )
    names = [str(c) for c in given.tolist()]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TinyLSTMError(f"{path}: classes names {name!r} twice; give every class its own name")
        seen.add(name)
    return names


def _read_mask(y: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Where ``y`` holds labels training reads: all of a [N] y; of [N, T(, K)], the steps before each
    sequence's length (the padding beyond it is never read, so it may hold anything)."""
    if y.ndim == 1:
        return np.ones(y.shape, dtype=bool)
    steps = np.arange(y.shape[1])[None, :] < lengths[:, None]
    return steps if y.ndim == 2 else np.broadcast_to(steps[:, :, None], y.shape)


def _index(at: np.ndarray | tuple[int, ...]) -> str:
    return ", ".join(str(int(i)) for i in at)


def _class_numbers(
    path: Path, y: np.ndarray, read: np.ndarray, names: list[str] | None
) -> tuple[list[str], np.ndarray]:
    """Check the class labels training reads; return the class names and the labels as class indices: with
    ``names`` the labels are their indices already; without, the classes are the distinct label values in
    order, named by them (as a CSV's numeric labels), so labels 10 and 20 are two classes, not 21."""
    bad = np.argwhere(read & ~np.isfinite(y))
    if bad.size:
        at = tuple(bad[0])
        raise TinyLSTMError(
            f"{path}: y[{_index(at)}] is {y[at]}; classification labels must be integers 0..K-1"
        )
    values = y[read]
    if not np.all(values == np.round(values)):
        raise TinyLSTMError(f"{path}: classification labels in y must be integers 0..K-1")
    distinct = np.unique(values).astype(np.int64)
    if names is not None:
        if distinct[0] < 0 or distinct[-1] >= len(names):
            raise TinyLSTMError(f"{path}: labels must lie in 0..{len(names) - 1} to match 'classes'")
        return names, y.astype(np.int64)
    return [str(v) for v in distinct.tolist()], np.searchsorted(distinct, y.astype(np.int64)).astype(np.int64)


def _targets(path: Path, y: np.ndarray) -> np.ndarray:
    """Regression targets as float32 (``y`` with its unread padding zeroed)."""
    values, bad = as_float32(y)
    if bad is not None:
        problem = nonfinite_problem(float(y[bad]), "clean the targets before training")
        raise TinyLSTMError(f"{path}: y[{_index(bad)}] {problem}")
    return values


def _sequence(path: Path, x: np.ndarray, i: int, length: int) -> np.ndarray:
    """Sequence ``i`` as float32 [length, C]; NaN/inf or values too large for float32 are refused."""
    raw = x[i, :length]
    seq, bad = as_float32(raw)
    if bad is not None:
        step, channel = bad
        problem = nonfinite_problem(float(raw[bad]), "clean the data before training")
        raise TinyLSTMError(
            f"{path}: X[{i}, {step}, {channel}] (sequence {i}, step {step}, channel {channel}) {problem}"
        )
    return seq


def load_npz(path: Path, task: str = "auto") -> SequenceSet:
    arrays = _arrays(path)
    if "X" not in arrays or "y" not in arrays:
        raise TinyLSTMError(f"{path}: needs arrays 'X' [N, T, C] and 'y'; found {sorted(arrays)}")
    unknown = sorted(set(arrays) - set(ARRAYS))
    if unknown:  # a misspelt `lengths` would have the padding trained on
        raise TinyLSTMError(
            f"{path} holds array(s) {', '.join(unknown)} that are not read (only {', '.join(ARRAYS)} are): "
            "rename a misspelt one, or save the file without them"
        )
    x, y = arrays["X"], arrays["y"]
    _check_x(path, x)
    n, t, _ = x.shape
    _check_y(path, y, n, t)
    lengths = arrays.get("lengths", np.full(n, t))
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise TinyLSTMError(f"{path}: lengths must be an integer array of shape [{n}]")
    if lengths.min() < 1 or lengths.max() > t:
        raise TinyLSTMError(f"{path}: lengths must lie in 1..{t} (the T axis of X)")
    groups = arrays.get("groups")
    if groups is not None and groups.shape != (n,):
        raise TinyLSTMError(f"{path}: groups must hold one recording id per sequence, shape [{n}]")
    if task not in ("auto", "classification", "regression"):
        raise TinyLSTMError(f"task={task!r} is not known; use auto, classification or regression")
    integer_y = y.dtype.kind in "biu"
    resolved: Task = (
        "classification" if (task == "auto" and integer_y) or task == "classification" else "regression"
    )
    if resolved == "classification" and y.ndim == 3:
        raise TinyLSTMError(f"{path}: classification needs y of shape [N] or [N, T], not {y.shape}")
    names = _class_names(path, arrays)
    if names is not None and resolved == "regression":
        raise TinyLSTMError(
            f"{path}: a `classes` array names classes, but y holds {y.dtype} targets (regression): save y as "
            "integers 0..K-1 (or pass --task classification), or drop `classes` for regression"
        )
    sequences = [_sequence(path, x, i, int(lengths[i])) for i in range(n)]

    read = _read_mask(y, lengths)
    used = np.where(read, y, 0)
    classes: list[str] | None = None
    if resolved == "classification":
        classes, values = _class_numbers(path, used, read, names)
    else:
        values = _targets(path, used)
        values = values.reshape(*values.shape[:2], -1)  # a target column axis: [N, 1] or [N, T, K]
    note = ""
    if task == "auto" and resolved == "regression" and y.ndim < 3:
        distinct = np.unique(values[read])
        if len(distinct) <= MAX_AUTO_CLASSES and np.all(distinct == np.round(distinct)):
            note = (
                f"y holds {y.dtype} values, all whole numbers ({len(distinct)} distinct), read as "
                "regression targets as a float y is: save y as integers, or pass --task classification, if "
                "they are classes"
            )
    labels: np.ndarray | list[np.ndarray]
    if y.ndim == 1:
        mode: Mode = "window"
        labels = values
    else:
        mode = "stream"
        labels = [values[i, : int(lengths[i])] for i in range(n)]
    ds = SequenceSet(
        sequences=sequences,
        labels=labels,
        task=resolved,
        mode=mode,
        classes=classes,
        channels=[f"ch{c}" for c in range(x.shape[2])],
        name=path.stem,
        groups=groups,
        task_note=note,
    )
    ds.validate()
    return ds
