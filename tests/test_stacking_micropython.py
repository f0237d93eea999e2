"""Input stacking (contract/stacking.py) in the MicroPython fallback (firmware/micropython/tinylstm_mpy.py):
every output, h and c word, the pool and the stack buffer, the phase and the step count after every sample,
against the golden model, with a reset mid-stream at a sample that is not a multiple of k; under CPython and
under the ``micropython`` executable (viper and plain loops), and through host/targets/mpy_runner.run_blob.
A reset zeroes every state word (tl_reset), so all of them are compared after every sample.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from array import array
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mpy_words import (
    MICROPYTHON,
    STACKING_KEYS,
    assert_words,
    fallback_words,
    full_range_inputs,
    golden_words,
    moving_model,
    needs_micropython,
    run_driver,
    sample_array,
)

from tinylstm.codegen import blob, golden
from tinylstm.codegen.blob import CRC_START
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_int_model
from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import MAX_INPUT, MAX_INPUT16
from tinylstm.errors import TinyLSTMError
from tinylstm.host.targets.bridge import CModel
from tinylstm.host.targets.mpy_runner import run_blob

STACK_OFFSET = 35  # the blob header's stack byte (codegen/blob.py HEADER)
READOUT_NAMES = ["last", "mean", "max"]
STACKS = [2, 3, 7]


def _fallback() -> Any:
    from test_micropython import fallback_module

    return fallback_module()


def stacked_model(
    cell: str, layers: int, hidden_bits: int, readout: str, stack: int, seed: int = 0
) -> tuple[IntModel, np.ndarray, int]:
    """A full-range random stacked model whose state moves with its inputs (a sample out of its place in the
    step shows), full-range samples of its input type (int8, an int16-h model's int16; several steps, a
    trailing part step) and the sample to reset before: mid-step, not a multiple of k."""
    rng = np.random.default_rng([seed, layers, stack, hidden_bits, READOUT_NAMES.index(readout)])
    m = moving_model(rng, cell, layers, hidden_bits, readout, stack)
    assert m.stack == stack and m.input_size == 3
    xq = full_range_inputs(rng, m, 10 * stack + stack // 2 + 1)
    reset_at = 3 * stack + 1
    assert reset_at % stack
    return m, xq, reset_at


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("readout", READOUT_NAMES)
@pytest.mark.parametrize("hidden_bits", [8, 16])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_cpython_every_word(
    cell: str, layers: int, hidden_bits: int, readout: str, stack: int
) -> None:
    m, xq, reset_at = stacked_model(cell, layers, hidden_bits, readout, stack)
    want = golden_words(m, xq, reset_at)
    model = _fallback().Model(blob.to_blob(m), viper=False)
    assert model.stacking == stack and model.info()["stack"] == stack
    for t, x in enumerate(xq):
        if t == reset_at:
            model.reset()
        y = model.step(sample_array(x))
        assert_words(
            fallback_words(model, y),
            want[t],
            f"{cell} {layers}L h{hidden_bits} {readout} k={stack} t={t}",
            STACKING_KEYS,
        )
    # run() continues the same state sample by sample; a fresh stream gives golden.run's outputs
    model.reset()
    ys = np.frombuffer(model.run(xq.tobytes()), "<i2").reshape(-1, m.output_size)
    y_ref, state, _ = golden.run(m, xq[None])
    assert np.array_equal(ys, y_ref[0])
    assert (model.phase, model.steps) == (state.phase, state.steps) == (len(xq) % stack, len(xq) // stack)


@pytest.mark.parametrize("hidden_bits", [8, 16])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_float_samples_fill_the_stack(cell: str, hidden_bits: int) -> None:
    """Float samples are quantized into their place of the step (tl_quantize_input, an int16-h model's
    tl_quantize_input_s16; then the stack)."""
    m, _, _ = stacked_model(cell, 2, hidden_bits, "mean", 3, seed=5)
    xf = (np.random.default_rng(8).standard_normal((40, m.input_size)) * 4).astype(np.float32)
    model = _fallback().Model(blob.to_blob(m), viper=False)
    ys = np.array([list(model.step(array("f", row.tobytes()))) for row in xf], dtype=np.int16)
    y_ref, state, _ = golden.run(m, golden.quantize_input(m, xf)[None])
    assert np.array_equal(ys, y_ref[0])
    assert list(model.stack) == state.stack[0].tolist()


def _with_stack(data: bytes, stack: int) -> bytes:
    b = bytearray(data)
    b[STACK_OFFSET] = stack
    total = struct.unpack_from("<I", b, 12)[0]
    struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[CRC_START:total])))
    return bytes(b)


def test_fallback_refuses_a_stack_the_kernel_cannot_run() -> None:
    mpy = _fallback()
    rng = np.random.default_rng(2)
    data = blob.to_blob(random_int_model(rng, "gru", 1, 5, 4, 2, stack=2))
    assert data[STACK_OFFSET] == 2 and mpy.Model(data).info()["stack"] == 2
    assert 5 * 255 > MAX_INPUT
    with pytest.raises(mpy.BlobError, match="per step exceed"):
        mpy.Model(_with_stack(data, 255))
    with pytest.raises(mpy.BlobError, match="wrong size"):  # layer 0's weights are for 2 samples, not 3
        mpy.Model(_with_stack(data, 3))
    plain = blob.to_blob(random_int_model(rng, "lstm", 1, 5, 4, 2))
    assert plain[STACK_OFFSET] == 0
    model = mpy.Model(plain)
    assert model.stacking == 1 and len(model.stack) == 0


def test_fallback_reads_at_most_max_input16_int16_inputs_per_step() -> None:
    """An int16-h model's layer 0 reads at most MAX_INPUT16 int16 inputs per step (k * C; its int32 sums stay
    exact, in the viper dots too): the fallback runs that many and refuses more, as tl_model_check does."""
    mpy = _fallback()
    rng = np.random.default_rng(4)
    at_limit = random_int_model(rng, "gru", 1, MAX_INPUT16 // 4, 4, 2, hidden_bits=16, stack=4)
    model = mpy.Model(blob.to_blob(at_limit))
    assert model.input_bits == 16 and len(model.stack) == MAX_INPUT16
    for inputs, stack in ((MAX_INPUT16 + 1, 1), (MAX_INPUT16 // 3 + 1, 3)):
        data = blob.to_blob(random_int_model(rng, "gru", 1, inputs, 4, 2, hidden_bits=16, stack=stack))
        with pytest.raises(mpy.BlobError, match=f"reading {inputs * stack} int16 inputs per step"):
            mpy.Model(data)
        with pytest.raises(TinyLSTMError):
            CModel.from_blob(data)


MPY_CASES = [
    ("lstm", 1, 8, "last", 2),
    ("lstm", 2, 16, "mean", 3),
    ("lstm", 3, 8, "max", 7),
    ("gru", 1, 16, "max", 2),
    ("gru", 2, 8, "mean", 7),
    ("gru", 3, 16, "last", 3),
]


@needs_micropython
@pytest.mark.parametrize("mode", ["viper", "plain"])
@pytest.mark.parametrize("cell,layers,hidden_bits,readout,stack", MPY_CASES)
def test_fallback_under_micropython_every_word(
    tmp_path: Path, cell: str, layers: int, hidden_bits: int, readout: str, stack: int, mode: str
) -> None:
    m, xq, reset_at = stacked_model(cell, layers, hidden_bits, readout, stack, seed=1)
    want = golden_words(m, xq, reset_at)
    got = run_driver(tmp_path, m, xq, reset_at, mode)
    for t, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_words(g, w, f"{mode} {cell} {layers}L h{hidden_bits} {readout} k={stack} t={t}", STACKING_KEYS)


@needs_micropython
@pytest.mark.parametrize("mode", ["viper", "plain"])
@pytest.mark.parametrize("cell,hidden_bits", list(itertools.product(CELLS, [8, 16])))
def test_mpy_runner_runs_stacked_blobs(tmp_path: Path, cell: str, hidden_bits: int, mode: str) -> None:
    """host/targets/mpy_runner.run_blob (what `tinylstm check` runs): every output and the final h and c
    words."""
    m, xq, _ = stacked_model(cell, 2, hidden_bits, "mean", 3, seed=2)
    assert MICROPYTHON
    ys, h, c = run_blob(
        MICROPYTHON, blob.to_blob(m), xq, tmp_path, (m.output_size, m.num_layers, m.hidden_size), mode=mode
    )
    y_ref, state, _ = golden.run(m, xq[None])
    assert np.array_equal(ys, y_ref[0]), "outputs differ"
    assert np.array_equal(h, state.h[0].ravel()) and np.array_equal(c, state.c[0].ravel())
