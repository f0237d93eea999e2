"""The in-memory dataset every loader produces and the trainer consumes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tinylstm.errors import TinyLSTMError

Task = Literal["classification", "regression"]
Mode = Literal["window", "stream"]


@dataclass
class SequenceSet:
    """Sequences of float32 [T_i, C] samples with their labels or targets.

    ``mode="window"``: one label/target per sequence, meant for its last step; the recurrent
    state is reset between sequences. ``labels`` is an int array [N] (classification) or a
    float32 array [N, K] (regression).
    ``mode="stream"``: a label/target at every step. ``labels`` is a list of int arrays [T_i]
    (classification) or of float32 arrays [T_i, K] (regression).
    ``groups`` holds a recording id per sequence so that windows cut from one recording never
    land in two splits. ``window`` is the window length the sequences were cut to (None when
    sequences are whole recordings). ``spec``/``options`` record how ``load_dataset`` built it.
    """

    sequences: list[np.ndarray]
    labels: np.ndarray | list[np.ndarray]
    task: Task
    mode: Mode
    classes: list[str] | None
    channels: list[str]
    name: str
    groups: np.ndarray | None = None
    window: int | None = None
    skipped: list[str] = field(default_factory=list)  # CSV columns left out of the inputs: they hold text
    task_note: str = ""  # why the loader read the task as it did, where a user may want the other
    spec: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    @property
    def output_size(self) -> int:
        """Logits for classification, target columns for regression."""
        if self.task == "classification":
            assert self.classes is not None
            return len(self.classes)
        first = self.labels[0]
        return int(first.shape[-1])

    def cases(self) -> int:
        """Independent cases: the recordings (``groups``) its sequences were cut from, else the sequences.
        Windows of one recording overlap and share its conditions, so a score over them is worth one case
        per recording, not per window."""
        return len(self) if self.groups is None else len(np.unique(self.groups))

    def subset(self, index: np.ndarray) -> SequenceSet:
        """A new set of the sequences at ``index``; every other field (the metadata) is this one's."""
        idx = [int(i) for i in index]
        if isinstance(self.labels, np.ndarray):
            labels: np.ndarray | list[np.ndarray] = self.labels[np.asarray(idx, dtype=np.int64)]
        else:
            labels = [self.labels[i] for i in idx]
        groups = None if self.groups is None else self.groups[np.asarray(idx, dtype=np.int64)]
        return dataclasses.replace(
            self,
            sequences=[self.sequences[i] for i in idx],
            labels=labels,
            groups=groups,
            options=dict(self.options),
            skipped=list(self.skipped),
        )

    def class_per_sequence(self) -> np.ndarray | None:
        """The class of each sequence in window classification, else None (used to stratify)."""
        if self.task == "classification" and self.mode == "window":
            return np.asarray(self.labels, dtype=np.int64)
        return None

    def validate(self) -> None:
        """Check shapes, dtypes and label ranges; raise TinyLSTMError naming the first problem."""
        if len(self.sequences) == 0:
            raise TinyLSTMError(f"dataset {self.name!r} has no sequences: check the file or the window size")
        c = self.num_channels
        for i, seq in enumerate(self.sequences):
            if seq.ndim != 2 or seq.shape[1] != c or seq.shape[0] < 1:
                raise TinyLSTMError(
                    f"dataset {self.name!r}: sequence {i} has shape {seq.shape}, expected [T>=1, {c}]: "
                    "every sequence needs the same channels"
                )
        if self.task == "classification" and not self.classes:
            # at least 2 in the training data: trainer/data.py check_training_classes (a held-out file of
            # one class is valid)
            raise TinyLSTMError(
                f"dataset {self.name!r} has no classes: check the target column or use --task regression"
            )
        if self.mode == "window":
            labels = np.asarray(self.labels)
            if labels.shape[0] != len(self.sequences):
                raise TinyLSTMError(
                    f"dataset {self.name!r}: {labels.shape[0]} labels for {len(self.sequences)} sequences; "
                    "give one label per sequence"
                )
        else:
            if len(self.labels) != len(self.sequences):
                raise TinyLSTMError(
                    f"dataset {self.name!r}: {len(self.labels)} label arrays for {len(self.sequences)} "
                    "sequences; give per-step labels for every sequence"
                )
            for i, (seq, lab) in enumerate(zip(self.sequences, self.labels, strict=True)):
                if lab.shape[0] != seq.shape[0]:
                    raise TinyLSTMError(
                        f"dataset {self.name!r}: sequence {i} has {seq.shape[0]} steps but "
                        f"{lab.shape[0]} labels; give one label per step"
                    )
        if self.task == "classification":
            assert self.classes is not None
            flat = np.asarray(self.labels) if self.mode == "window" else np.concatenate(list(self.labels))
            if flat.min() < 0 or flat.max() >= len(self.classes):
                raise TinyLSTMError(
                    f"dataset {self.name!r}: label values must lie in 0..{len(self.classes) - 1}; "
                    "fix the labels or the class list"
                )
        if self.groups is not None and len(self.groups) != len(self.sequences):
            raise TinyLSTMError(f"dataset {self.name!r}: groups must have one entry per sequence")


def first_nonfinite(values: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first NaN/inf (a 2-D array's (row, column)), or None when all values are finite."""
    bad = np.argwhere(~np.isfinite(values))
    return tuple(int(i) for i in bad[0]) if bad.size else None


FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_float32(values: np.ndarray) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """``values`` as float32 and the index of the first value that is NaN/inf there (None: all finite): NaN
    or inf in ``values``, or a finite value too large for float32 (no overflow warning is printed)."""
    with np.errstate(over="ignore"):
        out = np.asarray(values).astype(np.float32)
    return out, first_nonfinite(out)


def nonfinite_problem(written: str | float, fix: str) -> str:
    """What is wrong with a value ``as_float32`` flagged, given as the file writes it (text or a number):
    ``is nan; <fix>``, or, for a number too large for float32, that it overflows and how to fix that."""
    value = float(written)
    shown = written if isinstance(written, str) else f"{value:.4g}"
    if np.isnan(value) or (np.isinf(value) and "inf" in str(written).lower()):
        return f"is {shown}; {fix}"
    return (
        f"is {shown}, which overflows float32 (the model's number type, largest {FLOAT32_MAX:.4g}); "
        "rescale the data (e.g. other units)"
    )


def check_windowing(window: int, hop: int, lengths: list[int], what: str) -> None:
    """Refuse windows that would misstate the model: a size below 1, or a window longer than every one of
    ``lengths`` (``what``: the recordings or sequences cut; the model would record a window no data has, and
    the board would reset its state only that often). A hop longer than the window (sparse windows) is
    allowed; training warns of the samples it leaves out (trainer/data.py ``window_warnings``)."""
    for name, value in (("--window", window), ("--hop", hop)):
        if value < 1:
            raise TinyLSTMError(f"{name} {value} must be >= 1 samples; pass a positive size")
    longest = max(lengths, default=0)
    if lengths and window > longest:
        raise TinyLSTMError(
            f"--window {window} is longer than every {what} (the longest has {longest} samples): use at most "
            f"{longest}"
        )


def window_starts(length: int, window: int, hop: int) -> list[int]:
    """Start indices of full windows; a sequence shorter than ``window`` gives one (short) window
    (``check_windowing`` first)."""
    if length <= window:
        return [0]
    return list(range(0, length - window + 1, hop))
