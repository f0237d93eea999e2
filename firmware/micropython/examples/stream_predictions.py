# Stream TinyLSTM predictions as binary frames (docs/serial-protocol.md) to stdout or a UART.
#
# On a board: copy model.tlm, this file and tinylstm_mpy.py (+ tinylstm_viper.py, or the
# tinylstm C/native module) to the filesystem and run it (firmware/micropython/README.md).
# On the unix port: micropython stream_predictions.py [model.tlm [steps [samples.bin]]]
#
# Frames (wire version 3): a 0x00 flush, HELLO (seq 0; receive capacity 0: this script takes no
# INPUT frames), then one PRED per step (stream mode) or per window (window mode: the PRED of the
# window's last step; the state is reset at every window start). PRED.step is the 0-based step of
# the sample that produced the outputs, as on the firmware. Samples come from samples.bin (the model's
# input words, input_size per step: raw int8, or little-endian int16 for an int16-h model, whose info()
# says input_bits 16) if given, else from a synthetic float sine on every channel.
import math
import sys
from array import array

try:
    from tinylstm import Model  # the C module or the native .mpy, if installed
except ImportError:
    from tinylstm_mpy import Model
from tinylstm_contract import BLOB_INPUT16_FLAG, CELLS, HIDDEN_BITS
from tinylstm_mpy import crc32, read_meta

MAGIC = 0xA7  # wire version 3 (docs/serial-protocol.md)
HELLO, PRED = 0x01, 0x02
SOURCE_HOST, SOURCE_REPLAY, SOURCE_SENSOR = 0, 1, 2


def cobs(data: bytes) -> bytes:
    # Canonical COBS: a block closed at 254 data bytes gets no extra code byte at the end.
    out = bytearray()
    block = bytearray()
    closed_full = False
    for b in data:
        closed_full = False
        if b:
            block.append(b)
            if len(block) < 254:
                continue
            closed_full = True
        out.append(len(block) + 1)
        out += block
        block = bytearray()
    if not closed_full:
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def u16(v: int) -> bytes:
    return bytes((v & 0xFF, (v >> 8) & 0xFF))


def u32(v: int) -> bytes:
    return u16(v) + u16(v >> 16)


def frame(ftype: int, seq: int, payload: bytes) -> bytes:
    # COBS(magic | type | seq | length | payload | crc32) 0x00
    body = bytes((MAGIC, ftype)) + u16(seq) + u16(len(payload)) + payload
    return cobs(body + u32(crc32(body))) + b"\x00"


def mode(info: dict, m: dict) -> int:
    """HELLO.mode: 1 stream; 2 a bidirectional window model (it answers at each window's last step; info's
    window is its W, 0 for other models); else 0, window."""
    if m.get("mode") == "stream":
        return 1
    return 2 if info.get("window", 0) else 0


def format_byte(info: dict) -> int:
    """HELLO's hidden-bits byte: the model's hidden state, 8 (int8 Q0.7) or 16 (int16 Q0.15; modules without
    the field run int8 h), with BLOB_INPUT16_FLAG for an int16 input on the int8 h."""
    bits = info.get("hidden_bits", HIDDEN_BITS)
    return bits | (BLOB_INPUT16_FLAG if info.get("input_bits", bits) > bits else 0)


def hello_payload(info: dict, meta: dict, source: int, board: str) -> bytes:
    m = meta.get("meta", {})
    name = board.encode()[:32]
    cell = [c[0] for c in CELLS].index(info["cell"])  # the cell's code
    return (
        u32(info["hash"])
        + u16(info["kernel_version"])
        + bytes((cell, info["layers"]))
        + u16(info["input_size"])
        + u16(info["hidden_size"])
        + u16(info["output_size"])
        + bytes((format_byte(info), mode(info, m)))
        + u16(m.get("window") or 0)
        + bytes((source, 0))
        + u16(0)  # PRED history 0, receive capacity 0: no INPUT frames
        + u32(0)
        + u32(0)  # next step, received bytes freed
        + bytes((len(name),))
        + name
    )


def pred_payload(step: int, y) -> bytes:
    out = bytearray(u32(step) + u32(0) + u16(len(y)))  # step, rx_freed (nothing received), count
    for v in y:
        out += u16(v & 0xFFFF)
    return bytes(out)


def samples(path, n_in: int, steps: int, word: int):
    # `word`: bytes per input value (1: int8, 2: an int16-h model's little-endian int16); the models take
    # the raw bytes of one sample as they are
    if path:
        with open(path, "rb") as f:
            raw = f.read()
        size = n_in * word
        for t in range(min(steps, len(raw) // size)):
            yield raw[t * size : (t + 1) * size]
        return
    x = array("f", [0.0] * n_in)
    for t in range(steps):
        for k in range(n_in):
            x[k] = math.sin(t / (10.0 + 3 * k))
        yield x


def main(blob_path: str = "model.tlm", steps: int = 1000, samples_path=None, out=None) -> None:
    out = out or getattr(sys.stdout, "buffer", sys.stdout)
    with open(blob_path, "rb") as f:
        blob = f.read()
    model = Model(blob)
    info, meta = model.info(), read_meta(blob)
    window = (meta.get("meta", {}).get("window") or 0) if meta.get("meta", {}).get("mode") != "stream" else 0
    y = array("h", [0] * info["output_size"])
    out.write(b"\x00")
    out.write(
        frame(
            HELLO,
            0,
            hello_payload(info, meta, SOURCE_REPLAY if samples_path else SOURCE_SENSOR, sys.platform),
        )
    )
    seq = 1
    for t, x in enumerate(samples(samples_path, info["input_size"], steps, info["input_bits"] // 8)):
        if window and t % window == 0:
            model.reset()
        model.step(x, y)
        if not window or t % window == window - 1:
            out.write(frame(PRED, seq, pred_payload(t, y)))
            seq = (seq + 1) & 0xFFFF


if __name__ == "__main__":
    args = sys.argv[1:] if hasattr(sys, "argv") else []
    main(
        args[0] if args else "model.tlm",
        int(args[1]) if len(args) > 1 else 1000,
        args[2] if len(args) > 2 else None,
    )
