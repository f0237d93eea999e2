"""Regenerate tests/vectors/protocol_vectors.json from the Python protocol implementation.

    python tests/gen_protocol_vectors.py          # rewrite the file
    python tests/gen_protocol_vectors.py --check  # exit 1 if the file is stale

The vectors pin the wire format: the C implementation (firmware/app/tl_proto.c) is tested against
them, and any change to the Python side that changes bytes shows up as a diff here.
"""

from __future__ import annotations

import dataclasses
import json
import random
import struct
import sys
from pathlib import Path
from typing import Any

from tinylstm.host.link import protocol as p

OUT = Path(__file__).parent / "vectors" / "protocol_vectors.json"

MESSAGES: list[tuple[str, p.Message]] = [
    (
        "hello",
        p.Hello(
            0xDEADBEEF,
            3,
            p.Cell.LSTM,
            2,
            6,
            32,
            4,
            8,
            p.Mode.WINDOW,
            50,
            p.Source.HOST,
            32,
            256,
            0,
            0,
            "netduinoplus2",
        ),
    ),
    (
        "hello_gru_noname",
        p.Hello(
            0,
            0xFFFF,
            p.Cell.GRU,
            1,
            1,
            1,
            1,
            8,
            p.Mode.STREAM,
            0,
            p.Source.SENSOR,
            0,
            0,
            0xFFFFFFFF,
            0xFFFFFFFF,
            "",
        ),
    ),
    (
        "hello_name_max",
        p.Hello(
            0x01020304,
            1,
            p.Cell.LSTM,
            1,
            3,
            8,
            2,
            8,
            p.Mode.STREAM,
            1,
            p.Source.REPLAY,
            2,
            0xFFFF,
            1234567,
            89,
            "x" * p.NAME_MAX,
        ),
    ),
    (
        "hello_bidirectional",  # a window model that answers at each window's last step
        p.Hello(
            0x0BADCAFE,
            4,
            p.Cell.GRU,
            2,
            3,
            16,
            5,
            8,
            p.Mode.WINDOW_END,
            128,
            p.Source.HOST,
            32,
            256,
            0,
            0,
            "qemu-riscv32",
        ),
    ),
    ("pred", p.Pred(123456, 0x01020304, (1, -2, 300, -32768, 32767, 0))),
    ("pred_empty", p.Pred(0xFFFFFFFF, 0, ())),
    ("pred_max", p.Pred(7, 0xFFFFFFFF, tuple(range(-125, 126)))),  # 251 outputs: 512-byte payload
    ("stats", p.Stats(1000, 8_123_000, 0, 3, 2, 0, 1000, 20_480)),
    (
        "stats_max",
        p.Stats(
            0xFFFFFFFF,
            0xFFFFFFFFFFFFFFFF,
            0xFFFFFFFF,
            0xFFFFFFFF,
            0xFFFFFFFF,
            0xFFFFFFFF,
            0xFFFFFFFF,
            0xFFFFFFFF,
        ),
    ),
    ("error", p.Error(p.ErrorCode.INPUT_SIZE, 77, p.FrameType.INPUT)),
    ("error_empty", p.Error(0xFFFF, 0)),
    ("error_fault", p.Error(p.ErrorCode.FAULT, 0xFFFFFFFF, 0, 0x8000000B, 0x0800_1234)),
    ("ack", p.Ack(p.FrameType.RESET, 0xFFFF, 128, 4096)),
    ("nak_gap", p.Nak(p.NakReason.GAP, 17, 135, 128, 2222)),
    ("nak_expired", p.Nak(p.NakReason.EXPIRED, 0xFFFF, 0, 0xFFFFFFFF, 0xFFFFFFFF)),
    ("input", p.Input(42, ((0, 1, -1, 127, -128, 42),))),
    ("input_batch", p.Input(0xFFFFFFFF, ((1, 2, 3), (-4, -5, -6), (0, 0, 0), (127, -128, 7)))),
    ("input_batch_max", p.Input(3, tuple((k - 128,) for k in range(p.MAX_BATCH)))),
    ("input_f32", p.InputF32(9, ((0.0, -0.0, 1.5, -2.25, 3.4028234663852886e38, float("inf")),))),
    ("input_f32_batch", p.InputF32(1, ((0.5, -1.0), (9.81, 1e-38)))),
    ("set_source", p.SetSource(p.Source.REPLAY)),
    ("reset", p.Reset(0)),
    ("reset_at", p.Reset(0x01020380)),
    ("pred_req", p.PredReq(4711)),
    ("hello_req", p.HelloReq()),
    ("stats_req", p.StatsReq()),
    # wire version 2 grew INPUT_S16 (int16-h models) after these: new vectors come last, so the seq of the
    # frames above stay put
    (
        "hello_hidden16",  # an int16-h model: the host feeds it INPUT_S16
        p.Hello(
            0x5EED1616,
            2,
            p.Cell.LSTM,
            1,
            6,
            32,
            7,
            16,
            p.Mode.WINDOW,
            128,
            p.Source.HOST,
            16,
            512,
            0,
            0,
            "qemu-stm32f405",
        ),
    ),
    ("input_s16", p.InputS16(42, ((0, 1, -1, 127, -128, 128, -129, 0x1234, 32767, -32768),))),
    ("input_s16_batch", p.InputS16(0xFFFFFFFF, ((1, -2), (256, -256), (0, 0), (32767, -32768)))),
    ("input_s16_max", p.InputS16(7, (tuple(k * 257 - 32639 for k in range(p.MAX_INPUT_SIZE_S16)),))),
]


def _nonzero(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(1, 256) for _ in range(n))


def _seq_without_zero_crc(ftype: int, payload: bytes) -> int:
    """A nonzero seq whose frame has no zero byte after the length field (controls COBS runs)."""
    for seq in range(0x0101, 0x10000):
        frame = p._HEADER.pack(p.MAGIC, ftype, seq, len(payload)) + payload
        if 0 not in frame[:4] and 0 not in p.crc32(frame).to_bytes(4, "little"):
            return seq
    raise AssertionError("no suitable seq")


def edge_frames(rng: random.Random) -> list[tuple[str, int, int, bytes]]:
    """(name, type, seq, payload) frames that stress COBS block boundaries and limits."""
    frames = [
        ("empty_seq0", p.FrameType.RESET, 0, b""),
        ("empty_seq_ffff", p.FrameType.STATS_REQ, 0xFFFF, b""),
        ("unknown_type", 0x42, 1, b"\x01\x02"),
        ("zeros_16", p.FrameType.INPUT, 2, bytes(16)),
        ("zeros_max", p.FrameType.INPUT, 3, bytes(p.MAX_PAYLOAD)),
        ("ff_max", p.FrameType.INPUT, 4, b"\xff" * p.MAX_PAYLOAD),
        ("random_max", p.FrameType.PRED, 5, rng.randbytes(p.MAX_PAYLOAD)),
        ("nonzero_257", p.FrameType.PRED, 0x0101, _nonzero(rng, 257)),  # length field 0x0101
    ]
    # Final COBS block (after the zero high byte of the length) of 253, 254, 255 data bytes.
    for run in (253, 254, 255):
        payload = _nonzero(rng, run - p.CRC_SIZE)
        frames.append(
            (f"tail_run_{run}", p.FrameType.PRED, _seq_without_zero_crc(p.FrameType.PRED, payload), payload)
        )
    for run in (253, 254, 255):
        frames.append((f"run_{run}_then_zero", p.FrameType.PRED, 9, _nonzero(rng, run) + b"\x00\x07"))
    return frames


def decode_events(stream: bytes) -> tuple[list[dict[str, Any]], p.FrameDecoder]:
    """Decoder events in stream order: fed one delimited piece at a time, so each feed() yields
    at most one event and errors (reported through on_error) interleave exactly with frames."""
    events: list[dict[str, Any]] = []
    dec = p.FrameDecoder(on_error=lambda code, _raw: events.append({"error": code.name}))
    for piece in stream.split(b"\x00")[:-1]:
        events.extend(
            {"frame": {"type": f.type, "seq": f.seq, "payload_hex": f.payload.hex()}}
            for f in dec.feed(piece + b"\x00")
        )
    dec.feed(stream[stream.rfind(b"\x00") + 1 :])  # an unterminated tail stays pending
    return events, dec


def _stream_expect(name: str, stream: bytes, errors: list[str]) -> dict[str, Any]:
    events, dec = decode_events(stream)
    got = [e["error"] for e in events if "error" in e]
    assert got == errors, (name, got, errors)
    return {
        "name": name,
        "stream_hex": stream.hex(),
        "events": events,
        "frames_ok": dec.frames_ok,
        "frames_bad": dec.frames_bad,
        "bytes_discarded": dec.bytes_discarded,
        "frames_dropped": dec.frames_dropped,
        "seq_restarts": dec.seq_restarts,
    }


def _raw_frame(magic: int, ftype: int, seq: int, length: int, payload: bytes) -> bytes:
    """A frame with a valid CRC over a possibly inconsistent header."""
    body = p._HEADER.pack(magic, ftype, seq, length) + payload
    return p.cobs_encode(body + p.crc32(body).to_bytes(4, "little")) + b"\x00"


def streams() -> list[dict[str, Any]]:
    def pred(seq: int, step: int = 0) -> bytes:
        return p.encode_message(p.Pred(step, 1000 + step, (10, -20, 30)), seq)

    a, b, c = pred(1, 100), pred(2, 101), pred(3, 102)
    flipped = bytearray(a)
    flipped[7] ^= 0x10  # a data byte inside the payload; stays nonzero
    assert flipped[7] != 0
    split = bytearray(a)
    split[14] = 0  # a zero inside the frame cuts it in two bad pieces
    return [
        _stream_expect("clean", a + b + c, []),
        _stream_expect("garbage_between", a + b"\x13\x37\xff\x42\x00" + b, ["COBS"]),
        _stream_expect("crc_flip", bytes(flipped) + b, ["CRC"]),
        _stream_expect("split_by_zero", bytes(split) + b, ["CRC", "CRC"]),
        _stream_expect("truncated", a[:9] + b"\x00" + b, ["SHORT"]),
        _stream_expect("missing_delimiter", a[:-1] + b + c, ["CRC"]),
        _stream_expect("too_long", b"\x01" * 600 + b"\x00" + b, ["TOO_LONG"]),
        _stream_expect("too_long_ff", b"\xff" * 600 + b"\x00" + b, ["TOO_LONG"]),
        _stream_expect("too_long_2000", bytes(range(1, 201)) * 10 + b"\x00" + b, ["TOO_LONG"]),
        _stream_expect("bad_magic", _raw_frame(0x5A, 2, 1, 2, b"\x01\x02") + b, ["MAGIC"]),
        _stream_expect(
            "wire_version_1", _raw_frame(p.MAGIC_BY_VERSION[1], 2, 1, 2, b"\x01\x02") + b, ["MAGIC"]
        ),
        _stream_expect("bad_length", _raw_frame(p.MAGIC, 2, 1, 3, b"\x01\x02") + b, ["LENGTH"]),
        _stream_expect("short", p.cobs_encode(b"\xa5\x01\x00") + b"\x00" + b, ["SHORT"]),
        _stream_expect("empty_frames", b"\x00\x00" + a + b"\x00\x00\x00" + b, []),
        _stream_expect("leading_partial", a[5:] + b, ["COBS"]),
        _stream_expect("pending_tail", a + b[:-1], []),
        _stream_expect("seq_gap", pred(1) + pred(2) + pred(5), []),
        _stream_expect("seq_wrap", pred(65534) + pred(65535) + pred(0) + pred(2), []),
        _stream_expect(
            "sender_restart", pred(10) + pred(11) + p.encode_message(MESSAGES[0][1], 0) + pred(1), []
        ),
        _stream_expect("duplicate", pred(4) + pred(4) + pred(5), []),
    ]


def build_vectors() -> dict[str, Any]:
    rng = random.Random(20261201)
    frames = [(name, msg.TYPE, i, msg.pack()) for i, (name, msg) in enumerate(MESSAGES)]
    frames += edge_frames(rng)
    return {
        "about": "Generated by tests/gen_protocol_vectors.py from tinylstm.host.link.protocol; do not edit.",
        "version": p.VERSION,
        "magic": p.MAGIC,
        "crc": "CRC-32/ISO-HDLC (zlib), u32 LE over header+payload",
        "crc_check": {"data_hex": b"123456789".hex(), "crc": p.crc32(b"123456789")},
        "max_payload": p.MAX_PAYLOAD,
        "messages": [
            {"name": name, "type": msg.TYPE, "fields": _fields(msg), "payload_hex": msg.pack().hex()}
            for name, msg in MESSAGES
        ],
        "frames": [
            {
                "name": name,
                "type": int(t),
                "seq": seq,
                "payload_hex": payload.hex(),
                "encoded_hex": p.encode_frame(t, seq, payload).hex(),
            }
            for name, t, seq, payload in frames
        ],
        "streams": streams(),
    }


def _fields(msg: p.Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(msg):
        v = getattr(msg, f.name)
        out[f.name] = [_json_num(x) for x in v] if isinstance(v, tuple) else _json_num(v)
    return out


def _json_num(v: Any) -> Any:
    if isinstance(v, float):  # keep inf/-0.0 exact and JSON-portable
        return {"f32_hex": struct.pack("<f", v).hex()}
    return int(v) if isinstance(v, int) else v


def render() -> str:
    return json.dumps(build_vectors(), indent=1) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run python tests/gen_protocol_vectors.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
