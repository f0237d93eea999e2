"""The int16 input on an int8 hidden state (``export --input-bits 16``; docs/integer-contract.md, "int16
input").

numpy golden == C kernel (cffi, the C blob reader, a sanitized build) bit for bit: every output and every
state word, LSTM, GRU and RNN, 1-3 layers, saturating and calibrated models, stacked and pooled,
10,000-step streams of int16 samples (the C float -> int16 conversion too). Layer 0 sums in int64 like an
int16-h layer and writes the int8 h the layers above read. The blob and the export keep the format, the
kernel and the readers refuse what they cannot run, and on heavy-tailed data the int16 input follows the
float model more closely than the int8 one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sanitized_harness import check_sanitized_run
from test_kernel_parity import assert_stream_bit_exact

from tinylstm.codegen import golden
from tinylstm.codegen.blob import CRC_START, from_blob, read_header, to_blob
from tinylstm.codegen.emit_c import build_defines, build_settings, model_data_bytes, render_source
from tinylstm.codegen.quantize import calibrate, quantize
from tinylstm.codegen.random_models import (
    float_model_from_torch,
    random_inputs,
    random_int_model,
    random_quantized_model,
)
from tinylstm.codegen.spec import FloatModel, ModelMeta, float_forward
from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import BLOB_INPUT16_FLAG, MAX_INPUT16, MULT16_BITS, state_words
from tinylstm.errors import TinyLSTMError
from tinylstm.host.link.protocol import Cell, Hello, Input, InputS16, Mode, Source, input_frame
from tinylstm.host.targets.bridge import CModel

HIDDEN_OFFSET = 30  # the blob header's hidden-bits byte, which carries BLOB_INPUT16_FLAG (docs/model-blob.md)


def _signal(rng: np.random.Generator, T: int, inp: int) -> np.ndarray:
    """A sine per channel with noise, and spikes of 10-40x on a few samples: a power meter's heavy tail."""
    t = np.arange(T)[:, None]
    x = np.sin(t / (20 + 7 * np.arange(inp))) * 0.5 + rng.standard_normal((T, inp)) * 0.05
    spikes = rng.integers(0, T, T // 50)
    x[spikes] *= rng.uniform(10, 40, (len(spikes), 1))
    return x


def _rails(xq: np.ndarray) -> np.ndarray:
    """``xq`` with every 97th sample at int16's top and every 89th at its bottom (in place)."""
    xq[::97] = 32767
    xq[::89] = -32768
    return xq


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_long_stream_saturating_model(cell: str, layers: int) -> None:
    """Full-range weights, layer 0's biases at the bound and multipliers of MULT16_BITS, int16 samples over
    their whole range with runs at both rails: 10,000 steps through 3 layers, 3,000 through 1 and 2; every
    output, int8 h and c word."""
    rng = np.random.default_rng(30 + layers)
    model = random_int_model(rng, cell, layers, 7, 19, 4, input_bits=16)
    assert model.input16 and model.label == "int8-x16" and model.hidden_dtype == np.int8
    xq = _rails(random_inputs(rng, model, 10_000 if layers == 3 else 3_000))
    assert xq.dtype == np.int16
    y_ref, _, tr = golden.run(model, xq[None], trace=True)
    assert tr["h"].dtype == np.int8 and np.abs(tr["h"]).max() >= 120  # h words reach their extremes
    assert_stream_bit_exact(model, xq, (y_ref, tr))


@pytest.mark.parametrize("cell", list(CELLS))
def test_long_stream_quantized_model(cell: str) -> None:
    """A calibrated model (2 layers): the float samples through tl_quantize_input_s16 == golden, then 10,000
    steps bit-exact; layer 0's multipliers are int16-h's (MULT16_BITS), layer 1's int8-h's."""
    rng = np.random.default_rng(7)
    x = _signal(rng, 10_000, 5)
    model = random_quantized_model(3, cell, 2, 5, 24, 3, x[None, :3000], input_bits=16)
    assert model.layers[0].mult.max() < 1 << MULT16_BITS <= model.layers[1].mult.max()
    xf = x.astype(np.float32)
    xq = golden.quantize_input(model, xf)
    assert xq.dtype == np.int16 and np.abs(xq).max() > 10_000
    cm = CModel.from_int_model(model)
    assert np.array_equal(cm.quantize_input(xf), xq)
    assert_stream_bit_exact(model, xq)


@pytest.mark.parametrize(
    ("cell", "readout", "stack"), [("lstm", "max", 3), ("gru", "mean", 2), ("rnn", "last", 4)]
)
def test_stacked_and_pooled(cell: str, readout: str, stack: int, tmp_path: Path) -> None:
    """A stacked model buffers int16 samples (TL_STACK_WORDS of 2 * k * C bytes) and its pooled readout pools
    the int8 h: every output, state word and buffered sample equal golden's, through the sanitized build
    too."""
    rng = np.random.default_rng(11 + stack)
    model = random_int_model(rng, cell, 2, 3, 9, 2, readout=readout, stack=stack, input_bits=16)
    pooled = readout != "last"
    assert model.state_words == state_words(2, 9, 8, pooled, stack * 3 * 2)
    xq = _rails(random_inputs(rng, model, 2_001))
    assert_stream_bit_exact(model, xq)
    cm = CModel.from_int_model(model, cache_dir=tmp_path)
    assert cm.state_words == model.state_words
    state = golden.GoldenState.zeros(model, 1)
    for t in range(stack + 1):
        cm.step(xq[t])
        golden.step(model, state, xq[t][None])
    assert cm.stack_buffer.dtype == np.int16 and np.array_equal(cm.stack_buffer, state.stack[0])
    check_sanitized_run(model, tmp_path / "san", 600, rng)


@pytest.mark.parametrize("cell", list(CELLS))
def test_sanitized_host_build(cell: str, tmp_path: Path) -> None:
    """Layer 0's int64 sums under -fsanitize=address,undefined: 3 layers at the widest int16 input
    (MAX_INPUT16), full-range samples, and the firmware's trimmed build of the same model."""
    rng = np.random.default_rng(5)
    model = random_int_model(rng, cell, 3, MAX_INPUT16, 16, 3, input_bits=16)
    check_sanitized_run(model, tmp_path / "all", 300, rng)
    check_sanitized_run(model, tmp_path / "trim", 300, rng, settings=build_settings(model))


def test_blob_keeps_the_int16_input(tmp_path: Path) -> None:
    """The header's hidden-bits byte carries BLOB_INPUT16_FLAG; the Python and C readers give back the same
    model (hash and all), which runs bit-exact from the blob."""
    rng = np.random.default_rng(2)
    model = random_int_model(rng, "lstm", 2, 4, 10, 3, input_bits=16, readout="mean")
    blob = to_blob(model)
    assert blob[HIDDEN_OFFSET] == 8 | BLOB_INPUT16_FLAG
    head = read_header(blob)
    assert head["hidden_bits"] == 8 and head["input16"]
    back = from_blob(blob)
    assert back.input16 and back.model_hash == model.model_hash and back.input_bits == 16
    plain = random_int_model(np.random.default_rng(2), "lstm", 2, 4, 10, 3, readout="mean")
    assert plain.model_hash != model.model_hash  # the format is part of the identity
    cm = CModel.from_blob(blob, cache_dir=tmp_path)
    assert cm.input_dtype == np.int16 and cm.hidden_bits == 8 and cm.hash == model.model_hash
    xq = random_inputs(rng, model, 500)
    assert np.array_equal(cm.run(xq), golden.run(model, xq[None])[0][0])


def _with_byte(blob: bytes, offset: int, value: int) -> bytes:
    import struct
    import zlib

    b = bytearray(blob)
    b[offset] = value
    struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[CRC_START:])) & 0xFFFFFFFF)
    return bytes(b)


def test_readers_refuse_what_the_kernel_cannot_run(tmp_path: Path) -> None:
    """The flag on an int16 h, an int16 input wider than MAX_INPUT16 per step, a layer-0 multiplier of
    2^MULT16_BITS or more: refused by the Python reader and by tl_blob_parse + tl_model_check."""
    rng = np.random.default_rng(3)
    h16 = to_blob(random_int_model(rng, "gru", 1, 3, 5, 2, hidden_bits=16))
    bad = _with_byte(h16, HIDDEN_OFFSET, 16 | BLOB_INPUT16_FLAG)
    with pytest.raises(TinyLSTMError, match="int16-input flag on a 16-bit hidden state"):
        from_blob(bad)
    with pytest.raises(TinyLSTMError, match="TL_BLOB_ERR|TL_ERR_MODEL"):
        CModel.from_blob(bad, cache_dir=tmp_path)
    wide = random_int_model(rng, "gru", 1, MAX_INPUT16 + 1, 4, 2, input_bits=16)
    with pytest.raises(TinyLSTMError, match=f"takes at most {MAX_INPUT16}"):
        from_blob(to_blob(wide))
    with pytest.raises(TinyLSTMError, match="TL_ERR_MODEL"):
        CModel.from_blob(to_blob(wide), cache_dir=tmp_path)
    big = random_int_model(rng, "lstm", 2, 3, 5, 2, input_bits=16)
    big.layers[0].mult[3] = (1 << MULT16_BITS) + 5  # fine for an int32 sum, not for layer 0's int64 one
    with pytest.raises(TinyLSTMError, match=f"2\\^{MULT16_BITS} or more"):
        from_blob(to_blob(big))
    with pytest.raises(TinyLSTMError, match="TL_ERR_MODEL"):
        CModel.from_blob(to_blob(big), cache_dir=tmp_path)
    big.layers[0].mult[3] = 5
    big.layers[1].mult[3] = (1 << MULT16_BITS) + 5  # layer 1 sums int8 h in int32: its multipliers may
    assert CModel.from_blob(to_blob(big), cache_dir=tmp_path).input_size == 3


def test_each_step_function_refuses_the_other_input(tmp_path: Path) -> None:
    """tl_step and tl_quantize_input refuse an int16-input model (TL_ERR_ARG, the state and output alone);
    the bridge refuses int8 samples for it."""
    rng = np.random.default_rng(4)
    model = random_int_model(rng, "lstm", 1, 3, 5, 2, input_bits=16)
    cm = CModel.from_int_model(model, cache_dir=tmp_path)
    cm.step(random_inputs(rng, model))
    h = cm.h
    y = cm._ffi.new("int16_t[]", 2)
    assert cm._lib.tl_step(cm._state, cm._ffi.new("int8_t[]", 3), y) == -1  # TL_ERR_ARG
    assert np.array_equal(cm.h, h) and cm.steps == 1
    q = cm._ffi.new("int8_t[]", 3)
    assert cm._lib.tl_quantize_input(cm.model, cm._ffi.new("float[]", [0.5, 1.0, -1.0]), q) == -1
    assert list(q) == [0, 0, 0]
    with pytest.raises(TinyLSTMError, match="takes int16 input"):
        cm.step(np.zeros(3, dtype=np.int8))


def test_the_w16_layout_keeps_layer_0_in_int8_rows(tmp_path: Path) -> None:
    """Layer 0's int16 step reads int8 rows: a w16 export widens the layers above only, builds with
    -DTL_INPUT16 and runs the same bits."""
    rng = np.random.default_rng(6)
    model = random_int_model(rng, "gru", 3, 5, 12, 3, input_bits=16)
    src = render_source(model, "model", "w16")
    assert ".weights = l0_weights" in src and ".weights16 = l1_weights16" in src and "l0_weights16" not in src
    assert ".input_bits = 16" in src and "#ifndef TL_INPUT16" in src
    assert build_defines(model, "w16") == ("-DTL_LAYOUT_W16", "-DTL_INPUT16")
    plain = random_int_model(np.random.default_rng(6), "gru", 3, 5, 12, 3)
    w0 = plain.layers[0].weights.size
    assert model_data_bytes(model, "w16") == model_data_bytes(plain, "w16") - w0
    xq = random_inputs(rng, model, 800)
    want = golden.run(model, xq[None])[0][0]
    w16 = CModel.from_int_model(model, cache_dir=tmp_path, layout="w16")
    assert np.array_equal(w16.run(xq), want)


def test_quantize_refuses_what_the_contract_has_not() -> None:
    """An int8 input on an int16 h, a bidirectional model with an int16 input, an input of other bits, an
    int16 input wider than MAX_INPUT16 per step: one-line errors that name the fix."""
    import torch

    torch.manual_seed(1)
    inp = MAX_INPUT16 + 1
    fm = float_model_from_torch(
        torch.nn.GRU(inp, 4, 1, batch_first=True),
        torch.nn.Linear(4, 2),
        ModelMeta(input_mean=[0.0] * inp, input_std=[1.0] * inp),
    )
    cal = calibrate(fm, [np.random.default_rng(2).standard_normal((50, inp))])
    assert quantize(fm, cal).input_bits == 8
    with pytest.raises(TinyLSTMError, match=f"at most {MAX_INPUT16} int16 inputs per step.*--input-bits 8"):
        quantize(fm, cal, input_bits=16)
    with pytest.raises(TinyLSTMError, match="int16-h model's input is int16: export it with --input-bits 16"):
        quantize(fm, cal, hidden_bits=16, input_bits=8)
    with pytest.raises(TinyLSTMError, match="an input of 12 bits: choose --input-bits 8 or 16"):
        quantize(fm, cal, input_bits=12)
    x = np.random.default_rng(3).standard_normal((4, 20, 3))
    with pytest.raises(TinyLSTMError, match="bidirectional model keeps an int8 hidden state and input"):
        random_quantized_model(1, "lstm", 1, 3, 5, 2, x, bidirectional=True, input_bits=16)


def test_hello_and_frames_follow_the_input() -> None:
    """HELLO's format byte carries the flag, so the host feeds an int16-input board INPUT_S16 frames."""
    fields = (7, 3, Cell.LSTM, 1, 3, 8, 2, 8, Mode.STREAM, 0, Source.HOST, 32, 256, 0, 0, "b")
    payload = Hello(*fields, input16=True).pack()
    assert payload[14] == 8 | BLOB_INPUT16_FLAG
    back = Hello.unpack(payload)
    assert back.hidden_bits == 8 and back.input16 and back.input_bits == 16
    assert input_frame(back.input_bits) is InputS16
    assert Hello.unpack(Hello(*fields).pack()).input_bits == 8
    assert input_frame(8) is Input


def test_int16_input_follows_the_float_model_on_heavy_tailed_data() -> None:
    """On spiky data (a power meter's), the int8 input spends its 256 levels on the spikes: the int16 input,
    with the same int8 h and weights, keeps the float model's outputs closer (LSTM and GRU,
    the same float model and calibration: only the input's word differs)."""
    rng = np.random.default_rng(9)
    x = _signal(rng, 4_000, 3)
    for cell in ("lstm", "gru"):
        m8 = random_quantized_model(5, cell, 1, 3, 16, 4, x[None, :2000])
        m16 = random_quantized_model(5, cell, 1, 3, 16, 4, x[None, :2000], input_bits=16)
        fm_y = float_forward(_float(cell), x[None], keep=())["y"][0]
        err = {}
        for name, m in (("int8", m8), ("int16", m16)):
            y = golden.run(m, golden.quantize_input(m, x.astype(np.float32))[None])[0][0] * m.output_scale
            err[name] = float(np.mean((y - fm_y) ** 2))
        assert err["int16"] < 0.6 * err["int8"], (cell, err)  # here: 1.8x (LSTM) and 8x (GRU) lower


def _float(
    cell: str,
) -> FloatModel:  # the float model random_quantized_model(5, cell, 1, 3, 16, 4, ...) quantizes
    import torch

    from tinylstm.contract.cells import cell_type

    torch.manual_seed(5)
    rnn = cell_type(cell).torch_class()(3, 16, 1, batch_first=True)
    head = torch.nn.Linear(16, 4)
    return float_model_from_torch(rnn, head, ModelMeta(input_mean=[0.0] * 3, input_std=[1.0] * 3))
