"""What an architecture costs on a board, known before training: flash, RAM and latency per sample.

- flash: the model's constant data (codegen/emit_c.model_data_bytes in the int8 weight layout the search
  exports: exact for the shapes, whatever the weights) plus the kernel's code (.text of the step path,
  measured by compiling it for the board's core at the firmware's -Os; for a core without a compiler
  here, host/boards/fit.py's CODE_ALLOWANCE bound). A stacked model's (``stack`` k > 1, contract/stacking.py)
  layer 0 reads k * C values per step, so its input weights, G * H * k * C bytes, grow with k;
- RAM: the model state the kernel keeps: 2 * IntModel.state_words (the layers', a pooled readout's pool,
  a stacked model's k * C inputs: bytes, an int16-h model's int16 words, contract/constants.py)
  + sizeof(tl_state_t);
- latency (priced only when asked: a search prices it for every architecture under a latency budget, else
  only for the architectures its trials train): instructions counted in unicorn on the board's core
  (Cortex-M4F, RV32IMC) with a model of these shapes stepping random samples of its input type (int8, an
  int16-h model's int16), times the core's assumed cycles per instruction (``Core.cpi_assumed``: a fixed CPI,
  no cache or flash wait-state model), at the board's clock (the kernel benchmark's rule,
  benchmarks/bench_kernel.py); None where no emulator counts the core or the board has no clock of its own
  (the QEMU boards: their instructions are still counted). The price is **per sample**, the mean over the k
  step calls (tl_step, an int16-h model's tl_step_s16) of one recurrent step (after WARMUP recurrent steps):
  a stacked model runs its layers (and pool) at one sample in k and at the other k - 1 only buffers the
  sample (C inputs) and runs the dense head on the held readout, so its per-sample cost is about the
  recurrent work / k + the head + the copy. The one sample that runs the layers is priced too (``peak_*``);
  without stacking the two are the same. A bidirectional window model (``window`` W > 0) is priced over a
  whole window from the reset: the mean over its W samples, and its peak the window's last sample, which runs
  the backward stack.
The board's own limits (host/boards/fit.py ``check_fits``: the whole firmware) are checked too.

A price without latency builds nothing new for a model whose build settings (codegen/emit_c.build_settings:
the cell, the hidden format, pooling, stacking, direction) and core this process has already compiled: the
kernel's code depends on those and not on the sizes, which are the model data's (``_CODE_BYTES``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinylstm.codegen.emit_c import build_settings, model_data_bytes
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_inputs, random_quantized_model
from tinylstm.contract.constants import HIDDEN_BITS, INPUT16_BITS
from tinylstm.contract.stacking import check_stack
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.fit import CODE_ALLOWANCE, check_fits
from tinylstm.host.boards.registry import Board

# sizeof(tl_state_t) on a 32-bit target (csrc/tinylstm.h): 14 pointers + steps + phase + wpos (the stacking
# and bidirectional fields are in every model's state, used or not)
STATE_STRUCT_BYTES = 68
# the prices' rule: bumped when it or the kernel changes what a price says, so an older OUT/costs.json's
# entries are measured again (2: per-sample prices of stacked models, tl_state_t with the stacking fields;
# 3: tl_state_t with the bidirectional fields; 4: int16-h models step int16 input, tl_step_s16, and
# tl_state_t has stack16)
COST_VERSION = 4
WARMUP = 20  # recurrent steps before the counted ones (WARMUP * k samples for a stacked model)


@dataclass(frozen=True)
class Cost:
    flash_bytes: int  # model_data_bytes + code_bytes
    model_data_bytes: int
    code_bytes: int  # the kernel's step path, measured (or CODE_ALLOWANCE for a core not compiled here)
    ram_bytes: int
    latency_ms: float | None  # per sample: the mean over the k samples of one recurrent step
    # per sample, the same mean (rounded); None on a counted core: latency not priced (``latency=False``)
    instructions: int | None
    fits_board: str | None  # None, or why the whole firmware does not fit the board
    stack: int = 1  # samples per recurrent step (contract/stacking.py)
    peak_latency_ms: float | None = None  # the sample that runs the layers (= latency_ms when stack is 1)
    peak_instructions: int | None = None

    @property
    def slowest_sample_ms(self) -> float | None:
        """The latency a budget bounds: the peak (prices stored before stacking have only the mean)."""
        return self.peak_latency_ms if self.peak_latency_ms is not None else self.latency_ms

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def countable(board: Board) -> bool:
    """Whether unicorn counts instructions for the board's core here."""
    from tinylstm.host.targets.unicorn_runner import CORES

    return board.core is not None and board.core.toolchain is not None and board.core.name in CORES


def priced_latency(cost: Cost | dict[str, Any], board: Board) -> bool:
    """Whether ``cost`` (or its dict) holds all that can be priced of the latency on ``board``: counted
    instructions, or nothing to count with (a board with no counted core here)."""
    instructions = cost["instructions"] if isinstance(cost, dict) else cost.instructions
    return instructions is not None or not countable(board)


def shape_model(
    cell: str,
    layers: int,
    inp: int,
    hidden: int,
    out: int,
    classes: list[str] | None = None,
    hidden_bits: int = HIDDEN_BITS,
    readout: str = "last",
    stack: int = 1,
    rng: np.random.Generator | None = None,
    window: int = 0,
    input16: bool = False,
) -> IntModel:
    """An integer model of these shapes with seeded random weights: what a price is measured on (its model
    data bytes are exact for the shapes, whatever the weights). ``rng`` draws its calibration data (default:
    seeded by the shapes). ``window`` > 0: a bidirectional window model of that many samples. ``input16``: an
    int16 input on the int8 h."""
    check_stack(stack, inp)
    rng = rng if rng is not None else np.random.default_rng(hidden * 31 + inp)
    # calibration data: enough samples for several steps of k, or one window
    samples = window or max(400, 4 * stack)
    t = np.arange(samples)[:, None]
    data = np.sin(t / (5 + 3 * np.arange(inp))) + 0.3 * rng.standard_normal((samples, inp))
    model = random_quantized_model(
        hidden + inp, cell, layers, inp, hidden, out, data[None], hidden_bits, readout, stack, window > 0,
        INPUT16_BITS if input16 else None,
    )  # fmt: skip
    return dataclasses.replace(model, meta=dataclasses.replace(model.meta, classes=classes))


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
    stack: int = 1,
    window: int = 0,
    latency: bool = True,
    input16: bool = False,
) -> Cost:
    """The cost of a model of these shapes (and class names: the model data holds them) with an int8 or int16
    (``hidden_bits``) hidden state (``input16``: an int16 input on the int8 h), the head reading ``readout``
    (contract/readouts.py) and ``stack`` samples of ``inp`` channels per recurrent step (contract/stacking.py)
    on ``board``, bidirectional over windows of ``window`` samples when > 0; latency and instructions per
    sample (the module's docstring), or with ``latency`` False none (flash, RAM and the board's fit only: no
    instructions counted)."""
    rng = np.random.default_rng(hidden * 31 + inp)  # the calibration data, then the measured inputs
    model = shape_model(
        cell, layers, inp, hidden, out, classes, hidden_bits, readout, stack, rng, window, input16
    )
    ram = 2 * model.state_words + STATE_STRUCT_BYTES
    try:
        check_fits(model, board, board.rx_buffer_min, 0)
        fits = None
    except TinyLSTMError as exc:
        fits = str(exc)
    size = model_data_bytes(model)
    if not countable(board):
        return Cost(size + CODE_ALLOWANCE, size, CODE_ALLOWANCE, ram, None, None, fits, stack)
    from tinylstm.host.targets.unicorn_runner import Target, build_target, code_size

    assert board.core is not None
    settings = sorted(build_settings(model).items())
    code_key = " ".join([board.core.name, *board.core.cpu_flags, *(f"{k}={v}" for k, v in settings)])
    if not latency and code_key in _CODE_BYTES:
        code = _CODE_BYTES[code_key]
        return Cost(size + code, size, code, ram, None, None, fits, stack)
    with tempfile.TemporaryDirectory(prefix="tinylstm-cost-") as tmp:
        build = build_target(model, Path(tmp), dsp=True, opt="-Os", max_steps=WARMUP, core=board.core)
        code = _CODE_BYTES[code_key] = code_size(build)
        if not latency:
            return Cost(size + code, size, code, ram, None, None, fits, stack)
        target = Target(build, model)
        if window:  # one whole window from the reset: its last sample runs the backward stack
            xq = random_inputs(rng, model, window)
            counts = [target.measure_step(x)[0] for x in xq]
        else:
            xq = random_inputs(rng, model, (WARMUP + 1) * stack)
            target.run(xq[: WARMUP * stack])  # the phase is 0 after it: the next k samples are one step
            counts = [target.measure_step(x)[0] for x in xq[WARMUP * stack :]]
    cpi, hz = board.core.cpi_assumed, board.cpu_hz
    mean, peak = sum(counts) / len(counts), max(counts)
    mean_ms = round(mean * cpi / hz * 1000.0, 4) if hz else None
    peak_ms = round(peak * cpi / hz * 1000.0, 4) if hz else None
    return Cost(size + code, size, code, ram, mean_ms, round(mean), fits, stack, peak_ms, peak)


# the kernel's code bytes this process measured, by the core and the build settings (the module's docstring)
_CODE_BYTES: dict[str, int] = {}

# costs this process measured, by CostCache key: another search in the same process (a study per dataset, a
# test suite) prices an architecture it has seen without building and running it again
_MEASURED: dict[str, dict[str, Any]] = {}


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
        stack: int = 1,
        window: int = 0,
        latency: bool = True,
        input16: bool = False,
    ) -> Cost:
        """The price (``architecture_cost``'s arguments), from the file or this process when it holds as
        much as asked (``latency``: the latency priced too), else priced and recorded: a fuller price
        replaces a known one, never the other way round."""
        names = hashlib.sha256(json.dumps(classes).encode()).hexdigest()[:12]
        key = (
            f"v{COST_VERSION}:{self.board.name}:{cell}:{layers}:{inp}:{hidden}:{out}:{names}:h{hidden_bits}:"
            f"{readout}:k{stack}" + (f":w{window}" if window else "") + (":x16" if input16 else "")
        )

        def enough(found: dict[str, Any] | None) -> bool:
            return found is not None and (not latency or priced_latency(found, self.board))

        known = json.loads(self.path.read_text()) if self.path.is_file() else {}
        if enough(known.get(key)):
            return Cost(**known[key])
        if enough(_MEASURED.get(key)):
            cost = Cost(**_MEASURED[key])
        else:
            cost = architecture_cost(
                self.board, cell, layers, inp, hidden, out, classes, hidden_bits, readout, stack, window,
                latency, input16,
            )  # fmt: skip
            _MEASURED[key] = cost.to_dict()
        known = json.loads(self.path.read_text()) if self.path.is_file() else {}
        if key in known and priced_latency(known[key], self.board) and not priced_latency(cost, self.board):
            return cost  # another worker recorded the fuller price meanwhile
        known[key] = cost.to_dict()
        tmp = self.path.with_suffix(f".{np.random.default_rng().integers(1 << 30)}.tmp")
        tmp.write_text(json.dumps(known, indent=1))
        tmp.replace(self.path)  # atomic: another worker may write the same file
        return cost
