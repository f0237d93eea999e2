"""Weka ``.arff`` files as the UCR and UEA time-series archives write them: a header of ``@attribute`` lines,
then ``@data`` with one case per line.

- **Univariate**: one numeric attribute per time step, then the target: ``v1,v2,...,vT,label``.
- **Multivariate** (UEA): a relational attribute holding the time steps (``@attribute x relational`` ...
  ``@end x``), then the target; each case's dimensions are one quoted value, separated by ``\\n``:
  ``'v1,v2,...\\nv1,v2,...',label``.

The target is the last attribute: nominal (``{a,b,c}``) means classification, its classes in the declared
order; numeric means regression. Trailing missing values (``?``) pad a case shorter than the file's width
(the archives' layout for sets of unequal length) and are dropped, so each case keeps its own length; a
missing value inside a case follows the ``missing`` policy (trainer/cases.py). Sparse data lines
(``{index value, ...}``) and other attribute types are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.cases import check_options, parse_values, read_lines, window_set
from tinylstm.trainer.sequence_set import SequenceSet

NUMERIC = ("numeric", "real", "integer")
_ATTRIBUTE = re.compile(r"@attribute\s+('[^']*'|\"[^\"]*\"|\S+)\s+(.+)$", re.IGNORECASE)


@dataclass
class _Header:
    name: str
    steps: int  # numeric attributes before the target (inside the relational one, if any)
    relational: bool
    classes: list[str] | None  # the target's nominal values; None: a numeric target
    first_data: int  # index of the first line after @data


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _header(lines: list[tuple[int, str]], path: Path) -> _Header:
    name = path.stem
    kinds: list[str] = []  # "numeric", "relational" or "nominal", top-level attributes in order
    classes: list[str] | None = None
    inner = 0  # numeric attributes inside the relational attribute
    in_relational = False
    for pos, (lineno, line) in enumerate(lines):
        low = line.lower()
        where = f"{path}:{lineno}"
        if low.startswith("@relation"):
            name = _unquote(line[len("@relation") :]) or name
        elif low.startswith("@end"):
            in_relational = False
        elif low.startswith("@attribute"):
            m = _ATTRIBUTE.match(line)
            if m is None:
                raise TinyLSTMError(f"{where}: expected '@attribute <name> <type>'; fix the header line")
            kind = m.group(2).strip()
            if in_relational:
                if kind.lower() not in NUMERIC:
                    raise TinyLSTMError(f"{where}: a time step of type {kind!r}; time steps must be numeric")
                inner += 1
            elif kind.lower() in NUMERIC:
                kinds.append("numeric")
            elif kind.lower() == "relational":
                kinds.append("relational")
                in_relational = True
            elif kind.startswith("{") and kind.endswith("}"):
                kinds.append("nominal")
                classes = [_unquote(v) for v in kind[1:-1].split(",") if v.strip()]
            else:
                raise TinyLSTMError(
                    f"{where}: attribute type {kind!r} is not supported; time steps are numeric (or one "
                    "relational attribute of numeric steps) and the target is nominal {...} or numeric"
                )
        elif low.startswith("@data"):
            return _layout(path, name, kinds, classes, inner, pos + 1)
        else:
            raise TinyLSTMError(
                f"{where}: expected an @relation, @attribute or @data line; is this an .arff file?"
            )
    raise TinyLSTMError(f"{path}: no @data line found; an .arff file needs a header ending with @data")


def _layout(
    path: Path, name: str, kinds: list[str], classes: list[str] | None, inner: int, first: int
) -> _Header:
    """The cases' layout from the top-level attributes: steps then the target, or one relational then it."""
    if len(kinds) < 2 or kinds[-1] not in ("nominal", "numeric"):
        raise TinyLSTMError(
            f"{path}: the last attribute must be the target (nominal {{...}} or numeric) after the time steps"
        )
    steps = kinds[:-1]
    target_classes = classes if kinds[-1] == "nominal" else None
    if steps == ["relational"]:
        if inner == 0:
            raise TinyLSTMError(f"{path}: the relational attribute declares no time steps")
        return _Header(name, inner, True, target_classes, first)
    if all(k == "numeric" for k in steps):
        return _Header(name, len(steps), False, target_classes, first)
    raise TinyLSTMError(
        f"{path}: the time steps must be numeric attributes or one relational attribute, then the target; "
        f"found {', '.join(kinds)}"
    )


def _split_case(line: str, where: str) -> tuple[list[str], str]:
    """A multivariate data line ``'dim\\ndim...',label`` as its dimensions' texts and the label."""
    quote = line[0]
    end = line.find(quote, 1)
    if quote not in "'\"" or end < 0 or not line[end + 1 :].lstrip().startswith(","):
        raise TinyLSTMError(
            f"{where}: expected a quoted case then its label ('v,v\\nv,v',label); fix the line"
        )
    return line[1:end].split("\\n"), _unquote(line[end + 1 :].lstrip()[1:])


def load_arff(path: Path, missing: str = "error", task: str = "auto") -> SequenceSet:
    """Parse a UCR/UEA ``.arff`` file into window-mode sequences (one label or target per case)."""
    check_options(missing, task)
    lines = [(n + 1, s.strip()) for n, s in enumerate(read_lines(path))]
    lines = [(n, s) for n, s in lines if s and not s.startswith("%")]
    head = _header(lines, path)
    regression = head.classes is None
    if task == "regression" and not regression:
        raise TinyLSTMError(f"{path} has a nominal target (class labels); drop --task regression")
    if task == "classification" and regression:
        raise TinyLSTMError(f"{path} has a numeric target; drop --task classification")
    sequences: list[np.ndarray] = []
    raw_labels: list[str] = []
    for lineno, line in lines[head.first_data :]:
        where = f"{path}:{lineno}"
        if line.startswith("{"):
            raise TinyLSTMError(f"{where}: sparse ARFF data is not supported; write the file dense")
        if head.relational:
            texts, label = _split_case(line, where)
            fields = [t.split(",") for t in texts]
        else:
            *values, label = line.split(",")
            fields = [values]
        if any(len(f) != head.steps for f in fields):
            raise TinyLSTMError(
                f"{where}: {', '.join(str(len(f)) for f in fields)} values per dimension, the header "
                f"declares {head.steps} time steps; fix the line"
            )
        dims = [
            parse_values(f, missing, f"{where} dimension {d + 1}", padded=True) for d, f in enumerate(fields)
        ]
        lengths = sorted({d.shape[0] for d in dims})
        if len(lengths) != 1:
            raise TinyLSTMError(
                f"{where}: the dimensions of one case have different lengths {lengths}; all dimensions of a "
                "case must have the same length"
            )
        if sequences and len(dims) != sequences[0].shape[1]:
            raise TinyLSTMError(
                f"{where}: {len(dims)} dimensions, earlier cases have {sequences[0].shape[1]}; fix the line"
            )
        sequences.append(np.stack(dims, axis=1))
        raw_labels.append(_unquote(label))
    return window_set(path, sequences, raw_labels, head.classes, regression, head.name)
