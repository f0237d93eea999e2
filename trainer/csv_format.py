"""CSV files whose rows are time steps, with a header row.

* ``target``: the label/target column (default ``label`` if present, else the last column).
* ``group``: optional sequence-id column; the rows of one group form one sequence, in file order.
* ``channels``: input columns (default: every other numeric column; with ``forecast`` the target
  column is an input too, since forecasting a signal from its own past is the usual case; without
  ``forecast`` the target may not be an input: the model would read its own answer). A column
  counts as text, and is skipped (listed in ``SequenceSet.skipped``), only when most of its values are
  not numbers; a numeric column with an empty or non-numeric cell is an error naming the row and
  column, never a silently dropped input.
* With a group column and a target constant inside every group: window mode (one label per
  recording), each recording a sequence, or, given ``window``, cut into windows of ``window`` steps
  every ``hop`` (default: the window) steps that keep its label and group. Otherwise stream mode:
  per-step labels, and each sequence (the whole file when there is no group column) is cut into
  training windows of ``window`` (default 64) steps every ``hop`` steps.
* A given window longer than every recording is refused (``check_windowing``): the model would record a
  window no data has. A hop longer than the window is allowed; training warns of the samples it skips.
* ``task="auto"``: classification when the target is non-numeric, or integer-valued with at most
  50 distinct values; regression otherwise (for more integers, ``SequenceSet.task_note`` says so and names
  ``task="classification"``; train prints it).
* ``forecast=k`` (regression): the target at step t is the target column's value at step t+k.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.sequence_set import (
    SequenceSet,
    Task,
    as_float32,
    check_windowing,
    nonfinite_problem,
    window_starts,
)

MAX_AUTO_CLASSES = 50
STREAM_BLOCKS = 20  # a single stream is split into this many contiguous groups for leak-free splits
STREAM_WINDOW = 64  # stream mode's training windows when no window is given
# bytes that are not UTF-8, as errors="surrogateescape" reads them
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _refuse_undecodable(path: Path, rows: list[list[str]]) -> None:
    """Raise naming the first cell that holds bytes which are not UTF-8."""
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if _UNDECODABLE.search(cell):
                raw = cell.strip().encode("utf-8", "surrogateescape")
                raise TinyLSTMError(
                    f"{path} row {r + 1} column {c + 1}: {raw!r} is not UTF-8 text; save the file as UTF-8 "
                    '(Excel: "CSV UTF-8")'
                )


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte order mark, which is not part of the first name
        with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
            text = fh.read()
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r and any(c.strip() for c in r)]
    except OSError as exc:
        raise TinyLSTMError(f"cannot read {path}: {exc.strerror}; check the path and permissions") from None
    except csv.Error as exc:
        raise TinyLSTMError(f"{path} is not valid CSV ({exc}); fix the quoting or the delimiter") from None
    if _UNDECODABLE.search(text):
        _refuse_undecodable(path, rows)
    if len(rows) < 2:
        raise TinyLSTMError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    other = [sep for sep in (";", "\t", "|") if len(header) == 1 and sep in header[0]]
    if other:
        raise TinyLSTMError(
            f"{path}: the header {header[0]!r} is one column: the file is separated by {other[0]!r}, not "
            "commas; save it comma-separated"
        )
    if len(set(header)) != len(header):
        raise TinyLSTMError(f"{path}: duplicate column names in the header {header}; rename them")
    for i, r in enumerate(rows[1:]):
        if len(r) != len(header):
            raise TinyLSTMError(
                f"{path} row {i + 2}: {len(r)} fields but the header has {len(header)}; fix that row"
            )
    return header, [[c.strip() for c in r] for r in rows[1:]]


def _as_float(column: list[str]) -> np.ndarray | None:
    try:
        return np.asarray([float(v) for v in column], dtype=np.float64)
    except ValueError:
        return None


def _is_text(column: list[str]) -> bool:
    """Most non-empty values are not numbers (labels, names, timestamps): not an input channel."""
    filled = [v for v in column if v != ""]
    numbers = sum(_as_float([v]) is not None for v in filled)
    return not filled or numbers * 2 < len(filled)


def _numeric_column(path: Path, name: str, column: list[str]) -> np.ndarray:
    values = _as_float(column)
    if values is None:
        row = next(i for i, v in enumerate(column) if _as_float([v]) is None)
        what = "is empty" if column[row] == "" else f"has {column[row]!r}, which is not a number"
        raise TinyLSTMError(
            f"{path} row {row + 2} column {name!r} {what}; fill or fix the value (or drop the row), or leave "
            "the "
            "column out with --channels"
        )
    _, bad = as_float32(values)
    if bad is not None:
        problem = nonfinite_problem(
            column[bad[0]], "replace NaN/inf values (fill or drop the rows) before training"
        )
        raise TinyLSTMError(f"{path} row {bad[0] + 2} column {name!r}: value {problem}")
    return values


def _check_channels(
    path: Path, channels: list[str], header: list[str], target: str, forecast: int, group: str | None
) -> None:
    """The chosen input columns exist, each once, and hold neither the target (unless forecasting it) nor
    the group column (a recording id is no measurement)."""
    if not channels or "" in channels:
        raise TinyLSTMError(
            f"{path}: --channels {','.join(channels)!r} has an empty column name; list input columns "
            "comma-separated (a,b), or leave the option out for every numeric column"
        )
    for k, ch in enumerate(channels):
        if ch not in header:
            raise TinyLSTMError(f"{path}: no channel column {ch!r}; columns are {header}")
        if ch in channels[:k]:
            raise TinyLSTMError(f"{path}: --channels lists {ch!r} twice; name each input column once")
    if target in channels and not forecast:
        raise TinyLSTMError(
            f"{path}: the target column {target!r} cannot also be an input (the model would read the "
            "answer): drop it from --channels, or predict its future values with --forecast"
        )
    if group in channels:
        raise TinyLSTMError(
            f"{path}: the group column {group!r} names recordings and cannot also be an input: drop it from "
            "--channels"
        )


def _check_finite_classes(path: Path, target: str, raw: list[str], numbers: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(numbers))
    if bad.size:
        raise TinyLSTMError(
            f"{path} row {int(bad[0]) + 2}: the target column {target!r} holds {raw[bad[0]]!r}, which is "
            "not a class; fix or drop the row"
        )


def _resolve_task(
    raw: list[str], numeric: np.ndarray | None, task: str, forecast: int, path: Path, target: str
) -> tuple[Task, str]:
    """The task, and a note where ``task="auto"`` read integers as regression (more than MAX_AUTO_CLASSES
    distinct values), which the user may have meant as classes."""
    if task not in ("auto", "classification", "regression"):
        raise TinyLSTMError(f"task={task!r} is not known; use auto, classification or regression")
    if forecast:
        if task == "classification":
            raise TinyLSTMError("forecast predicts a future numeric value; drop --task classification")
        if numeric is None:
            raise TinyLSTMError(f"{path}: forecast needs a numeric target column; pick one with --target")
        return "regression", ""
    if task == "regression":
        if numeric is None:
            raise TinyLSTMError(
                f"{path}: --task regression needs a numeric target column; pick one with --target"
            )
        return "regression", ""
    if task == "classification" or numeric is None:
        return "classification", ""
    if not np.all(numeric == np.round(numeric)):
        return "regression", ""
    distinct = len(set(raw))
    if distinct <= MAX_AUTO_CLASSES:
        return "classification", ""
    return "regression", (
        f"the target {target!r} holds {distinct} distinct integer values, more than {MAX_AUTO_CLASSES}: "
        "pass --task classification if they are classes"
    )


def load_csv(
    path: Path,
    target: str | None = None,
    group: str | None = None,
    channels: list[str] | None = None,
    task: str = "auto",
    forecast: int = 0,
    window: int | None = None,
    hop: int | None = None,
) -> SequenceSet:
    """Parse a CSV file; see the module docstring for the rules."""
    header, rows = _read(path)
    columns = {name: [r[i] for r in rows] for i, name in enumerate(header)}
    if target is None:
        target = "label" if "label" in columns else header[-1]
    for what, col in (("target", target), ("group", group)):
        if col is not None and col not in columns:
            raise TinyLSTMError(f"{path}: no {what} column {col!r}; columns are {header}")
    if forecast < 0:
        raise TinyLSTMError(f"forecast={forecast} must be >= 0 steps")
    raw_target = columns[target]
    if any(v == "" for v in raw_target):
        row = raw_target.index("")
        raise TinyLSTMError(
            f"{path} row {row + 2}: the target column {target!r} is empty; fill or drop the row"
        )
    target_numeric = _as_float(raw_target)
    resolved, note = _resolve_task(raw_target, target_numeric, task, forecast, path, target)

    skipped: list[str] = []
    if channels is None:
        skip = {group} | (set() if forecast else {target})
        skipped = [h for h in header if h not in skip and _is_text(columns[h])]
        channels = [h for h in header if h not in skip and h not in skipped]
        if not channels:
            raise TinyLSTMError(
                f"{path}: no numeric input columns besides the target (text columns: {skipped}); "
                "add sensor columns"
            )
    else:
        # a numpy array or tuple of names too; spaces around a name (--channels "a, b") as in the header
        channels = [str(c).strip() for c in channels]
        _check_channels(path, channels, header, target, forecast, group)
    x = np.stack([_numeric_column(path, ch, columns[ch]) for ch in channels], axis=1).astype(np.float32)

    classes: list[str] | None = None
    y: np.ndarray
    if resolved == "classification":
        if target_numeric is not None:
            _check_finite_classes(path, target, raw_target, target_numeric)
            distinct = sorted(set(target_numeric.tolist()))
            classes = [str(int(v)) if v == int(v) else str(v) for v in distinct]
            y = np.searchsorted(np.asarray(distinct), target_numeric).astype(np.int64)
        else:
            classes = sorted(set(raw_target))
            lookup = {c: i for i, c in enumerate(classes)}
            y = np.asarray([lookup[v] for v in raw_target], dtype=np.int64)
    else:
        y = _numeric_column(path, target, raw_target).astype(np.float32)[:, None]

    if group is not None:
        _, first, inverse, counts = np.unique(
            np.asarray(columns[group]), return_index=True, return_inverse=True, return_counts=True
        )
        by_group = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
        seq_rows = [by_group[k] for k in np.argsort(first)]
    else:
        seq_rows = [np.arange(len(rows))]

    constant = group is not None and not forecast and all(np.all(y[r] == y[r][0]) for r in seq_rows)
    name = path.stem
    if constant and window is None and hop is not None:
        raise TinyLSTMError(
            f"{path}: --hop {hop} without --window: each recording has one label, so it trains whole unless "
            "--window cuts it; give --window too, or drop --hop"
        )
    if window is not None or hop is not None:  # a window longer than the data: only a given one
        given = STREAM_WINDOW if window is None else window
        lengths = [] if window is None else [len(r) for r in seq_rows]
        check_windowing(given, given if hop is None else hop, lengths, "recording")
    if constant:  # one label per recording: whole, or cut into windows of its label (given a window)
        cut = [
            [r]
            if window is None
            else [r[s : s + window] for s in window_starts(len(r), window, hop or window)]
            for r in seq_rows
        ]
        ds = SequenceSet(
            sequences=[x[w] for ws in cut for w in ws],
            labels=np.asarray([y[r][0] for r, ws in zip(seq_rows, cut, strict=True) for _ in ws]),
            task=resolved,
            mode="window",
            classes=classes,
            channels=list(channels),
            name=name,
            groups=np.asarray([g for g, ws in enumerate(cut) for _ in ws]),
            window=window,
            skipped=skipped,
            task_note=note,
        )
        ds.validate()
        return ds

    window = STREAM_WINDOW if window is None else window
    hop = window if hop is None else hop
    sequences: list[np.ndarray] = []
    step_labels: list[np.ndarray] = []
    seq_groups: list[int] = []
    for g, r in enumerate(seq_rows):
        xs, ys = x[r], y[r]
        if forecast:
            xs, ys = xs[:-forecast], ys[forecast:]
            if xs.shape[0] == 0:
                continue
        starts = window_starts(xs.shape[0], window, hop)
        for k, s in enumerate(starts):
            sequences.append(xs[s : s + window])
            step_labels.append(ys[s : s + window])
            seq_groups.append(g if group is not None else k * STREAM_BLOCKS // len(starts))
    if not sequences:
        raise TinyLSTMError(
            f"{path}: every sequence is shorter than forecast={forecast} steps; lower --forecast"
        )
    ds = SequenceSet(
        sequences=sequences,
        labels=step_labels,
        task=resolved,
        mode="stream",
        classes=classes,
        channels=list(channels),
        name=name,
        groups=np.asarray(seq_groups),
        window=window,
        skipped=skipped,
        task_note=note,
    )
    ds.validate()
    return ds
