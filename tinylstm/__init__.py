"""TinyLSTM: train a small LSTM/GRU, quantize it to int8, run the same C on the host and on a board.

One import for a script::

    import tinylstm

    run = tinylstm.train("watch", "runs/watch", hidden=32)            # PyTorch: model.pt, curves, metrics
    exp = tinylstm.export(run.checkpoint_path, "runs/watch/export")     # int8 C files, model.tlm, report
    report = tinylstm.check(exp.dir)                                    # float vs int8, golden vs C, blob
    c = exp.c_model()                                                   # the generated C, built for the host
    y = c.step(c.quantize_input(sample))                                # int16 outputs; c.h, c.c: the state
    with tinylstm.BoardStream("/dev/ttyUSB0", exp.dir) as s:            # predictions from a board
        for p in s.predictions(): ...

``tinylstm.TinyLSTMError`` is the one exception every layer raises. The names below are imported on
first use, so ``import tinylstm.codegen.qmath`` (numpy only) does not pull in PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tinylstm.errors import TinyLSTMError

if TYPE_CHECKING:
    from tinylstm.api import Export, check, export, load_export, parity, train
    from tinylstm.host.bridge import CModel
    from tinylstm.host.stream import BoardStream

__all__ = [
    "BoardStream",
    "CModel",
    "Export",
    "TinyLSTMError",
    "check",
    "export",
    "load_export",
    "parity",
    "train",
]

_LAZY = {
    "train": "tinylstm.api",
    "export": "tinylstm.api",
    "load_export": "tinylstm.api",
    "check": "tinylstm.api",
    "parity": "tinylstm.api",
    "Export": "tinylstm.api",
    "CModel": "tinylstm.host.bridge",
    "BoardStream": "tinylstm.host.stream",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tinylstm' has no attribute {name!r}")
