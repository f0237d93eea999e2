"""UEA/UCR (sktime) ``.ts`` files: header lines ``@key value``, then one case per line.

A data line holds the dimensions separated by ``:`` (values comma-separated inside a dimension)
and ends with the class label (``@classLabel true ...``) or a numeric target (``@targetLabel true``).
Cases may differ in length; the dimensions of one case must share a length. Missing values: see
trainer/cases.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.cases import check_options, parse_values, read_lines, window_set
from tinylstm.trainer.sequence_set import SequenceSet


def _header(lines: list[tuple[int, str]], path: Path) -> tuple[dict[str, list[str]], int]:
    header: dict[str, list[str]] = {}
    for pos, (lineno, line) in enumerate(lines):
        if not line.startswith("@"):
            raise TinyLSTMError(f"{path}:{lineno}: expected a @header line before @data; is this a .ts file?")
        key, *rest = line.split()
        key = key[1:].lower()
        if key == "data":
            return header, pos + 1
        header[key] = rest
    raise TinyLSTMError(f"{path}: no @data line found; a .ts file needs a header ending with @data")


def _flag(header: dict[str, list[str]], key: str) -> bool:
    values = header.get(key.lower(), [])
    return bool(values) and values[0].lower() == "true"


def load_ts(path: Path, missing: str = "error", task: str = "auto") -> SequenceSet:
    """Parse a .ts file into window-mode sequences (one label or target per case)."""
    check_options(missing, task)
    raw = read_lines(path)
    lines = [(n + 1, s.strip()) for n, s in enumerate(raw)]
    # comment lines: '#' (sktime's files), '%' (aeon's, as in ARFF)
    lines = [(n, s) for n, s in lines if s and not s.startswith(("#", "%"))]
    header, first = _header(lines, path)
    if _flag(header, "timestamps"):
        raise TinyLSTMError(
            f"{path}: @timeStamps true is not supported; export the series without timestamps"
        )
    class_line = header.get("classlabel", ["false"])
    is_regression = _flag(header, "targetlabel")
    has_classes = bool(class_line) and class_line[0].lower() == "true"
    if not is_regression and not has_classes:
        raise TinyLSTMError(
            f"{path}: no labels (@classLabel false and no @targetLabel true); training needs labelled cases"
        )
    if task == "regression" and not is_regression:
        raise TinyLSTMError(f"{path} has class labels, not numeric targets; drop --task regression")
    if task == "classification" and is_regression:
        raise TinyLSTMError(f"{path} has numeric targets (@targetLabel true); drop --task classification")
    classes = class_line[1:] if has_classes and not is_regression else None
    if classes is not None and len(classes) == 0:
        raise TinyLSTMError(f"{path}: @classLabel true lists no labels; list them after 'true'")

    sequences: list[np.ndarray] = []
    raw_labels: list[str] = []
    n_dims: int | None = None
    for lineno, line in lines[first:]:
        where = f"{path}:{lineno}"
        parts = line.split(":")
        if len(parts) < 2:
            raise TinyLSTMError(f"{where}: expected 'dim1:...:label', found no ':' separator; fix the line")
        dims = [
            parse_values(text.split(","), missing, f"{where} dimension {d + 1}")
            for d, text in enumerate(parts[:-1])
        ]
        if n_dims is None:
            n_dims = len(dims)
        if len(dims) != n_dims:
            raise TinyLSTMError(f"{where}: {len(dims)} dimensions, earlier cases have {n_dims}; fix the line")
        lengths = {d.shape[0] for d in dims}
        if len(lengths) != 1:
            raise TinyLSTMError(
                f"{where}: dimensions of one case have different lengths {sorted(lengths)}; "
                "all dimensions of a case must have the same length"
            )
        sequences.append(np.stack(dims, axis=1))
        raw_labels.append(parts[-1].strip())
    if not sequences:
        raise TinyLSTMError(f"{path}: no data lines after @data; the file holds no cases")
    declared = header.get("dimensions")
    if declared and declared[0].isdigit() and int(declared[0]) != n_dims:
        raise TinyLSTMError(
            f"{path}: @dimensions says {declared[0]} but the cases have {n_dims}; fix the header"
        )
    problem = header.get("problemname", [path.stem])
    name = problem[0] if problem else path.stem
    return window_set(path, sequences, raw_labels, classes, is_regression, name)
