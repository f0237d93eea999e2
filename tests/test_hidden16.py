"""The int16 hidden state (int16x8: int16 input, Q0.15 h, int8 weights; docs/integer-contract.md, "int16
hidden state").

numpy golden == C kernel (cffi, the C blob reader, a sanitized build) bit for bit: every output and
every state word, LSTM and GRU, 1-3 layers, calibrated and saturating random models, 10,000-step
streams of int16 inputs (the C float -> int16 conversion too). The blob keeps the format in its header
(old blobs, with 0 there, load as int8 h), the kernel refuses what it cannot run, and on a calibrated
model the int16 h follows the float model more closely than the int8 one.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from sanitized_harness import check_sanitized_run
from test_kernel_parity import assert_stream_bit_exact

from tinylstm.codegen import golden
from tinylstm.codegen.blob import CRC_START, from_blob, read_header, to_blob
from tinylstm.codegen.emit_c import emit_c
from tinylstm.codegen.quantize import calibrate, quantize
from tinylstm.codegen.random_models import (
    float_model_from_torch,
    random_inputs,
    random_int_model,
    random_quantized_model,
)
from tinylstm.codegen.spec import ModelMeta, float_forward
from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import MAX_INPUT16, MULT16_BITS, state_words
from tinylstm.errors import TinyLSTMError
from tinylstm.host.targets.bridge import CModel

HIDDEN_OFFSET = 30  # the blob header's hidden-bits field (docs/model-blob.md)


def _signal(rng: np.random.Generator, T: int, inp: int) -> np.ndarray:
    t = np.arange(T)[:, None]
    x = np.sin(t / (20 + 7 * np.arange(inp))) * 2 + rng.standard_normal((T, inp)) * 0.3
    x[rng.integers(0, T, 50)] *= 6  # bursts past the calibrated range saturate the input
    return x


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_long_stream_quantized_model(cell: str, layers: int) -> None:
    """A calibrated int16-h model: 10,000 steps through 3 layers, 3,000 through 1 and 2."""
    rng = np.random.default_rng(10 + layers)
    x = _signal(rng, 10_000 if layers == 3 else 3_000, 5)
    model = random_quantized_model(layers, cell, layers, 5, 24, 3, x[None, :2000], hidden_bits=16)
    assert model.hidden_format == "int16 Q0.15" and model.layers[0].mult.max() < 1 << MULT16_BITS
    assert_stream_bit_exact(model, golden.quantize_input(model, x.astype(np.float32)))


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("layers", [1, 3])
def test_long_stream_saturating_model(cell: str, layers: int) -> None:
    """Full-range weights, biases at the bound, the largest multipliers: 10,000 steps with extremes."""
    rng = np.random.default_rng(17 + layers)
    model = random_int_model(rng, cell, layers, 7, 19, 4, hidden_bits=16)
    xq = random_inputs(rng, model, 10_000)
    assert xq.dtype == np.int16
    xq[::97] = 32767
    xq[::89] = -32768
    y_ref, _, tr = golden.run(model, xq[None], trace=True)
    assert np.abs(tr["h"]).max() >= 32000  # the h words reach their extremes
    assert_stream_bit_exact(model, xq, (y_ref, tr))


@pytest.mark.slow
def test_sanitized_host_build(tmp_path: Path) -> None:
    """The int16-h paths under -fsanitize=address,undefined (every int64 product, every shift): every cell,
    3 layers at the largest hidden size, 1,000 steps of full-range random inputs (the 10,000-step int16-h
    streams of tests/test_firmware.py prove the long run)."""
    rng = np.random.default_rng(5)
    for cell in CELLS:
        model = random_int_model(rng, cell, 3, 9, 256, 5, 10, 44, hidden_bits=16)
        check_sanitized_run(model, tmp_path / cell, 1_000, rng)


@pytest.mark.parametrize("cell", list(CELLS))
def test_blob_round_trip_and_c_reader(tmp_path: Path, cell: str) -> None:
    """The header carries the format; Python and the C reader both read it back and run it bit-exact."""
    rng = np.random.default_rng(3)
    model = random_int_model(rng, cell, 2, 6, 11, 3, hidden_bits=16)
    blob = to_blob(model)
    assert read_header(blob)["hidden_bits"] == 16
    back = from_blob(blob)
    assert back.hidden_bits == 16 and back.model_hash == model.model_hash
    xq = random_inputs(rng, model, 2_000)
    y_ref, _, tr = golden.run(model, xq[None], trace=True)
    cm = CModel.from_blob(blob, cache_dir=tmp_path)
    ys, hs, cs = cm.trace(xq)
    assert cm.hidden_bits == 16 and hs.dtype == np.int16
    assert np.array_equal(ys, y_ref[0]) and np.array_equal(hs, tr["h"][0]) and np.array_equal(cs, tr["c"][0])


def _with_hidden_field(blob: bytes, value: int) -> bytes:
    b = bytearray(blob)
    struct.pack_into("<H", b, HIDDEN_OFFSET, value)
    struct.pack_into("<I", b, 8, zlib.crc32(b[CRC_START:]) & 0xFFFFFFFF)
    return bytes(b)


def test_old_blob_without_the_field_loads_as_int8(tmp_path: Path) -> None:
    model = random_int_model(np.random.default_rng(4), "lstm", 1, 3, 5, 2)
    old = _with_hidden_field(to_blob(model), 0)  # what blobs written before the field hold there
    assert from_blob(old).hidden_bits == 8 and from_blob(old).model_hash == model.model_hash
    assert CModel.from_blob(old, cache_dir=tmp_path).hidden_bits == 8
    with pytest.raises(TinyLSTMError, match="hidden state of 12 bits"):
        from_blob(_with_hidden_field(to_blob(model), 12))
    with pytest.raises(TinyLSTMError, match="TL_ERR_MODEL"):
        CModel.from_blob(_with_hidden_field(to_blob(model), 12), cache_dir=tmp_path)


def test_kernel_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    """A gate multiplier at 2^MULT16_BITS would overflow the int64 product: tl_model_check refuses it."""
    model = random_int_model(np.random.default_rng(6), "gru", 1, 3, 4, 2, hidden_bits=16)
    model.layers[0].mult[1] = 1 << MULT16_BITS
    with pytest.raises(TinyLSTMError, match="TL_ERR_MODEL"):
        CModel.from_blob(to_blob(model), cache_dir=tmp_path)
    with pytest.raises(TinyLSTMError, match="w16 weight layout is for int8 hidden states"):
        emit_c(model, tmp_path / "w16", layout="w16")


def test_format_is_part_of_the_model(tmp_path: Path) -> None:
    """Same float model, both formats: different hashes, the int16 state buffer, the #error guard."""
    import torch

    torch.manual_seed(0)
    rnn, head = torch.nn.LSTM(4, 16, 2, batch_first=True), torch.nn.Linear(16, 3)
    fm = float_model_from_torch(rnn, head, ModelMeta(input_mean=[0.0] * 4, input_std=[1.0] * 4))
    x = _signal(np.random.default_rng(1), 3_000, 4)
    cal = calibrate(fm, [x[:1500]])
    m8, m16 = quantize(fm, cal), quantize(fm, cal, hidden_bits=16)
    assert m8.model_hash != m16.model_hash
    src = emit_c(m16, tmp_path / "g")
    assert "#error" in src.source.read_text() and "TL_STATE_WORDS_H16" in src.header.read_text()
    assert CModel.from_int_model(m16, cache_dir=tmp_path).state_words == state_words(2, 16, 16)
    # int16 h follows the float model more closely than int8 h on held-out data
    test = x[1500:][None]
    ref = float_forward(fm, test)["y"][0]
    err = {}
    for m in (m8, m16):
        y, _, _ = golden.run(m, golden.quantize_input(m, test.astype(np.float32)))
        err[m.hidden_bits] = float(np.sqrt(np.mean((golden.dequantize_output(m, y[0]) - ref) ** 2)))
    assert err[16] < 0.5 * err[8], err
    with pytest.raises(TinyLSTMError, match="hidden state of 12 bits"):
        quantize(fm, cal, hidden_bits=12)


def test_head_at_its_bound_sanitized(tmp_path: Path) -> None:
    """The head's sum reaches 2^31 (every head weight -128, every h word -32768, the bias at +2^30): the int64
    step of tl_dense_step16 keeps it exact. The GRU is driven to h = n = tanh(-8) = -32768 by its biases."""
    rng = np.random.default_rng(8)
    model = random_int_model(rng, "gru", 1, 3, 256, 2, hidden_bits=16)
    L, H = model.layers[0], 256
    L.weights[:] = 0
    L.bias[:H], L.bias[H : 2 * H], L.bias[2 * H :] = 0, -(1 << 30), -(1 << 30)  # r = 1/2, z ~ 0, n -> -1
    assert L.bias_hn is not None
    L.bias_hn[:] = 0
    L.mult[:] = (1 << 24) + 1
    L.shift[:] = 16
    model.head_w[:] = -128
    model.head_b[:] = 1 << 30
    xq = random_inputs(rng, model, 50)
    _, _, tr = golden.run(model, xq[None], trace=True)
    assert np.all(tr["h"][0, -1] == -32768)
    check_sanitized_run(model, tmp_path / "g", 50, rng)


def test_int16_input_conversion_is_the_c_one(tmp_path: Path) -> None:
    """float -> int16 input: golden.quantize_input == tl_quantize_input_s16 value for value, saturating at
    both ends and rounding half away from zero; NaN refused."""
    rng = np.random.default_rng(11)
    x = _signal(rng, 3_000, 4)
    model = random_quantized_model(2, "lstm", 1, 4, 8, 2, x[None, :1000], hidden_bits=16)
    assert model.input_bits == 16
    samples = np.concatenate([x, x[:200] * 50, -x[:200] * 50]).astype(np.float32)
    want = golden.quantize_input(model, samples)
    cm = CModel.from_int_model(model, cache_dir=tmp_path)
    got = cm.quantize_input(samples)
    assert want.dtype == got.dtype == np.int16 and np.array_equal(got, want)
    assert want.max() == 32767 and want.min() == -32768  # both ends saturate
    assert len(np.unique(want[:3000])) > 2000  # the unsaturated samples keep their resolution
    samples[5, 1] = np.nan
    with pytest.raises(TinyLSTMError, match="NaN"):
        cm.quantize_input(samples)


def test_each_step_refuses_the_other_input_type(tmp_path: Path) -> None:
    """tl_step takes an int8 input, tl_step_s16 an int16-h model's int16 one: each refuses the other's model
    (TL_ERR_ARG) and leaves the state alone; so do tl_quantize_input and tl_quantize_input_s16."""
    rng = np.random.default_rng(12)
    for bits, wrong, ctype in ((16, "tl_step", "int8_t[]"), (8, "tl_step_s16", "int16_t[]")):
        model = random_int_model(rng, "gru", 1, 3, 5, 2, hidden_bits=bits)
        cm = CModel.from_int_model(model, cache_dir=tmp_path)
        cm.step(random_inputs(rng, model))
        h = cm.h
        y = cm._ffi.new("int16_t[]", 2)
        assert getattr(cm._lib, wrong)(cm._state, cm._ffi.new(ctype, 3), y) == -1  # TL_ERR_ARG
        assert np.array_equal(cm.h, h) and cm.steps == 1
        with pytest.raises(TinyLSTMError, match=f"takes int{bits} input"):
            cm.step(np.zeros(3, dtype=np.int16 if bits == 8 else np.int8))
        # the float conversion of the other type refuses it too, and leaves the output alone
        convert = "tl_quantize_input" if bits == 16 else "tl_quantize_input_s16"
        q = cm._ffi.new(ctype, 3)
        assert getattr(cm._lib, convert)(cm.model, cm._ffi.new("float[]", [0.5, 1.0, -1.0]), q) == -1
        assert list(q) == [0, 0, 0]


@pytest.mark.parametrize("cell", list(CELLS))
def test_stacked_int16_input(cell: str, tmp_path: Path) -> None:
    """A stacked int16-h model buffers int16 samples (TL_STACK_WORDS of 2 * k * C bytes): every output, state
    word and buffered sample equal golden's, through the sanitized build too."""
    rng = np.random.default_rng(13)
    model = random_int_model(rng, cell, 2, 3, 9, 2, hidden_bits=16, stack=4)
    assert model.state_words == state_words(2, 9, 16, False, 4 * 3 * 2)
    xq = random_inputs(rng, model, 2_001)
    assert_stream_bit_exact(model, xq)
    cm = CModel.from_int_model(model, cache_dir=tmp_path)
    state = golden.GoldenState.zeros(model, 1)
    for t in range(7):
        cm.step(xq[t])
        golden.step(model, state, xq[t][None])
    assert cm.stack_buffer.dtype == np.int16 and np.array_equal(cm.stack_buffer, state.stack[0])
    check_sanitized_run(model, tmp_path / "san", 500, rng)


def test_layer0_reads_at_most_max_input16_int16_values(tmp_path: Path) -> None:
    """Its int32 input sums stay exact: an int16-h model's layer 0 reads at most MAX_INPUT16 values per step,
    quantize and tl_model_check both refuse more (an int8-input model may read MAX_INPUT)."""
    import torch

    torch.manual_seed(1)
    rnn, head = torch.nn.GRU(MAX_INPUT16 + 1, 4, 1, batch_first=True), torch.nn.Linear(4, 2)
    fm = float_model_from_torch(
        rnn, head, ModelMeta(input_mean=[0.0] * (MAX_INPUT16 + 1), input_std=[1.0] * (MAX_INPUT16 + 1))
    )
    cal = calibrate(fm, [np.random.default_rng(2).standard_normal((50, MAX_INPUT16 + 1))])
    assert quantize(fm, cal).input_size == MAX_INPUT16 + 1
    with pytest.raises(TinyLSTMError, match=f"at most {MAX_INPUT16} int16 inputs per step"):
        quantize(fm, cal, hidden_bits=16)
    wide = random_int_model(np.random.default_rng(3), "gru", 1, MAX_INPUT16 + 1, 4, 2, hidden_bits=16)
    with pytest.raises(TinyLSTMError, match="TL_ERR_MODEL"):
        CModel.from_blob(to_blob(wide), cache_dir=tmp_path)
    ok = random_int_model(np.random.default_rng(3), "gru", 1, MAX_INPUT16, 4, 2, hidden_bits=16)
    assert CModel.from_blob(to_blob(ok), cache_dir=tmp_path).input_size == MAX_INPUT16


def test_python_blob_reader_refuses_a_too_wide_int16_input() -> None:
    wide = random_int_model(np.random.default_rng(4), "lstm", 1, MAX_INPUT16 + 1, 3, 2, hidden_bits=16)
    with pytest.raises(TinyLSTMError, match=f"takes at most {MAX_INPUT16}"):
        from_blob(to_blob(wide))
