"""The .tlm blob: Python round trip, clear errors on bad input, and the C reader bit-exact with the golden."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinylstm.codegen import blob, golden
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_int_model, random_quantized_model
from tinylstm.contract.constants import TABLE_LO
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import C_FLAGS, csrc_dir, kernel_sources
from tinylstm.host.boards.toolchain import find_compiler

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
        # the tanh table (section 0) unsaturated where the C kernel clamps: not the contract's table
        "tanh table": (_patched(data, _section_start(data, 0) + 2 * TABLE_LO, "<h", -32767), "saturated"),
    }


def _section_start(data: bytes, k: int) -> int:
    return int(struct.unpack_from("<I", data, blob.HEADER.size + 8 * k)[0])


@pytest.mark.parametrize("case", list(bad_blobs(b"\0" * 256)))
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
@pytest.mark.parametrize("case", [c for c in bad_blobs(b"\0" * 256) if c != "hash"])
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


# ---- bidirectional window models: 9 + 12L sections (the backward layers and the window section follow) ----

READOUTS = ("last", "mean", "max")


def bidir_model(
    rng: np.random.Generator, cell: str, layers: int, readout: str, stack: int, saturating: bool = True
) -> IntModel:
    """A full-range random bidirectional model of random sizes and a window of random length, not always a
    multiple of k. ``saturating``: random_int_model's shifts, which drive the gates (and so h) into
    saturation; else larger ones, for a state that moves with the inputs."""
    window = int(rng.integers(stack, 3 * stack + 9))
    inp, hid, out = int(rng.integers(1, 7)), int(rng.integers(1, 10)), int(rng.integers(1, 5))
    shifts = (18, 34) if saturating else (30, 40)
    m = random_int_model(
        rng, cell, layers, inp, hid, out, *shifts, readout=readout, stack=stack, window=window
    )
    return with_open_head(rng, m)


def with_open_head(rng: np.random.Generator, m: IntModel) -> IntModel:
    """``m`` with a head that cannot saturate (random_int_model's does, with an int8 h), so that the outputs
    show what the head read: zeros before the window's end, [v_f ; v_b] at it."""
    m.head_b = rng.integers(-(1 << 10), 1 << 10, m.output_size).astype(np.int32)
    bound = m.head_width * 128 * 128 + (1 << 10)
    m.head_shift = np.array([(bound * int(M)).bit_length() - 14 for M in m.head_mult], dtype=np.int8)
    return m


def extreme_samples(rng: np.random.Generator, T: int, inp: int) -> np.ndarray:
    """Full-range int8 samples with runs of both extremes."""
    xq = rng.integers(-128, 128, (T, inp)).astype(np.int8)
    xq[(np.arange(T) // 5) % 7 == 3] = 127
    xq[(np.arange(T) // 4) % 9 == 5] = -128
    return xq


def window_section(data: bytes) -> int:
    """The offset of a bidirectional blob's window section (the last of the table)."""
    nsec = struct.unpack_from("<H", data, 22)[0]
    return struct.unpack_from("<I", data, blob.HEADER.size + 8 * (nsec - 1))[0]


def assert_bidir_models_equal(a: IntModel, b: IntModel) -> None:
    assert_models_equal(a, b)
    assert (a.window, a.stack, a.readout) == (b.window, b.stack, b.readout)
    assert a.head_w.shape == b.head_w.shape == (a.output_size, 2 * a.hidden_size)
    for la, lb in zip(a.backward, b.backward, strict=True):
        assert la.weights.shape == lb.weights.shape and la.cell_frac == lb.cell_frac
        assert np.array_equal(la.weights, lb.weights) and np.array_equal(la.scale_exp, lb.scale_exp)


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_bidirectional_round_trip(cell: str, layers: int) -> None:
    """from_blob(to_blob(m)) is m (same hash, same bytes again); the section count tells the form, and a
    reader of the unidirectional form only (8 + 6L sections) refuses it."""
    rng = np.random.default_rng([layers, len(cell)])
    for readout, stack in itertools.product(READOUTS, (1, 2, 3)):
        m = bidir_model(rng, cell, layers, readout, stack)
        for n, L in enumerate(m.backward):  # distinct cell fractions, so a mix-up of the two directions shows
            L.cell_frac = (3 * n + 5 + (cell == "lstm")) % 15 if cell == "lstm" else 0
        data = blob.to_blob(m)
        nsec = struct.unpack_from("<H", data, 22)[0]
        assert nsec == 9 + 12 * layers != 8 + 6 * layers and len(data) % 4 == 0
        assert struct.unpack_from("<I", data, 16)[0] == m.model_hash
        off = window_section(data)
        fracs = [L.cell_frac for L in m.backward] + [0] * (3 - layers)
        assert data[off : off + 8] == struct.pack("<H3b3x", m.window, *fracs)
        back = blob.from_blob(data)
        assert back.bidirectional and blob.read_header(data)["bidirectional"]
        assert_bidir_models_equal(back, m)
        assert blob.to_blob(back) == data


def test_bidirectional_round_trip_quantized_model() -> None:
    x = smooth_signal(8 * 30, 3, 4).reshape(8, 30, 3)
    m = random_quantized_model(5, "lstm", 2, 3, 8, 4, x, readout="mean", stack=2, bidirectional=True)
    assert m.bidirectional and m.window == 30
    back = blob.from_blob(blob.to_blob(m))
    assert_bidir_models_equal(back, m)
    assert dataclasses.asdict(back.calibration) == dataclasses.asdict(m.calibration)


def c_words(proc: subprocess.CompletedProcess[bytes], m: IntModel) -> np.ndarray:
    """The harness's records: y, h, c and (bidirectional) hb, cb after every sample."""
    O, cells = m.output_size, m.num_layers * m.hidden_size
    parts = [("y", "<i2", O), ("h", "i1", cells), ("c", "<i2", cells)]
    if m.bidirectional:
        parts += [("hb", "i1", cells), ("cb", "<i2", cells)]
    return np.frombuffer(proc.stdout, dtype=np.dtype(parts))


def assert_c_equals_golden(harness: Path, tmp: Path, m: IntModel, xq: np.ndarray, what: str) -> bool:
    """C == golden on every word; returns whether the outputs changed (the windows' answers differ from the
    head of zeros)."""
    proc = c_run(harness, blob.to_blob(m), xq, tmp)
    assert proc.returncode == 0, proc.stderr.decode()
    got = c_words(proc, m)
    y_ref, _, tr = golden.run(m, xq[None], trace=True)
    T = len(xq)
    assert got.shape == (T,), what
    for key, want in (
        ("y", y_ref[0]),
        ("h", tr["h"][0]),
        ("c", tr["c"][0]),
        ("hb", tr["hb"][0]),
        ("cb", tr["cb"][0]),
    ):
        bad = np.nonzero(np.any(got[key] != want.reshape(T, -1), axis=1))[0]
        assert bad.size == 0, f"{what}: {key} differs first at sample {bad[0]}"
    return bool(np.any(got["y"] != got["y"][0]))


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_c_reader_bidirectional_bit_exact_with_golden(
    harness: Path, tmp_path: Path, cell: str, layers: int
) -> None:
    """tl_blob_parse + the kernel == golden on full-range bidirectional models (every readout, k = 1-3, random
    sizes): every output and every h, c, backward h and backward c word after every sample of a stream of
    several windows and a part one."""
    rng = np.random.default_rng([7, layers, len(cell)])
    moved = 0
    for k, (readout, stack) in enumerate(itertools.product(READOUTS, (1, 2, 3))):
        m = bidir_model(rng, cell, layers, readout, stack, saturating=k % 2 == 0)
        xq = extreme_samples(rng, 4 * m.window + m.window // 2 + 1, m.input_size)
        what = f"{cell} {layers}L {readout} k={stack} W={m.window}"
        moved += assert_c_equals_golden(harness, tmp_path, m, xq, what)
    assert moved >= 4, f"only {moved} of 9 models' outputs changed: the comparison proves little"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_c_reader_bidirectional_quantized_model(harness: Path, tmp_path: Path, cell: str) -> None:
    """A calibrated bidirectional model over 40 windows of a smooth, noisy signal."""
    x = smooth_signal(40 * 25, 4, 6)
    m = random_quantized_model(
        2, cell, 2, 4, 12, 3, x.reshape(40, 25, 4)[:10], readout="max", bidirectional=True
    )
    assert assert_c_equals_golden(harness, tmp_path, m, golden.quantize_input(m, x), cell)


def _with_window_byte(data: bytes, k: int, value: int, fmt: str = "<B") -> bytes:
    return _patched(data, window_section(data) + k, fmt, value)


def _bidir_blob() -> tuple[bytes, IntModel]:
    rng = np.random.default_rng(4)
    m = random_int_model(rng, "lstm", 2, 3, 5, 2, readout="mean", stack=2, window=7)
    return blob.to_blob(with_open_head(rng, m)), m


def bad_bidir_blobs(data: bytes, layers: int) -> dict[str, tuple[bytes, str, str]]:
    """Malformed variants of a bidirectional blob (any reader must refuse them; k = 2, L < 3 layers) and a
    word each the Python reader's and the MicroPython fallback's messages must contain."""
    nsec = struct.unpack_from("<H", data, 22)[0]
    last = blob.HEADER.size + 8 * (nsec - 1)  # the window section's table entry
    return {
        "section count": (_patched(data, 22, "<H", nsec - 1), "section table", "section table"),
        "section count + 1": (_patched(data, 22, "<H", nsec + 1), "section table", "section table"),
        "unidirectional count": (_patched(data, 22, "<H", 8 + 6 * layers), "expected", "wrong size"),
        "window 0": (_with_window_byte(data, 0, 0, "<H"), "window of 0", "window of 0"),
        "window < k": (_with_window_byte(data, 0, 1, "<H"), "window of 1", "window of 1"),
        "window section size": (_patched(data, last + 4, "<I", 4), "expected 8", "wrong size"),
        "window section outside": (_patched(data, last, "<I", len(data)), "outside", "misplaced"),
        "reserved byte": (_with_window_byte(data, 7, 1), "reserved", "reserved"),
        "unused cell_frac": (_with_window_byte(data, 2 + layers, 3), "unused", "unused"),
        "hidden bits 16": (_patched(data, 30, "<B", 16), "int8", "int8"),
    }


@pytest.mark.parametrize("case", list(bad_bidir_blobs(_bidir_blob()[0], 2)))
def test_bad_bidirectional_blob_is_refused(harness: Path, tmp_path: Path, case: str) -> None:
    """By the Python reader and the MicroPython fallback (BlobError), each with its message, and the C reader
    (TL_BLOB_ERR; TL_ERR_MODEL for an int16 h, which tl_model_check refuses)."""
    data, m = _bidir_blob()
    bad, word, mpy_word = bad_bidir_blobs(data, m.num_layers)[case]
    with pytest.raises(TinyLSTMError, match=word) as info:
        blob.from_blob(bad)
    assert "to_blob" in str(info.value)
    proc = c_run(harness, bad, np.zeros((1, 3), np.int8), tmp_path)
    assert proc.returncode == 3, (proc.returncode, proc.stderr.decode())
    status = -2 if case == "hidden bits 16" else -5
    assert proc.stderr.decode().strip() == f"tl_blob_parse: {status}", proc.stderr
    with pytest.raises(_fallback().BlobError, match=f"bad model blob: .*{mpy_word}"):
        _fallback().Model(bad)


def test_window_must_match_the_metadata() -> None:
    """The window is in the window section (what the C reader reads) and in the metadata (what the model
    hash covers): the Python reader refuses a blob where they differ. The C reader trusts it, as it trusts the
    hash."""
    data, m = _bidir_blob()
    with pytest.raises(TinyLSTMError, match="window section says 8 samples, the metadata 7"):
        blob.from_blob(_with_window_byte(data, 0, 8, "<H"))


def test_writer_refuses_a_bidirectional_model_it_cannot_describe() -> None:
    m = random_int_model(np.random.default_rng(1), "gru", 2, 3, 4, 2, stack=3, window=5)
    m.meta.window = 2  # shorter than one step of k = 3 samples
    with pytest.raises(TinyLSTMError, match="window of 2 samples"):
        blob.to_blob(m)
    m.meta.window = 5
    m.backward = m.backward[:1]
    with pytest.raises(TinyLSTMError, match="1 backward layers"):
        blob.to_blob(m)


def _fallback() -> Any:
    import sys

    from tinylstm.host.targets.mpy_runner import FALLBACK_DIR

    sys.path.insert(0, str(FALLBACK_DIR))
    try:
        import tinylstm_mpy
    finally:
        sys.path.remove(str(FALLBACK_DIR))
    return tinylstm_mpy


def test_bidirectional_damage_with_a_valid_crc_raises_only_the_documented_errors() -> None:
    """Changed header, section table and window section bytes of a bidirectional blob, CRC fixed up: the
    Python reader raises TinyLSTMError and the fallback ValueError, never IndexError or struct.error."""
    import random

    mpy = _fallback()
    good, _ = _bidir_blob()
    table_end = blob.HEADER.size + 8 * struct.unpack_from("<H", good, 22)[0]
    win = window_section(good)
    spots = list(range(12, table_end)) + list(range(win, win + 8))
    rng = random.Random(1)
    for _ in range(1500):
        b = bytearray(good)
        for _ in range(rng.randrange(1, 4)):
            b[rng.choice(spots)] = rng.randrange(256)
        total = min(struct.unpack_from("<I", b, 12)[0], len(b))
        struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[12:total])))
        data = bytes(b)
        with contextlib.suppress(TinyLSTMError):
            blob.from_blob(data)
        with contextlib.suppress(ValueError):
            mpy.Model(data)
