"""What an architecture costs on a board, known before training: flash, RAM and latency per step.

- flash: the model's constant data (codegen/emit_c.model_data_bytes: exact for the shapes, whatever the
  weights) plus the kernel's code (.text of the step path, measured by compiling it for the board's
  core at the firmware's -Os; for a core without a compiler here, host/fit.py's CODE_ALLOWANCE bound);
- RAM: the model state the kernel keeps (2 * state_words + tl_state_t; a pooled readout's pool included);
- latency: one tl_step counted in unicorn on the board's core (Cortex-M4F, RV32IMC) with a model of
  these shapes, times the core's assumed cycles per instruction, at the board's clock (the kernel
  benchmark's rule, benchmarks/bench_kernel.py); None where no emulator counts the core or the board
  has no clock of its own (the QEMU boards: their instructions are still counted).
The board's own limits (host/fit.py ``check_fits``: the whole firmware) are checked too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinylstm.codegen.contract import HIDDEN_BITS, state_words
from tinylstm.codegen.emit_c import model_data_bytes
from tinylstm.codegen.random_models import random_quantized_model
from tinylstm.codegen.readouts import readout as read_type
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.registry import Board
from tinylstm.host.fit import CODE_ALLOWANCE, check_fits

STATE_STRUCT_BYTES = 28  # sizeof(tl_state_t) on a 32-bit target: 6 pointers + steps
WARMUP = 20  # steps before the counted one


@dataclass(frozen=True)
class Cost:
    flash_bytes: int  # model_data_bytes + code_bytes
    model_data_bytes: int
    code_bytes: int  # the kernel's step path, measured (or CODE_ALLOWANCE for a core not compiled here)
    ram_bytes: int
    latency_ms: float | None
    instructions: int | None
    fits_board: str | None  # None, or why the whole firmware does not fit the board

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def countable(board: Board) -> bool:
    """Whether unicorn counts instructions for the board's core here."""
    from tinylstm.host.unicorn_runner import CORES

    return board.core is not None and board.core.toolchain is not None and board.core.name in CORES


def architecture_cost(
    board: Board,
    cell: str,
    layers: int,
    inp: int,
    hidden: int,
    out: int,
    classes: list[str] | None = None,
    hidden_bits: int = HIDDEN_BITS,
    readout: str = "last",
) -> Cost:
    """The cost of a model of these shapes (and class names: the model data holds them) with an int8 or int16
    (``hidden_bits``) hidden state and the head reading ``readout`` (codegen/readouts.py) on ``board``."""
    rng = np.random.default_rng(hidden * 31 + inp)
    t = np.arange(400)[:, None]
    data = np.sin(t / (5 + 3 * np.arange(inp))) + 0.3 * rng.standard_normal((400, inp))
    model = random_quantized_model(
        hidden + inp, cell, layers, inp, hidden, out, data[None], hidden_bits, readout
    )
    model = dataclasses.replace(model, meta=dataclasses.replace(model.meta, classes=classes))
    ram = 2 * state_words(layers, hidden, hidden_bits, read_type(readout).pooled) + STATE_STRUCT_BYTES
    try:
        check_fits(model, board, board.rx_buffer_min, 0)
        fits = None
    except TinyLSTMError as exc:
        fits = str(exc)
    if not countable(board):
        size = model_data_bytes(model)
        return Cost(size + CODE_ALLOWANCE, size, CODE_ALLOWANCE, ram, None, None, fits)
    from tinylstm.host.unicorn_runner import Target, build_target, code_size

    assert board.core is not None
    with tempfile.TemporaryDirectory(prefix="tinylstm-cost-") as tmp:
        build = build_target(model, Path(tmp), dsp=True, opt="-Os", max_steps=WARMUP, core=board.core)
        target = Target(build, model)
        xq = rng.integers(-128, 128, (WARMUP + 1, inp)).astype(np.int8)
        target.run(xq[:WARMUP])
        instructions, _ = target.measure_step(xq[WARMUP])
        code = code_size(build)
    latency = (
        round(instructions * board.core.cpi_assumed / board.cpu_hz * 1000.0, 4) if board.cpu_hz else None
    )
    size = model_data_bytes(model)
    return Cost(size + code, size, code, ram, latency, instructions, fits)


class CostCache:
    """Costs by architecture, kept in a JSON file so a resumed or parallel search measures each once."""

    def __init__(self, path: Path, board: Board) -> None:
        self.path, self.board = path, board

    def get(
        self,
        cell: str,
        layers: int,
        inp: int,
        hidden: int,
        out: int,
        classes: list[str] | None,
        hidden_bits: int = HIDDEN_BITS,
        readout: str = "last",
    ) -> Cost:
        names = hashlib.sha256(json.dumps(classes).encode()).hexdigest()[:12]
        key = f"{self.board.name}:{cell}:{layers}:{inp}:{hidden}:{out}:{names}:h{hidden_bits}:{readout}"
        known = json.loads(self.path.read_text()) if self.path.is_file() else {}
        if key in known:
            return Cost(**known[key])
        cost = architecture_cost(self.board, cell, layers, inp, hidden, out, classes, hidden_bits, readout)
        known = json.loads(self.path.read_text()) if self.path.is_file() else {}
        known[key] = cost.to_dict()
        tmp = self.path.with_suffix(f".{np.random.default_rng().integers(1 << 30)}.tmp")
        tmp.write_text(json.dumps(known, indent=1))
        tmp.replace(self.path)  # atomic: another worker may write the same file
        return cost
