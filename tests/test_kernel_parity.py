"""numpy golden == C kernel through cffi, bit for bit: every output and every state word."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sanitized_harness import check_sanitized_run

from tinylstm.codegen import golden
from tinylstm.codegen.emit_c import emit_c
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_inputs, random_int_model, random_quantized_model
from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import input_qmax
from tinylstm.errors import TinyLSTMError
from tinylstm.host.targets.bridge import CModel, ModelData


def assert_stream_bit_exact(
    model: IntModel, xq: np.ndarray, ref: tuple[np.ndarray, dict[str, np.ndarray]] | None = None
) -> None:
    """Step the C kernel through ``xq`` [T, I] and compare outputs, h and c at every step; ``ref``: the
    golden's (outputs, trace) of ``xq`` when the caller has already run it."""
    if ref is None:
        y_ref, _, tr = golden.run(model, xq[None], trace=True)
    else:
        y_ref, tr = ref
    cm = CModel.from_int_model(model)
    cm.reset()
    for t in range(xq.shape[0]):
        y = cm.step(xq[t])
        if not (
            np.array_equal(y, y_ref[0, t])
            and np.array_equal(cm.h, tr["h"][0, t])
            and np.array_equal(cm.c, tr["c"][0, t])
        ):
            raise AssertionError(
                f"C and golden differ at step {t}: y {y} vs {y_ref[0, t]}\n"
                f"h {cm.h.ravel()[:16]} vs {tr['h'][0, t].ravel()[:16]}\nc {cm.c.ravel()[:16]} vs "
                f"{tr['c'][0, t].ravel()[:16]}"
            )
    cm.reset()
    assert np.array_equal(cm.run(xq), y_ref[0]), "tl_run differs from stepping"


@pytest.mark.parametrize("readout", ["last", "mean", "max"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_golden_run_layer_first_equals_stepping_sample_by_sample(
    monkeypatch: pytest.MonkeyPatch, cell: str, readout: str
) -> None:
    """golden.run takes a unidirectional model without stacking layer after layer over spans of samples; the
    words (outputs, the trace, the final state) are step_traced's, sample after sample, also across spans
    (made 7 rows here) and from a state a previous run left."""
    monkeypatch.setattr(golden, "_SPAN_ROWS", 7)
    rng = np.random.default_rng(len(cell) + len(readout))
    model = random_int_model(rng, cell, 2, 5, 9, 3, 18, 40, readout=readout)
    xq = rng.integers(-128, 128, (3, 40, 5)).astype(np.int8)
    first, _, _ = golden.run(model, xq[:, :11])
    y, state, tr = golden.run(model, xq[:, 11:], state=golden.run(model, xq[:, :11])[1], trace=True)
    ref = golden.GoldenState.zeros(model, 3)
    want = [golden.step_traced(model, ref, xq[:, t]) for t in range(11)]
    assert np.array_equal(first, np.stack([w[0] for w in want], axis=1))
    for t in range(11, 40):
        out, gates = golden.step_traced(model, ref, xq[:, t])
        assert np.array_equal(y[:, t - 11], out) and np.array_equal(tr["gates"][:, t - 11], gates), t
        assert np.array_equal(tr["h"][:, t - 11], ref.h) and np.array_equal(tr["c"][:, t - 11], ref.c), t
    for word in ("h", "c", "pool", "head_in", "gates"):
        assert np.array_equal(getattr(state, word), getattr(ref, word)), word
    assert state.steps == ref.steps == 40


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_long_stream_quantized_model(cell: str, layers: int) -> None:
    """A calibrated model on a slowly varying signal with bursts: 10,000 steps through 3 layers, 3,000 through
    1 and 2 (the golden's steps are most of this test's time)."""
    rng = np.random.default_rng(layers)
    T, I = 10_000 if layers == 3 else 3_000, 5
    t = np.arange(T)[:, None]
    x = np.sin(t / (20 + 7 * np.arange(I))) * 2 + rng.standard_normal((T, I)) * 0.3
    x[rng.integers(0, T, 50)] *= 6  # bursts past the calibrated range saturate the input
    model = random_quantized_model(layers, cell, layers, I, 24, 3, x[None, :2000])
    assert_stream_bit_exact(model, golden.quantize_input(model, x.astype(np.float32)))


@pytest.mark.parametrize("cell", list(CELLS))
def test_long_stream_saturating_model(cell: str) -> None:
    rng = np.random.default_rng(7)
    model = random_int_model(rng, cell, 2, 7, 19, 4)
    xq = rng.integers(-128, 128, (10_000, 7)).astype(np.int8)
    xq[::97] = 127
    xq[::89] = -128
    assert_stream_bit_exact(model, xq)


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cell=st.sampled_from(list(CELLS)),
    layers=st.integers(1, 3),
    inp=st.integers(1, 20),
    hidden=st.integers(1, 48),
    out=st.integers(1, 8),
    shift_lo=st.integers(8, 42),
    seed=st.integers(0, 2**32 - 1),
    extreme=st.sampled_from(["random", "max", "min", "alternate"]),
    hidden_bits=st.sampled_from([8, 16]),
)
def test_property_random_models(
    cell: str,
    layers: int,
    inp: int,
    hidden: int,
    out: int,
    shift_lo: int,
    seed: int,
    extreme: str,
    hidden_bits: int,
) -> None:
    """Random shapes, shifts and extreme inputs of the model's input type (an int16-h model's int16), with
    either hidden state (tests/test_hidden16.py has the rest of the int16-h cases)."""
    rng = np.random.default_rng(seed)
    model = random_int_model(
        rng, cell, layers, inp, hidden, out, shift_lo, shift_lo + 12, hidden_bits=hidden_bits
    )
    xq = random_inputs(rng, model, 300)
    top = input_qmax(hidden_bits)
    if extreme == "max":
        xq[:] = top
    elif extreme == "min":
        xq[:] = -top - 1
    elif extreme == "alternate":
        xq[::2] = top
        xq[1::2] = -top - 1
    assert_stream_bit_exact(model, xq)


@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1e-3, 1.0, 1e3, 1e30]))
@settings(max_examples=25, deadline=None)
def test_float_input_conversion_matches(seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    model = random_int_model(np.random.default_rng(0), "gru", 1, 6, 4, 2)
    x = (rng.standard_normal((200, 6)) * scale).astype(np.float32)
    x[0, :] = [0.5, -0.5, 1.5, -1.5, 127.49, -128.5]
    cm = CModel.from_int_model(model)
    assert np.array_equal(cm.quantize_input(x), golden.quantize_input(model, x))


def test_non_finite_normalisation_constants_are_refused() -> None:
    """Was: with a hand-written descriptor's NaN or infinite mean, tl_quantize_input converted NaN to an
    integer (undefined behaviour). Generated C cannot hold one and the blob readers refuse it; a multiplier of
    infinity was refused already, by tl_model_check too (a mean is read only by tl_quantize_input)."""
    cm = CModel.from_int_model(random_int_model(np.random.default_rng(0), "gru", 1, 6, 4, 2))
    ffi, lib = cm._ffi, cm._lib
    x, q = ffi.new("float[6]"), ffi.new("int8_t[6]")
    assert lib.tl_quantize_input(cm.model, x, q) == 0 and lib.tl_state_words(cm.model) > 0
    for field, value in [
        ("input_mean", float("nan")),
        ("input_mean", float("inf")),
        ("input_mul", float("inf")),
    ]:
        bad = ffi.new("tl_model_t *", cm.model[0])
        values = ffi.new("float[6]", [1.0] * 6)
        values[1] = value
        setattr(bad, field, values)
        assert lib.tl_quantize_input(bad, x, q) == -1, field  # TL_ERR_ARG
        assert (lib.tl_state_words(bad) == 0) == (field == "input_mul"), field  # tl_model_check's verdict


def test_generated_models_are_data_run_by_one_kernel(tmp_path: Path) -> None:
    """Each generated model's tl_model.c is compiled alone into a shared object of constant data (no kernel
    code in it); one kernel extension runs them all, each bit-exact with its own golden although every one
    names its struct tl_model. A tl_model.c without that struct, or a missing file, is a one-line error."""
    rng = np.random.default_rng(11)
    models = [random_int_model(rng, cell, 2, 5, 7, 3) for cell in ("lstm", "gru")]
    runs = []
    for k, model in enumerate(models):
        emit_c(model, tmp_path / str(k))
        runs.append(CModel.from_generated(tmp_path / str(k), cache_dir=tmp_path / "cache"))
    assert runs[0]._lib is runs[1]._lib and runs[0].hash != runs[1].hash
    for model, cm in zip(models, runs, strict=True):
        data = cm._keepalive[0]
        assert isinstance(data, ModelData) and not hasattr(data.handle, "tl_step")
        xq = random_inputs(rng, model, 300)
        y_ref, _, tr = golden.run(model, xq[None], trace=True)
        ys, hs, cs = cm.trace(xq)
        assert (
            np.array_equal(ys, y_ref[0]) and np.array_equal(hs, tr["h"][0]) and np.array_equal(cs, tr["c"][0])
        )
    source = tmp_path / "0" / "tl_model.c"
    source.write_text(
        source.read_text().replace("const tl_model_t tl_model =", "const tl_model_t tl_other =")
    )
    with pytest.raises(TinyLSTMError, match=r"^tl_model.c defines no model tl_model: run `tinylstm export`"):
        CModel.from_generated(tmp_path / "0", cache_dir=tmp_path / "cache")
    source.unlink()
    with pytest.raises(TinyLSTMError, match=r"^generated model files not found: .*tl_model.c; run"):
        CModel.from_generated(tmp_path / "0", cache_dir=tmp_path / "cache")


@pytest.mark.slow
def test_sanitized_host_build(tmp_path: Path) -> None:
    """The kernel under -fsanitize=address,undefined, stepping every cell, 3 layers, for 10,000 steps."""
    rng = np.random.default_rng(3)
    for cell in CELLS:
        model = random_int_model(rng, cell, 3, 9, 33, 5, 10, 40)
        check_sanitized_run(model, tmp_path / cell, 10_000, rng)


def test_wrong_input_width_is_a_clear_error() -> None:
    from tinylstm.errors import TinyLSTMError

    model = random_int_model(np.random.default_rng(1), "lstm", 1, 4, 8, 2)
    cm = CModel.from_int_model(model)
    with pytest.raises(TinyLSTMError, match="expected"):
        cm.step(np.zeros(5, dtype=np.int8))
    with pytest.raises(TinyLSTMError, match="int8"):
        cm.step(np.zeros(4, dtype=np.float32))
    with pytest.raises(TinyLSTMError, match="NaN"):
        cm.quantize_input(np.array([1.0, np.nan, 0, 0], dtype=np.float32))
    with pytest.raises(TinyLSTMError, match="samples hold <U1 values: pass real numbers"):
        cm.quantize_input(np.array(["a", "b", "c", "d"]))


def test_golden_products_are_exact_on_both_paths() -> None:
    """golden's products: float64 BLAS inside its bound (int8 weights against int16 and int32 extremes, the
    largest operands the bound admits), int64 for a width past it, both equal to the int64 matmul."""
    rng = np.random.default_rng(11)
    for cols, hi, dtype in ((300, 2**15, np.float64), (300, 2**31, np.float64), (40_000, 2**31, np.int64)):
        w = rng.integers(-128, 128, (40, cols)).astype(np.int8)
        w[0] = -128
        a = rng.integers(-hi, hi, (7, cols), dtype=np.int64)
        a[0] = -hi
        w_t = golden._prepared(w)
        assert w_t.dtype == dtype
        assert np.array_equal(golden._matmul(a, w_t), a @ w.astype(np.int64).T)
