"""The builtin ``watch`` dataset: seglearn's 140 six-axis smartwatch IMU recordings (50 Hz, 7 exercises).

The file ships inside the seglearn package; it is located without importing seglearn (which
pulls in scikit-learn and pandas) and loaded with numpy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.sequence_set import SequenceSet, check_windowing, first_nonfinite, window_starts


def watch_path() -> Path:
    spec = importlib.util.find_spec("seglearn")
    if spec is None or not spec.submodule_search_locations:
        raise TinyLSTMError(
            "the builtin 'watch' dataset ships with seglearn, which is not installed: "
            "pip install seglearn (or pip install 'tinylstm[datasets]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "watch_dataset.npy"
    if not path.is_file():
        raise TinyLSTMError(
            f"seglearn is installed but {path} is missing: reinstall it (pip install -U seglearn)"
        )
    return path


def load_watch(window: int = 128, hop: int = 32) -> SequenceSet:
    """Cut each recording into windows of ``window`` steps every ``hop`` steps; groups = recording."""
    path = watch_path()
    try:
        data = np.load(path, allow_pickle=True).item()
    except (OSError, ValueError) as exc:
        raise TinyLSTMError(f"cannot load {path} ({exc}); reinstall seglearn") from None
    check_windowing(window, hop, [len(x) for x in data["X"]], "recording")
    sequences: list[np.ndarray] = []
    labels: list[int] = []
    groups: list[int] = []
    for rec, (x, y) in enumerate(zip(data["X"], data["y"], strict=True)):
        x = np.asarray(x, dtype=np.float32)
        bad = first_nonfinite(x)
        if bad is not None:
            raise TinyLSTMError(f"{path}: recording {rec} step {bad[0]} channel {bad[1]} is NaN/inf")
        for s in window_starts(x.shape[0], window, hop):
            sequences.append(x[s : s + window])
            labels.append(int(y))
            groups.append(rec)
    ds = SequenceSet(
        sequences=sequences,
        labels=np.asarray(labels, dtype=np.int64),
        task="classification",
        mode="window",
        classes=[str(c) for c in data["y_labels"]],
        channels=[str(c) for c in data["X_labels"]],
        name="watch",
        groups=np.asarray(groups),
        window=window,
    )
    ds.validate()
    return ds
