"""NumPy ``.npz`` datasets.

Arrays: ``X`` float [N, T, C]; ``y`` either [N] (one label/target per sequence, window mode) or
[N, T] / [N, T, K] (per-step, stream mode); optional ``lengths`` int [N] (sequence i uses
``X[i, :lengths[i]]``); optional ``classes`` (names for integer labels); optional ``groups`` [N] (a
recording id per sequence: windows of one recording never land in two splits or folds). Integer ``y``
means classification and float ``y`` regression unless ``task`` says otherwise.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.sequence_set import Mode, SequenceSet, Task, first_nonfinite


def _arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except OSError as exc:
        raise TinyLSTMError(f"cannot read {path}: {exc}; check the path") from None
    except (ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise TinyLSTMError(
            f"{path} is not a readable .npz of plain arrays ({exc}); save it with numpy.savez"
        ) from None


def load_npz(path: Path, task: str = "auto") -> SequenceSet:
    arrays = _arrays(path)
    if "X" not in arrays or "y" not in arrays:
        raise TinyLSTMError(f"{path}: needs arrays 'X' [N, T, C] and 'y'; found {sorted(arrays)}")
    x, y = arrays["X"], arrays["y"]
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number):
        raise TinyLSTMError(f"{path}: X has shape {x.shape} ({x.dtype}); expected a numeric [N, T, C] array")
    n, t, _ = x.shape
    if n == 0 or t == 0:
        raise TinyLSTMError(f"{path}: X has shape {x.shape}, no sequences or no steps: save recordings in it")
    if y.shape[0] != n or y.ndim not in (1, 2, 3) or (y.ndim >= 2 and y.shape[1] != t):
        raise TinyLSTMError(f"{path}: y has shape {y.shape}; expected [{n}], [{n}, {t}] or [{n}, {t}, K]")
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
    integer_y = np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)
    resolved: Task = (
        "classification" if (task == "auto" and integer_y) or task == "classification" else "regression"
    )
    if resolved == "classification" and y.ndim == 3:
        raise TinyLSTMError(f"{path}: classification needs y of shape [N] or [N, T], not {y.shape}")

    sequences: list[np.ndarray] = []
    for i in range(n):
        seq = x[i, : int(lengths[i])].astype(np.float32)
        bad = first_nonfinite(seq)
        if bad is not None:
            raise TinyLSTMError(
                f"{path}: X[{i}, {bad[0]}, {bad[1]}] (sequence {i}, step {bad[0]}, channel {bad[1]}) is "
                "NaN/inf; clean the data before training"
            )
        sequences.append(seq)

    y_values = y.astype(np.float64)
    if not np.isfinite(y_values).all():
        raise TinyLSTMError(
            f"{path}: y contains NaN/inf (first at index {np.argwhere(~np.isfinite(y_values))[0].tolist()})"
        )
    classes: list[str] | None = None
    if resolved == "classification":
        if not np.all(y_values == np.round(y_values)):
            raise TinyLSTMError(f"{path}: classification labels in y must be integers 0..K-1")
        y_int = y.astype(np.int64)
        if "classes" in arrays:
            classes = [str(c) for c in arrays["classes"].tolist()]
        else:
            classes = [str(c) for c in range(int(y_int.max()) + 1)]
        if y_int.min() < 0 or y_int.max() >= len(classes):
            raise TinyLSTMError(f"{path}: labels must lie in 0..{len(classes) - 1} to match 'classes'")

    labels: np.ndarray | list[np.ndarray]
    if y.ndim == 1:
        mode: Mode = "window"
        labels = y.astype(np.int64) if resolved == "classification" else y.astype(np.float32)[:, None]
    else:
        mode = "stream"
        per_step = y.astype(np.int64) if resolved == "classification" else y.astype(np.float32)
        if resolved == "regression" and per_step.ndim == 2:
            per_step = per_step[:, :, None]
        labels = [per_step[i, : int(lengths[i])] for i in range(n)]
    ds = SequenceSet(
        sequences=sequences,
        labels=labels,
        task=resolved,
        mode=mode,
        classes=classes,
        channels=[f"ch{c}" for c in range(x.shape[2])],
        name=path.stem,
        groups=groups,
    )
    ds.validate()
    return ds
