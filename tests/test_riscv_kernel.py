"""The kernel as RV32IMC code (the ESP32-C3's instruction set) in unicorn, bit-exact with the golden
reference in every output and state word on every step, for every cell and 1-3 layers with either hidden state
(an int16-h model: int16 input, tl_step_s16), the pooled readouts, input stacking and bidirectional window
models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from firmware_fixtures import require_board_tools

from tinylstm.codegen import golden
from tinylstm.codegen.random_models import random_inputs, random_int_model
from tinylstm.contract.cells import CELLS
from tinylstm.host.boards.registry import CORE_RV32IMC
from tinylstm.host.targets.unicorn_runner import Target, build_target

STEPS = 2_000


@pytest.mark.parametrize("hidden_bits", [8, 16])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_rv32imc_kernel_bit_exact(tmp_path: Path, cell: str, layers: int, hidden_bits: int) -> None:
    require_board_tools("qemu-riscv32")  # the RV32IMC toolchain
    rng = np.random.default_rng(100 * layers + len(cell))
    model = random_int_model(rng, cell, layers, 7, 19, 3, hidden_bits=hidden_bits)
    target = Target(build_target(model, tmp_path, core=CORE_RV32IMC, max_steps=500), model)
    xq = random_inputs(rng, model, STEPS)
    y, h, c = target.run(xq)
    y_ref, _, tr = golden.run(model, xq[None], trace=True)
    assert np.array_equal(y, y_ref[0])
    assert np.array_equal(h, tr["h"][0]) and np.array_equal(c, tr["c"][0])


@pytest.mark.parametrize(
    "cell,readout,stack,window,hidden_bits",
    [
        ("lstm", "mean", 1, 0, 8),
        ("gru", "max", 3, 0, 8),
        ("rnn", "mean", 2, 25, 8),
        ("lstm", "max", 1, 40, 8),
        ("gru", "last", 3, 31, 8),
        ("lstm", "last", 3, 0, 16),
        ("gru", "mean", 2, 0, 16),
    ],
)
def test_rv32imc_readouts_stacking_and_bidirectional(
    tmp_path: Path, cell: str, readout: str, stack: int, window: int, hidden_bits: int
) -> None:
    """Built as a firmware of each model is (only its paths): every output and h/c word, both directions';
    stacked int16-h models buffer int16 samples (tl_state_t.stack16)."""
    require_board_tools("qemu-riscv32")
    rng = np.random.default_rng(7 * stack + window)
    model = random_int_model(
        rng, cell, 2, 7, 19, 3, 18, 40, hidden_bits, readout=readout, stack=stack, window=window
    )
    target = Target(build_target(model, tmp_path, core=CORE_RV32IMC, max_steps=500), model)
    xq = random_inputs(rng, model, STEPS)
    y, h, c = target.run(xq)
    y_ref, _, tr = golden.run(model, xq[None], trace=True)
    h_ref, c_ref = golden.state_trace(tr)
    assert np.array_equal(y, y_ref[0])
    assert np.array_equal(h, h_ref[0]) and np.array_equal(c, c_ref[0])


@pytest.mark.parametrize(
    "cell,layers,readout,stack", [("lstm", 3, "last", 1), ("gru", 2, "max", 3), ("rnn", 1, "mean", 2)]
)
def test_rv32imc_int16_input_bit_exact(
    tmp_path: Path, cell: str, layers: int, readout: str, stack: int
) -> None:
    """An int16 input on an int8 h (-DTL_INPUT16: layer 0's int16 step, int16 samples, the int8 layers above),
    built as its firmware is: every output and h/c word over 2,000 full-range samples."""
    require_board_tools("qemu-riscv32")
    rng = np.random.default_rng(61 + stack)
    model = random_int_model(rng, cell, layers, 7, 19, 3, readout=readout, stack=stack, input_bits=16)
    target = Target(build_target(model, tmp_path, core=CORE_RV32IMC, max_steps=500), model)
    xq = random_inputs(rng, model, STEPS)
    assert xq.dtype == np.int16
    y, h, c = target.run(xq)
    y_ref, _, tr = golden.run(model, xq[None], trace=True)
    assert np.array_equal(y, y_ref[0])
    assert np.array_equal(h, tr["h"][0]) and np.array_equal(c, tr["c"][0])


def test_rv32imc_step_is_counted(tmp_path: Path) -> None:
    """What benchmarks/bench_kernel.py reads: instructions and stack of one step (an LSTM 6x16 takes
    about 14k instructions at -O2: 8.4 per MAC)."""
    require_board_tools("qemu-riscv32")
    model = random_int_model(np.random.default_rng(0), "lstm", 1, 6, 16, 4)
    target = Target(build_target(model, tmp_path, core=CORE_RV32IMC, max_steps=4), model)
    instructions, stack = target.measure_step(np.zeros(6, np.int8))
    assert 5_000 < instructions < 30_000 and 0 < stack < 1024
