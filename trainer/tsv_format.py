"""The UCR time-series archive's ``.tsv`` files (``<Name>_TRAIN.tsv`` and ``<Name>_TEST.tsv`` of the 2018
archive): one univariate case per line, tab-separated, the class label first, then the values.

The archive pads a case shorter than the set's longest with trailing ``NaN``: that padding is dropped, so each
case keeps its own length. A missing value inside a case follows the ``missing`` policy (trainer/cases.py).
The classes are the distinct labels in numeric order (-1, 1, 2, ...); ``task="regression"`` reads the first
field as a numeric target instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.cases import check_options, parse_values, read_lines, window_set
from tinylstm.trainer.sequence_set import SequenceSet


def load_tsv(path: Path, missing: str = "error", task: str = "auto") -> SequenceSet:
    """Parse a UCR ``.tsv`` file into window-mode sequences of one channel."""
    check_options(missing, task)
    sequences: list[np.ndarray] = []
    raw_labels: list[str] = []
    for lineno, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        where = f"{path}:{lineno}"
        if len(fields) < 2:
            raise TinyLSTMError(
                f"{where}: expected '<label><TAB><value><TAB>...' (the UCR archive's layout), found no tab; "
                "a file with a header row and named columns is a .csv"
            )
        values = parse_values(fields[1:], missing, where, padded=True)
        sequences.append(values[:, None])
        raw_labels.append(fields[0].strip())
    return window_set(path, sequences, raw_labels, None, task == "regression", path.stem)
