"""What the one-case-per-record formats share (``.ts``, the UCR archive's ``.tsv``, ``.arff``): one
dimension's values parsed under a missing-value policy, and a window-mode SequenceSet built from the cases
and their raw labels (class names or numeric targets).

Missing values (``?`` or ``NaN``) raise TinyLSTMError unless ``missing="interpolate"`` is given: then each
dimension is filled by linear interpolation between its known values, and the edges take the nearest known
value (forward/backward fill).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.sequence_set import SequenceSet, Task, as_float32, nonfinite_problem

MISSING_POLICIES = ("error", "interpolate")
TASKS = ("auto", "classification", "regression")


def check_options(missing: str, task: str) -> None:
    if missing not in MISSING_POLICIES:
        raise TinyLSTMError(f"missing={missing!r} is not known; use one of {', '.join(MISSING_POLICIES)}")
    if task not in TASKS:
        raise TinyLSTMError(f"task={task!r} is not known; use one of {', '.join(TASKS)}")


def read_lines(path: Path) -> list[str]:
    """The file's lines; a leading byte order mark is dropped, bytes that are not UTF-8 are refused outside
    comment lines."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TinyLSTMError(f"cannot read {path}: {exc.strerror}; check the path and permissions") from None
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        pass
    lines = []  # a comment line (% in .arff, # in .ts), which no reader reads, may hold any bytes
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").splitlines(), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            if not raw.lstrip().startswith((b"%", b"#")):
                raise TinyLSTMError(
                    f"{path}:{number}: {raw[exc.start : exc.end]!r} is not UTF-8 text; save the file as UTF-8"
                ) from None
            lines.append(raw.decode("utf-8", errors="replace"))
    return lines


def _fill_missing(values: np.ndarray, where: str) -> np.ndarray:
    known = np.isfinite(values)
    if not known.any():
        raise TinyLSTMError(f"{where}: every value is missing; remove the case or fill it in the file")
    steps = np.arange(values.shape[0])
    return np.interp(steps, steps[known], values[known]).astype(np.float32)


def parse_values(fields: list[str], missing: str, where: str, padded: bool = False) -> np.ndarray:
    """One dimension's values (``?``, ``NaN`` or empty: missing). ``padded``: trailing missing values pad a
    shorter case to the file's width (the UCR archive's convention) and are dropped, not filled."""
    values = np.empty(len(fields), dtype=np.float64)
    for i, f in enumerate(fields):
        f = f.strip()
        if f in ("?", ""):
            values[i] = np.nan
            continue
        try:
            values[i] = float(f)
        except ValueError:
            raise TinyLSTMError(f"{where}, value {i + 1}: {f!r} is not a number; fix the data line") from None
    out, _ = as_float32(values)
    if np.isinf(out).any():
        i = int(np.argmax(np.isinf(out)))
        raise TinyLSTMError(f"{where}: value {i + 1} {nonfinite_problem(fields[i].strip(), 'fix the file')}")
    if padded:
        known = np.flatnonzero(~np.isnan(out))
        if not known.size:
            raise TinyLSTMError(f"{where}: every value is missing; remove the case or fill it in the file")
        out = out[: known[-1] + 1]
    if np.isnan(out).any():
        if missing != "interpolate":
            raise TinyLSTMError(
                f"{where}, value {int(np.argmax(np.isnan(out))) + 1}: missing value ('?' or NaN); "
                "fill it in the file, or pass --missing interpolate (Python: missing='interpolate')"
            )
        out = _fill_missing(out, where)
    return out


def _class_labels(raw: list[str]) -> tuple[list[str], list[str]]:
    """The classes of undeclared labels, in numeric order when they are all numbers (UCR: -1, 1, 2, 10),
    else in text order, and the labels as those class names: numbers written two ways (1 and 1.0) are one
    class, named as first written."""
    try:
        values = [float(v) for v in raw]
    except ValueError:
        return sorted(set(raw)), raw
    first: dict[float, str] = {}
    for value, label in zip(values, raw, strict=True):
        first.setdefault(value, label)
    return [first[v] for v in sorted(first)], [first[v] for v in values]


def window_set(
    path: Path,
    sequences: list[np.ndarray],
    raw_labels: list[str],
    classes: list[str] | None,
    regression: bool,
    name: str,
) -> SequenceSet:
    """A window-mode SequenceSet: ``regression`` parses the labels as targets; otherwise they are class
    names, indexed in ``classes`` (the file's declared list) or, when it declares none, in the sorted
    distinct labels."""
    if not sequences:
        raise TinyLSTMError(f"{path}: no data lines; the file holds no cases")
    labels: np.ndarray
    resolved: Task
    if regression:
        for case, label in enumerate(raw_labels, 1):
            try:
                float(label)
            except ValueError:
                raise TinyLSTMError(
                    f"{path}: the target of case {case}, {label!r}, is not a number; fix or drop that case"
                ) from None
        targets = np.asarray([[float(v)] for v in raw_labels], dtype=np.float64)
        labels, bad = as_float32(targets)
        if bad is not None:
            problem = nonfinite_problem(raw_labels[bad[0]], "fix or drop that case")
            raise TinyLSTMError(f"{path}: the target of case {bad[0] + 1} {problem}")
        resolved = "regression"
        classes = None
    else:
        for case, label in enumerate(raw_labels, 1):
            if label in ("", "?") or label.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                raise TinyLSTMError(
                    f"{path}: case {case} has the label {label!r}, which names no class (a missing label); "
                    "fix or drop that case"
                )
        if classes is None:
            classes, raw_labels = _class_labels(raw_labels)
        twice = sorted({c for c in classes if classes.count(c) > 1})
        if twice:
            raise TinyLSTMError(
                f"{path}: the header declares the class(es) {twice} twice; list every class once"
            )
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({v for v in raw_labels if v not in index})
        if unknown:
            raise TinyLSTMError(
                f"{path}: labels {unknown[:5]} are not among the declared classes ({' '.join(classes)}); fix "
                "the header"
            )
        labels = np.asarray([index[v] for v in raw_labels], dtype=np.int64)
        resolved = "classification"
    ds = SequenceSet(
        sequences=sequences,
        labels=labels,
        task=resolved,
        mode="window",
        classes=classes,
        channels=[f"dim{d}" for d in range(sequences[0].shape[1])],
        name=name,
    )
    ds.validate()
    return ds
