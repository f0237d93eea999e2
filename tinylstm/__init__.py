"""TinyLSTM: train a small LSTM/GRU, quantize it to int8, run the same C on the host and on a board.

One import for a script; every CLI command is a function of the same name, with the command's options
(``--max-flash 32k`` is ``max_flash="32k"``) and defaults::

    import tinylstm

    run = tinylstm.train("watch", "runs/watch", hidden=32)            # PyTorch: model.pt, curves, metrics
    exp = tinylstm.export(run.checkpoint_path, "runs/watch/export")     # int8 C files, model.tlm, report
    report = tinylstm.check(exp.dir)                                    # float vs int8, golden vs C, blob
    c = exp.c_model()                                                   # the generated C, built for the host
    y = c.step(c.quantize_input(sample))                                # int16 outputs; c.h, c.c: the state
    fw = tinylstm.build(exp.dir, "qemu-stm32f405")                      # firmware: fw.elf, fw.bin, fw.sizes
    found = tinylstm.search("watch", "qemu-stm32f405", max_flash="16k", trials=20)  # best model that fits
    fw = tinylstm.build(found["best_export"], "qemu-stm32f405")
    small = tinylstm.prune(run.checkpoint_path, "runs/small", board="stm32f405", max_flash="8k")  # fewer
    # units, fine-tuned: runs/small/model.pt exports like any checkpoint
    with tinylstm.stream("/dev/ttyUSB0", export=exp.dir) as s:          # predictions from a board
        for p in s.predictions(): ...

Also ``explain``, ``flash``, ``parity``; ``BoardStream`` is the lower-level stream. ``tinylstm.TinyLSTMError``
is the one exception every layer raises. The names below are imported on first use, so
``import tinylstm.contract.qmath`` (numpy only) does not pull in PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tinylstm.errors import TinyLSTMError

if TYPE_CHECKING:
    from tinylstm.api import (
        Export,
        Stream,
        build,
        check,
        explain,
        export,
        flash,
        load_export,
        parity,
        prune,
        search,
        stream,
        train,
    )
    from tinylstm.host.link.stream import BoardStream
    from tinylstm.host.targets.bridge import CModel

__all__ = [
    "BoardStream",
    "CModel",
    "Export",
    "Stream",
    "TinyLSTMError",
    "build",
    "check",
    "explain",
    "export",
    "flash",
    "load_export",
    "parity",
    "prune",
    "search",
    "stream",
    "train",
]

_LAZY = {
    # one function per CLI command (host/cli/cmd_<name>.py), same options and defaults
    "train": "tinylstm.api",
    "search": "tinylstm.api",
    "prune": "tinylstm.api",
    "export": "tinylstm.api",
    "check": "tinylstm.api",
    "explain": "tinylstm.api",
    "build": "tinylstm.api",
    "flash": "tinylstm.api",
    "stream": "tinylstm.api",
    "parity": "tinylstm.api",
    "load_export": "tinylstm.api",
    "Export": "tinylstm.api",
    "Stream": "tinylstm.api",
    "CModel": "tinylstm.host.targets.bridge",
    "BoardStream": "tinylstm.host.link.stream",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tinylstm' has no attribute {name!r}")
