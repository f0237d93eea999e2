"""The .tlm blob: Python round trip, clear errors on bad input, and the C reader bit-exact with the golden."""

from __future__ import annotations

import contextlib
import dataclasses
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from tinylstm.codegen import blob, golden
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_int_model, random_quantized_model
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import C_FLAGS, csrc_dir, kernel_sources
from tinylstm.host.targets.bridge import find_compiler

HARNESS = Path(__file__).parent / "c" / "fuzz_blob.c"
SANITIZE = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all", "-g", "-O1"]


def build_harness(out: Path) -> Path:
    """tests/c/fuzz_blob.c + the kernel + tl_blob.c, strict flags, sanitizers on."""
    exe = out / "fuzz_blob"
    cmd = [
        find_compiler(),
        *C_FLAGS,
        *SANITIZE,
        "-I",
        str(csrc_dir()),
        str(HARNESS),
        *map(str, kernel_sources()),
        "-o",
        str(exe),
    ]
    subprocess.run(cmd, check=True)
    return exe


def assert_models_equal(a: IntModel, b: IntModel) -> None:
    assert a.canonical_bytes() == b.canonical_bytes()
    assert a.model_hash == b.model_hash
    assert (a.cell, a.output_scale, a.input_scale) == (b.cell, b.output_scale, b.input_scale)
    assert dataclasses.asdict(a.meta) == dataclasses.asdict(b.meta)
    assert dataclasses.asdict(a.calibration) == dataclasses.asdict(b.calibration)
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert la.weights.shape == lb.weights.shape and la.cell_frac == lb.cell_frac
        assert (la.bias_hn is None) == (lb.bias_hn is None)


def smooth_signal(T: int, inp: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None]
    return (np.sin(t / (15 + 5 * np.arange(inp))) * 1.5 + rng.standard_normal((T, inp)) * 0.2).astype(
        np.float32
    )


MODELS = [("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 3)]


@pytest.mark.parametrize("cell,layers", MODELS)
def test_round_trip(cell: str, layers: int) -> None:
    m = random_int_model(np.random.default_rng(layers), cell, layers, 5, 12, 3)
    data = blob.to_blob(m)
    assert data[:4] == b"TLM1" and len(data) % 4 == 0
    assert struct.unpack_from("<I", data, 16)[0] == m.model_hash
    assert_models_equal(blob.from_blob(data), m)
    assert blob.to_blob(blob.from_blob(data)) == data


def test_round_trip_quantized_model_keeps_metadata() -> None:
    x = smooth_signal(300, 4, 0)
    m = random_quantized_model(3, "lstm", 2, 4, 10, 2, x[None])
    m.meta.classes, m.meta.mode, m.meta.window = ["rest", "walk"], "stream", 50
    back = blob.from_blob(blob.to_blob(m))
    assert_models_equal(back, m)
    assert back.meta.classes == ["rest", "walk"]


def _with_crc(data: bytearray) -> bytes:
    struct.pack_into("<I", data, 8, zlib.crc32(data[blob.CRC_START :]) & 0xFFFFFFFF)
    return bytes(data)


def _patched(data: bytes, offset: int, fmt: str, value: int, fix_crc: bool = True) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return _with_crc(out) if fix_crc else bytes(out)


def bad_blobs(data: bytes) -> dict[str, tuple[bytes, str]]:
    """Malformed variants of ``data`` and a word each error message must contain."""
    first = blob.HEADER.size  # the first section table entry
    return {
        "empty": (b"", "truncated"),
        "short header": (data[:20], "truncated"),
        "truncated": (data[:-8], "truncated"),
        "magic": (b"XLM1" + data[4:], "magic"),
        "format version": (_patched(data, 4, "<H", 9), "format version"),
        "kernel version": (_patched(data, 6, "<H", 7), "kernel version"),
        "crc": (_patched(data, len(data) - 1, "<B", data[-1] ^ 1, fix_crc=False), "CRC"),
        "cell": (_patched(data, 20, "<B", 5), "cell"),
        "layers": (_patched(data, 21, "<B", 4), "shape"),
        "section count": (_patched(data, 22, "<H", 3), "section table"),
        "misaligned": (
            _patched(data, first, "<I", struct.unpack_from("<I", data, first)[0] + 2),
            "misaligned",
        ),
        "out of range": (_patched(data, first, "<I", len(data)), "outside"),
        "size": (_patched(data, first + 4, "<I", 100), "expected"),
        "hash": (_patched(data, 16, "<I", 0x12345678), "hash"),
    }


@pytest.mark.parametrize("case", list(bad_blobs(b"\0" * 64)))
def test_bad_blob_raises_clear_error(case: str) -> None:
    data = blob.to_blob(random_int_model(np.random.default_rng(0), "gru", 2, 3, 6, 2))
    bad, word = bad_blobs(data)[case]
    with pytest.raises(TinyLSTMError, match=word) as info:
        blob.from_blob(bad)
    assert "to_blob" in str(info.value)


def test_bias_and_float_limits_are_checked() -> None:
    m = random_int_model(np.random.default_rng(1), "lstm", 1, 3, 4, 2)
    m.head_b[0] = (1 << 30) + 1
    with pytest.raises(TinyLSTMError, match="2\\^30"):
        blob.from_blob(blob.to_blob(m))
    m = random_int_model(np.random.default_rng(1), "lstm", 1, 3, 4, 2)
    m.input_mul[1] = np.inf
    with pytest.raises(TinyLSTMError, match="NaN, infinity"):
        blob.from_blob(blob.to_blob(m))
    m.input_mul[1] = 0.0
    with pytest.raises(TinyLSTMError, match="multiplier <= 0"):
        blob.from_blob(blob.to_blob(m))


def test_trailing_bytes_are_ignored() -> None:
    m = random_int_model(np.random.default_rng(2), "lstm", 1, 3, 4, 2)
    assert_models_equal(blob.from_blob(blob.to_blob(m) + b"\xff" * 64), m)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_harness(tmp_path_factory.mktemp("blob"))


def c_run(harness: Path, data: bytes, xq: np.ndarray, tmp: Path) -> subprocess.CompletedProcess[bytes]:
    path = tmp / "model.tlm"
    path.write_bytes(data)
    return subprocess.run(
        [str(harness), "run", str(path)], check=False, input=xq.astype(np.int8).tobytes(), capture_output=True
    )


@pytest.mark.parametrize("cell,layers", MODELS)
def test_c_reader_bit_exact_with_golden(harness: Path, tmp_path: Path, cell: str, layers: int) -> None:
    """tl_blob_parse + the kernel == numpy golden: every output, h and c word of a 3,000-step stream."""
    x = smooth_signal(3000, 5, layers)
    m = random_quantized_model(layers, cell, layers, 5, 16, 3, x[None, :1000])
    xq = golden.quantize_input(m, x)
    proc = c_run(harness, blob.to_blob(m), xq, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    y_ref, _, tr = golden.run(m, xq[None], trace=True)
    O, cells = m.output_size, m.num_layers * m.hidden_size
    rec = np.dtype([("y", "<i2", O), ("h", "i1", cells), ("c", "<i2", cells)])
    got = np.frombuffer(proc.stdout, dtype=rec)
    assert got.shape == (3000,)
    assert np.array_equal(got["y"], y_ref[0])
    assert np.array_equal(got["h"], tr["h"][0].reshape(3000, cells))
    assert np.array_equal(got["c"], tr["c"][0].reshape(3000, cells))


def test_c_reader_saturating_model(harness: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    m = random_int_model(rng, "lstm", 2, 7, 9, 4)
    xq = rng.integers(-128, 128, (2000, 7)).astype(np.int8)
    proc = c_run(harness, blob.to_blob(m), xq, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    y_ref, _, _ = golden.run(m, xq[None])
    got = np.frombuffer(proc.stdout, dtype=np.dtype([("y", "<i2", 4), ("s", "V", 3 * 18)]))
    assert np.array_equal(got["y"], y_ref[0])


# The C reader trusts the hash field (no SHA-256 on the device; the CRC guards integrity).
@pytest.mark.parametrize("case", [c for c in bad_blobs(b"\0" * 64) if c != "hash"])
def test_c_reader_rejects_bad_blob(harness: Path, tmp_path: Path, case: str) -> None:
    data = blob.to_blob(random_int_model(np.random.default_rng(0), "gru", 2, 3, 6, 2))
    proc = c_run(harness, bad_blobs(data)[case][0], np.zeros((1, 3), np.int8), tmp_path)
    assert proc.returncode == 3, (proc.returncode, proc.stderr.decode())
    assert b"tl_blob_parse: -5" in proc.stderr


def test_damage_with_a_valid_crc_raises_only_the_documented_errors() -> None:
    """Blobs cut short or with changed header/table bytes whose CRC (and size field) were fixed up, so only
    the structural checks can catch them: the Python reader raises TinyLSTMError and the MicroPython
    fallback (under CPython) ValueError, never IndexError or struct.error."""
    import random
    import sys

    from tinylstm.host.targets.mpy_runner import FALLBACK_DIR

    sys.path.insert(0, str(FALLBACK_DIR))
    try:
        import tinylstm_mpy
    finally:
        sys.path.remove(str(FALLBACK_DIR))
    good = blob.to_blob(random_int_model(np.random.default_rng(9), "gru", 2, 4, 10, 3))
    rng = random.Random(0)
    for _ in range(1500):
        b = bytearray(good)
        if rng.random() < 0.5:
            b = b[: max(16, rng.randrange(len(good)))]
            struct.pack_into("<I", b, 12, len(b))
        else:
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(12, 140)] = rng.randrange(256)
        total = min(struct.unpack_from("<I", b, 12)[0], len(b))
        struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[12:total])))
        data = bytes(b)
        if data == good:
            continue
        # a blob that still parses is one whose changed bytes did not matter (reserved fields, padding)
        with contextlib.suppress(TinyLSTMError):
            blob.from_blob(data)
        with contextlib.suppress(ValueError):  # BlobError
            tinylstm_mpy.Model(data)
