"""TinyLSTM serial frame protocol (host side).

Specification: docs/serial-protocol.md. The firmware implementation is firmware/app/tl_proto.c;
both are checked against tests/vectors/protocol_vectors.json.

Wire format: ``COBS(header | payload | crc32) 0x00`` with
``header = magic u8 (0xA5) | type u8 | seq u16 LE | payload length u16 LE`` and
``crc32`` = CRC-32/ISO-HDLC (zlib) over header and payload, u32 LE.
"""
from __future__ import annotations

import struct
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from typing_extensions import Self

MAGIC = 0xA5
HEADER_SIZE = 6
CRC_SIZE = 4
MAX_PAYLOAD = 512
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
NAME_MAX = 32
MSG_MAX = 64
# A zero-free run of n bytes decodes to at least n - 1 - n // 255 bytes, so past this length it is
# TOO_LONG whatever it holds: the decoder forgets its bytes instead of buffering them.
_PENDING_LIMIT = 1024

_HEADER = struct.Struct("<BBHH")


class FrameType(IntEnum):
    """Frame types; bit 7 set means host -> board."""

    HELLO = 0x01
    PRED = 0x02
    STATS = 0x03
    ERROR = 0x04
    ACK = 0x05
    HELLO_REQ = 0x81
    INPUT = 0x82
    INPUT_F32 = 0x83
    RESET = 0x84
    SET_SOURCE = 0x85
    STATS_REQ = 0x86


class DecodeError(IntEnum):
    """Why a delimited frame was rejected; values equal the C TL_PROTO_ERR_* codes."""

    COBS = -1
    TOO_LONG = -2
    SHORT = -3
    CRC = -4
    MAGIC = -5
    LENGTH = -6


class Cell(IntEnum):
    LSTM = 0
    GRU = 1


class Mode(IntEnum):
    WINDOW = 0
    STREAM = 1


class Source(IntEnum):
    HOST = 0
    REPLAY = 1
    SENSOR = 2


class ErrorCode(IntEnum):
    """Codes carried by ERROR frames (application level)."""

    BAD_FRAME = 1
    UNKNOWN_TYPE = 2
    BAD_PAYLOAD = 3
    INPUT_SIZE = 4
    UNSUPPORTED = 5
    OVERRUN = 6
    INTERNAL = 7


class _BadFrame(Exception):
    def __init__(self, code: DecodeError) -> None:
        super().__init__(code.name)
        self.code = code


class PayloadError(ValueError):
    """A payload does not match the layout of its frame type."""


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC, the same as zlib.crc32."""
    return zlib.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    """Canonical COBS (Cheshire & Baker), without the 0x00 delimiter.

    Data ending exactly after a full 254-byte block gets no extra code byte.
    """
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
        block.clear()
    if not closed_full:
        out.append(len(block) + 1)
        out += block
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes


def encode_frame(type: int, seq: int, payload: bytes = b"") -> bytes:
    """One wire frame: COBS(header | payload | crc32) followed by 0x00."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = _HEADER.pack(MAGIC, type, seq & 0xFFFF, len(payload)) + bytes(payload)
    return cobs_encode(body + struct.pack("<I", crc32(body))) + b"\x00"


def _decode_chunk(chunk: bytes) -> Frame:
    """Decode the non-empty, zero-free bytes between two delimiters; checks in the C order.

    The decoded length (for TOO_LONG) counts the bytes of an incomplete last block, as the C
    decoder does while it fills its buffer.
    """
    out = bytearray()
    i = 0
    code = 0xFF  # no zero before the first block
    while i < len(chunk):
        if code != 0xFF:
            out.append(0)  # the previous block ended with an implied zero
        code = chunk[i]
        out += chunk[i + 1:i + code]
        i += code
    if len(out) > MAX_FRAME:
        raise _BadFrame(DecodeError.TOO_LONG)
    if i > len(chunk):
        raise _BadFrame(DecodeError.COBS)
    if len(out) < HEADER_SIZE + CRC_SIZE:
        raise _BadFrame(DecodeError.SHORT)
    body = bytes(out[:-CRC_SIZE])
    if crc32(body) != int.from_bytes(out[-CRC_SIZE:], "little"):
        raise _BadFrame(DecodeError.CRC)
    magic, ftype, seq, length = _HEADER.unpack_from(body)
    if magic != MAGIC:
        raise _BadFrame(DecodeError.MAGIC)
    if length != len(body) - HEADER_SIZE:
        raise _BadFrame(DecodeError.LENGTH)
    return Frame(ftype, seq, body[HEADER_SIZE:])


class FrameDecoder:
    """Incremental decoder: feed arbitrary chunks, get the valid frames back.

    A bad frame (everything between two 0x00) is dropped, counted once in ``frames_bad`` and
    ``errors``, its bytes in ``bytes_discarded``, and ``on_error(code, raw_bytes)`` is called
    (raw_bytes may omit the head of a TOO_LONG frame: the decoder keeps at most ~1 KiB pending).
    Repeated 0x00 (empty frames) are ignored. ``frames_dropped`` counts sequence numbers missing
    between accepted frames (lost or corrupted), modulo 2**16. A backwards jump (gap of 2**15 or
    more) or a HELLO with seq 0 is taken as a sender restart: counted in ``seq_restarts``, not as
    drops.
    """

    def __init__(self, on_error: Callable[[DecodeError, bytes], None] | None = None) -> None:
        self.on_error = on_error
        self.frames_ok = 0
        self.frames_bad = 0
        self.bytes_discarded = 0
        self.frames_dropped = 0
        self.seq_restarts = 0
        self.errors: Counter[DecodeError] = Counter()
        self._buf = bytearray()
        self._skipped = 0  # bytes of the pending frame already dropped (it is TOO_LONG)
        self._last_seq: int | None = None

    @property
    def pending_bytes(self) -> int:
        """Bytes received since the last 0x00 (a board in text mode never sends one)."""
        return self._skipped + len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Consume received bytes; return the frames they complete, in order."""
        self._buf += data
        *chunks, rest = self._buf.split(b"\x00")
        frames = []
        for chunk in chunks:
            skipped, self._skipped = self._skipped, 0
            if not chunk and not skipped:
                continue
            try:
                if skipped:
                    raise _BadFrame(DecodeError.TOO_LONG)
                frame = _decode_chunk(bytes(chunk))
            except _BadFrame as exc:
                self._reject(exc.code, bytes(chunk), skipped)
                continue
            self._track_seq(frame)
            self.frames_ok += 1
            frames.append(frame)
        if len(rest) > _PENDING_LIMIT:
            self._skipped += len(rest)
            rest = bytearray()
        self._buf = rest
        return frames

    def _reject(self, code: DecodeError, raw: bytes, skipped: int) -> None:
        self.frames_bad += 1
        self.bytes_discarded += skipped + len(raw)
        self.errors[code] += 1
        if self.on_error is not None:
            self.on_error(code, raw)

    def _track_seq(self, frame: Frame) -> None:
        last, self._last_seq = self._last_seq, frame.seq
        if last is None:
            return
        gap = (frame.seq - last - 1) & 0xFFFF
        if gap >= 0x8000 or (frame.type == FrameType.HELLO and frame.seq == 0):
            self.seq_restarts += 1
        else:
            self.frames_dropped += gap


# ---- payloads ------------------------------------------------------------------------------


def _pack_str(text: str, limit: int) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > limit:
        raise ValueError(f"string of {len(raw)} bytes exceeds {limit}")
    return bytes([len(raw)]) + raw


def _unpack_str(payload: bytes, offset: int) -> str:
    if len(payload) <= offset or len(payload) != offset + 1 + payload[offset]:
        raise PayloadError("string length does not match the payload size")
    return payload[offset + 1:].decode("utf-8", errors="replace")


def _unpack_exact(fmt: struct.Struct, payload: bytes) -> tuple[int, ...]:
    if len(payload) != fmt.size:
        raise PayloadError(f"expected {fmt.size} payload bytes, got {len(payload)}")
    return fmt.unpack(payload)


def _unpack_counted(payload: bytes, item: str) -> tuple[int | float, ...]:
    size = struct.calcsize(item)
    if len(payload) < 2 or len(payload) != 2 + size * int.from_bytes(payload[:2], "little"):
        raise PayloadError("count does not match the payload size")
    return tuple(x for (x,) in struct.iter_unpack("<" + item, payload[2:]))


@dataclass(frozen=True)
class Hello:
    TYPE: ClassVar[FrameType] = FrameType.HELLO
    _FIXED: ClassVar[struct.Struct] = struct.Struct("<IHBBHHHBHB")
    model_hash: int
    kernel_version: int
    cell: Cell
    layers: int
    input_size: int
    hidden_size: int
    output_size: int
    mode: Mode
    window: int
    source: Source
    board_name: str

    def pack(self) -> bytes:
        return self._FIXED.pack(
            self.model_hash, self.kernel_version, self.cell, self.layers, self.input_size,
            self.hidden_size, self.output_size, self.mode, self.window, self.source,
        ) + _pack_str(self.board_name, NAME_MAX)

    @classmethod
    def unpack(cls, payload: bytes) -> Hello:
        n = cls._FIXED.size
        name = _unpack_str(payload, n)
        h, kv, cell, layers, ins, hid, outs, mode, win, src = cls._FIXED.unpack_from(payload)
        try:
            return cls(h, kv, Cell(cell), layers, ins, hid, outs, Mode(mode), win, Source(src), name)
        except ValueError as exc:
            raise PayloadError(str(exc)) from None


@dataclass(frozen=True)
class Pred:
    """Raw int16 outputs of one model step; the host dequantizes with the model's output scale."""

    TYPE: ClassVar[FrameType] = FrameType.PRED
    step: int
    outputs: tuple[int, ...]

    def pack(self) -> bytes:
        return struct.pack(f"<IH{len(self.outputs)}h", self.step, len(self.outputs), *self.outputs)

    @classmethod
    def unpack(cls, payload: bytes) -> Pred:
        if len(payload) < 4:
            raise PayloadError("PRED payload too short")
        return cls(int.from_bytes(payload[:4], "little"), tuple(map(int, _unpack_counted(payload[4:], "h"))))


@dataclass(frozen=True)
class Stats:
    TYPE: ClassVar[FrameType] = FrameType.STATS
    _FMT: ClassVar[struct.Struct] = struct.Struct("<IIII")
    steps: int
    cycles_per_step: int  # 0 = unknown
    dropped_rx: int
    frames_bad: int

    def pack(self) -> bytes:
        return self._FMT.pack(self.steps, self.cycles_per_step, self.dropped_rx, self.frames_bad)

    @classmethod
    def unpack(cls, payload: bytes) -> Stats:
        return cls(*_unpack_exact(cls._FMT, payload))


@dataclass(frozen=True)
class Error:
    TYPE: ClassVar[FrameType] = FrameType.ERROR
    code: int  # ErrorCode values; unknown codes are kept as int
    message: str

    def pack(self) -> bytes:
        return struct.pack("<H", self.code) + _pack_str(self.message, MSG_MAX)

    @classmethod
    def unpack(cls, payload: bytes) -> Error:
        message = _unpack_str(payload, 2)
        return cls(int.from_bytes(payload[:2], "little"), message)


@dataclass(frozen=True)
class Ack:
    TYPE: ClassVar[FrameType] = FrameType.ACK
    _FMT: ClassVar[struct.Struct] = struct.Struct("<BH")
    acked_type: int
    acked_seq: int

    def pack(self) -> bytes:
        return self._FMT.pack(self.acked_type, self.acked_seq)

    @classmethod
    def unpack(cls, payload: bytes) -> Ack:
        return cls(*_unpack_exact(cls._FMT, payload))


@dataclass(frozen=True)
class Input:
    """One quantized int8 input sample."""

    TYPE: ClassVar[FrameType] = FrameType.INPUT
    values: tuple[int, ...]

    def pack(self) -> bytes:
        return struct.pack(f"<H{len(self.values)}b", len(self.values), *self.values)

    @classmethod
    def unpack(cls, payload: bytes) -> Input:
        return cls(tuple(map(int, _unpack_counted(payload, "b"))))


@dataclass(frozen=True)
class InputF32:
    """One float32 input sample; the board quantizes it with the generated constants."""

    TYPE: ClassVar[FrameType] = FrameType.INPUT_F32
    values: tuple[float, ...]

    def pack(self) -> bytes:
        return struct.pack(f"<H{len(self.values)}f", len(self.values), *self.values)

    @classmethod
    def unpack(cls, payload: bytes) -> InputF32:
        return cls(tuple(map(float, _unpack_counted(payload, "f"))))


@dataclass(frozen=True)
class SetSource:
    TYPE: ClassVar[FrameType] = FrameType.SET_SOURCE
    source: Source

    def pack(self) -> bytes:
        return bytes([self.source])

    @classmethod
    def unpack(cls, payload: bytes) -> SetSource:
        try:
            (source,) = payload
            return cls(Source(source))
        except ValueError:
            raise PayloadError("SET_SOURCE needs one byte naming a known source") from None


@dataclass(frozen=True)
class _Empty:
    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        if payload:
            raise PayloadError(f"{cls.__name__} takes no payload")
        return cls()


@dataclass(frozen=True)
class Reset(_Empty):
    """Reset the recurrent state."""

    TYPE: ClassVar[FrameType] = FrameType.RESET


@dataclass(frozen=True)
class HelloReq(_Empty):
    TYPE: ClassVar[FrameType] = FrameType.HELLO_REQ


@dataclass(frozen=True)
class StatsReq(_Empty):
    TYPE: ClassVar[FrameType] = FrameType.STATS_REQ


Message = Hello | Pred | Stats | Error | Ack | Input | InputF32 | SetSource | Reset | HelloReq | StatsReq
MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (Hello, Pred, Stats, Error, Ack, Input, InputF32, SetSource, Reset, HelloReq, StatsReq)
}


def encode_message(msg: Message, seq: int) -> bytes:
    """The wire bytes of ``msg`` sent with sequence number ``seq``."""
    return encode_frame(msg.TYPE, seq, msg.pack())


def parse_message(frame: Frame) -> Message:
    """Typed view of a frame's payload. Raises PayloadError for unknown types or bad payloads."""
    cls = MESSAGE_TYPES.get(frame.type)
    if cls is None:
        raise PayloadError(f"unknown frame type 0x{frame.type:02x}")
    try:
        return cls.unpack(frame.payload)
    except struct.error as exc:
        raise PayloadError(str(exc)) from None
