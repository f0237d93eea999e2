"""TinyLSTM serial frame protocol, wire version 3 (host side).

Specification: docs/serial-protocol.md. The firmware implementation is firmware/app/tl_proto.c;
both are checked against tests/vectors/protocol_vectors.json.

Wire format: ``COBS(header | payload | crc32) 0x00`` with
``header = magic u8 (0xA7) | type u8 | seq u16 LE | payload length u16 LE`` and
``crc32`` = CRC-32/ISO-HDLC (zlib) over header and payload, u32 LE.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar

from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import BLOB_INPUT16_FLAG, input_bits

if TYPE_CHECKING:
    from typing_extensions import Self

VERSION = 3
MAGIC = 0xA7  # wire version 3; version 1 was 0xA5, version 2 0xA6
MAGIC_BY_VERSION = {1: 0xA5, 2: 0xA6, 3: 0xA7}
HEADER_SIZE = 6
CRC_SIZE = 4
MAX_PAYLOAD = 512
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
NAME_MAX = 32
INPUT_HEAD = 5  # INPUT / INPUT_S16 / INPUT_F32: first step u32, sample count u8
MAX_BATCH = 255  # samples per INPUT frame (the count is a u8)
MAX_INPUT_SIZE = MAX_PAYLOAD - INPUT_HEAD  # one int8 sample per INPUT frame
MAX_INPUT_SIZE_S16 = (MAX_PAYLOAD - INPUT_HEAD) // 2  # one int16 sample per INPUT_S16 frame
MAX_INPUT_SIZE_F32 = (MAX_PAYLOAD - INPUT_HEAD) // 4
PRED_HEAD = 10  # PRED: step u32, rx_freed u32, count u16
MAX_OUTPUT_SIZE = (MAX_PAYLOAD - PRED_HEAD) // 2
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
    NAK = 0x06
    HELLO_REQ = 0x81
    INPUT = 0x82
    INPUT_F32 = 0x83
    RESET = 0x84
    SET_SOURCE = 0x85
    STATS_REQ = 0x86
    PRED_REQ = 0x87
    INPUT_S16 = 0x88


class DecodeError(IntEnum):
    """Why a delimited frame was rejected; values equal the C TL_PROTO_DEC_* codes."""

    COBS = -1
    TOO_LONG = -2
    SHORT = -3
    CRC = -4
    MAGIC = -5
    LENGTH = -6


# HELLO.cell: the codes of the cell registry (contract/cells.py), e.g. Cell.LSTM, Cell.GRU
Cell = IntEnum("Cell", {c.name.upper(): c.code for c in CELLS.values()})  # type: ignore[misc]


class Mode(IntEnum):
    WINDOW = 0
    STREAM = 1
    WINDOW_END = 2  # window mode, answered by the PRED of each window's last step (bidirectional models)

    @property
    def windowed(self) -> bool:
        """The board resets the state at every window's first step."""
        return self != Mode.STREAM


# how `tinylstm stream` names each mode
MODE_NAMES = {Mode.WINDOW: "window", Mode.STREAM: "stream", Mode.WINDOW_END: "window (answered at its end)"}


class Source(IntEnum):
    HOST = 0
    REPLAY = 1
    SENSOR = 2


class ErrorCode(IntEnum):
    """Codes carried by ERROR frames (application level); C: TL_PROTO_ERROR_*."""

    BAD_FRAME = 1
    UNKNOWN_TYPE = 2
    BAD_PAYLOAD = 3
    INPUT_SIZE = 4
    UNSUPPORTED = 5
    OVERRUN = 6
    INTERNAL = 7
    FAULT = 8
    WATCHDOG = 9
    NOT_FINITE = 10


def error_name(code: int) -> str:
    """The name of an ERROR code (``OVERRUN``), or ``code N`` for one this host does not know."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"code {code}"


class NakReason(IntEnum):
    """Why the board refused an INPUT or PRED_REQ; C: TL_PROTO_NAK_*."""

    GAP = 1  # INPUT's step is not the step the board expects next
    EXPIRED = 2  # PRED_REQ for a step whose PRED the board no longer holds
    NOT_YET = 3  # PRED_REQ for a step the board has not run
    SOURCE = 4  # INPUT while the board's input source is not the host


class _BadFrame(Exception):
    def __init__(self, code: DecodeError, magic: int | None = None) -> None:
        super().__init__(code.name)
        self.code = code
        self.magic = magic


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


def boot_hello(frame: Frame) -> bool:
    """A HELLO the board sent at boot: its first frame, seq 0 (docs/serial-protocol.md §2). A HELLO with
    any other seq answers a HELLO_REQ from a board that kept running: no reset. (Once in 2**16 frames a
    reply wraps to seq 0 and reads as a boot: the host restarts the board at a known step, which costs a
    rewind, not data.)"""
    return frame.type == FrameType.HELLO and frame.seq == 0


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
        out += chunk[i + 1 : i + code]
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
        raise _BadFrame(DecodeError.MAGIC, magic)
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
        self.foreign_magic: int | None = None  # magic of the last CRC-valid frame of another wire version
        self._buf = bytearray()
        self._skipped = 0  # bytes of the pending frame already dropped (it is TOO_LONG)
        self._last_seq: int | None = None

    @property
    def pending_bytes(self) -> int:
        """Bytes received since the last 0x00 (a sender of text, not frames, never sends one)."""
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
                if exc.code == DecodeError.MAGIC:
                    self.foreign_magic = exc.magic
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
        if gap >= 0x8000 or boot_hello(frame):
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
    return payload[offset + 1 :].decode("utf-8", errors="replace")


def _unpack_exact(fmt: struct.Struct, payload: bytes) -> tuple[int, ...]:
    if len(payload) != fmt.size:
        raise PayloadError(f"expected {fmt.size} payload bytes, got {len(payload)}")
    return fmt.unpack(payload)


_INPUT_HEAD = struct.Struct("<IB")


def input_payload(step: int, count: int, data: bytes) -> bytes:
    """INPUT / INPUT_S16 / INPUT_F32 payload from already packed samples: ``count`` samples from ``step``."""
    if not 1 <= count <= MAX_BATCH:
        raise ValueError(f"an INPUT frame carries 1..{MAX_BATCH} samples, not {count}")
    return _INPUT_HEAD.pack(step & 0xFFFFFFFF, count) + data


def _unpack_samples(payload: bytes, item: str) -> tuple[int, tuple[tuple[Any, ...], ...]]:
    if len(payload) < INPUT_HEAD or payload[4] == 0:
        raise PayloadError("INPUT payload needs a step, a sample count of at least 1 and the samples")
    step, count = _INPUT_HEAD.unpack_from(payload)
    width = struct.calcsize(item)
    data = payload[INPUT_HEAD:]
    if len(data) % (count * width):
        raise PayloadError(f"{len(data)} sample bytes do not split into {count} samples")
    size = len(data) // (count * width)
    values = struct.unpack(f"<{count * size}{item}", data)
    return step, tuple(tuple(values[k * size : (k + 1) * size]) for k in range(count))


def _pack_samples(samples: tuple[tuple[Any, ...], ...], item: str) -> bytes:
    sizes = {len(s) for s in samples}
    if len(sizes) != 1:
        raise ValueError("every sample of an INPUT frame has the model's input size")
    flat = [v for s in samples for v in s]
    return struct.pack(f"<{len(flat)}{item}", *flat)


@dataclass(frozen=True)
class Hello:
    """The board's identity, its model's shape and what the host may send it (§4.1)."""

    TYPE: ClassVar[FrameType] = FrameType.HELLO
    _FIXED: ClassVar[struct.Struct] = struct.Struct("<IHBBHHHBBHBBHII")
    model_hash: int
    kernel_version: int
    cell: Cell
    layers: int
    input_size: int
    hidden_size: int
    output_size: int
    hidden_bits: int
    mode: Mode
    window: int
    source: Source
    history: int  # PRED frames the board can send again (PRED_REQ)
    rx_capacity: int  # bytes the host may have in flight (credit window)
    next_step: int  # step the board expects in the next INPUT
    rx_freed: int  # received bytes taken or dropped since boot, mod 2**32
    board_name: str
    # an int8-h model with an int16 input: byte 14 carries hidden_bits | BLOB_INPUT16_FLAG (as blob byte 30)
    input16: bool = False

    @property
    def input_bits(self) -> int:
        """The model input's bits, which say the frame its samples travel in (``input_frame``)."""
        return input_bits(self.hidden_bits, self.input16)

    def pack(self) -> bytes:
        return self._FIXED.pack(
            self.model_hash,
            self.kernel_version,
            self.cell,
            self.layers,
            self.input_size,
            self.hidden_size,
            self.output_size,
            self.hidden_bits | (BLOB_INPUT16_FLAG if self.input16 else 0),
            self.mode,
            self.window,
            self.source,
            self.history,
            self.rx_capacity,
            self.next_step,
            self.rx_freed,
        ) + _pack_str(self.board_name, NAME_MAX)

    @classmethod
    def unpack(cls, payload: bytes) -> Hello:
        name = _unpack_str(payload, cls._FIXED.size)
        (h, kv, cell, layers, ins, hid, outs, bits, mode, win, src, hist, cap, nxt, freed) = (
            cls._FIXED.unpack_from(payload)
        )
        try:
            return cls(
                h,
                kv,
                Cell(cell),
                layers,
                ins,
                hid,
                outs,
                bits & ~BLOB_INPUT16_FLAG,
                Mode(mode),
                win,
                Source(src),
                hist,
                cap,
                nxt,
                freed,
                name,
                bool(bits & BLOB_INPUT16_FLAG),
            )
        except ValueError as exc:
            raise PayloadError(str(exc)) from None


@dataclass(frozen=True)
class Pred:
    """Raw int16 outputs of one model step; the host dequantizes with the model's output scale."""

    TYPE: ClassVar[FrameType] = FrameType.PRED
    _HEAD: ClassVar[struct.Struct] = struct.Struct("<IIH")
    step: int  # the INPUT step that produced these outputs
    rx_freed: int
    outputs: tuple[int, ...]

    def pack(self) -> bytes:
        n = len(self.outputs)
        return self._HEAD.pack(self.step, self.rx_freed, n) + struct.pack(f"<{n}h", *self.outputs)

    @classmethod
    def unpack(cls, payload: bytes) -> Pred:
        if len(payload) < PRED_HEAD or len(payload) != PRED_HEAD + 2 * int.from_bytes(
            payload[8:10], "little"
        ):
            raise PayloadError("PRED count does not match the payload size")
        step, freed, n = cls._HEAD.unpack_from(payload)
        return cls(step, freed, struct.unpack_from(f"<{n}h", payload, PRED_HEAD))


@dataclass(frozen=True)
class Stats:
    TYPE: ClassVar[FrameType] = FrameType.STATS
    _FMT: ClassVar[struct.Struct] = struct.Struct("<IQIIIIII")
    steps: int  # model steps since boot
    cycles: int  # CPU cycles spent in them (0: the board has no cycle counter)
    dropped_rx: int  # received bytes lost
    frames_bad: int  # received frames the board's decoder rejected
    inputs_refused: int  # NAK frames sent
    tx_timeouts: int  # frames the board's UART did not take in time
    next_step: int
    rx_freed: int

    @property
    def cycles_per_step(self) -> int:
        """Average cycles per step (0 = unknown)."""
        return self.cycles // self.steps if self.steps else 0

    def pack(self) -> bytes:
        return self._FMT.pack(
            self.steps,
            self.cycles,
            self.dropped_rx,
            self.frames_bad,
            self.inputs_refused,
            self.tx_timeouts,
            self.next_step,
            self.rx_freed,
        )

    @classmethod
    def unpack(cls, payload: bytes) -> Stats:
        return cls(*_unpack_exact(cls._FMT, payload))


@dataclass(frozen=True)
class Error:
    """An ERROR frame: no text on the wire; :attr:`message` words it from the fields (:func:`error_text`)."""

    TYPE: ClassVar[FrameType] = FrameType.ERROR
    _FMT: ClassVar[struct.Struct] = struct.Struct("<HIBII")
    code: int  # ErrorCode values; unknown codes are kept as int
    rx_freed: int
    frame_type: int = 0  # the type of the frame the error answers; 0: none
    exception: int = 0  # FAULT: the exception number (Cortex-M IPSR, RISC-V mcause, Xtensa EXCCAUSE)
    pc: int = 0  # FAULT: the faulting pc

    def pack(self) -> bytes:
        return self._FMT.pack(self.code, self.rx_freed, self.frame_type, self.exception, self.pc)

    @classmethod
    def unpack(cls, payload: bytes) -> Error:
        return cls(*_unpack_exact(cls._FMT, payload))

    @property
    def message(self) -> str:
        """What went wrong, in words: ``received bytes lost``."""
        return error_text(self.code, self.frame_type, self.exception, self.pc)

    def describe(self) -> str:
        """``OVERRUN: received bytes lost``: the code by name, then what it means."""
        return f"{error_name(self.code)}: {self.message}" if self.message else error_name(self.code)


def _frame_name(frame_type: int) -> str:
    try:
        return FrameType(frame_type).name
    except ValueError:
        return f"0x{frame_type:02x}"


# The words of an ERROR, by code and the frame type it answers (None: any other or none). The board sends
# only the numbers (as defmt keeps log strings off the target): these words cost it no flash.
_ERROR_TEXTS: dict[tuple[int, int | None], str] = {
    (ErrorCode.BAD_FRAME, None): "frame failed to decode",
    (ErrorCode.UNKNOWN_TYPE, None): "unknown frame type {frame}",
    (ErrorCode.BAD_PAYLOAD, FrameType.PRED_REQ): "PRED_REQ takes a u32 step",
    (ErrorCode.BAD_PAYLOAD, FrameType.RESET): "RESET takes a u32 step",
    (ErrorCode.BAD_PAYLOAD, FrameType.SET_SOURCE): "unknown source",
    (ErrorCode.BAD_PAYLOAD, FrameType.HELLO_REQ): "request takes no payload",
    (ErrorCode.BAD_PAYLOAD, FrameType.STATS_REQ): "request takes no payload",
    (ErrorCode.BAD_PAYLOAD, None): "{frame} payload malformed for its type",
    (ErrorCode.INPUT_SIZE, None): "{frame} samples != model input size",
    (ErrorCode.UNSUPPORTED, FrameType.INPUT): "int16 input: send INPUT_S16",
    (ErrorCode.UNSUPPORTED, FrameType.INPUT_S16): "int8 input: send INPUT",
    (ErrorCode.UNSUPPORTED, FrameType.INPUT_F32): "input too wide for INPUT_F32: send INPUT or INPUT_S16",
    (ErrorCode.UNSUPPORTED, FrameType.SET_SOURCE): "no replay data in this build",
    (ErrorCode.UNSUPPORTED, None): "{frame} is not available in this build",
    (ErrorCode.OVERRUN, None): "received bytes lost",
    (ErrorCode.INTERNAL, None): "model rejected by tl_state_init",
    (ErrorCode.FAULT, None): "exception 0x{exception:08x} at pc 0x{pc:08x}",
    (ErrorCode.WATCHDOG, None): "reset by the watchdog",
    (ErrorCode.NOT_FINITE, FrameType.INPUT_F32): "input is NaN or infinite",
    (ErrorCode.NOT_FINITE, None): "sensor sample is NaN or infinite",
}


def error_text(code: int, frame_type: int = 0, exception: int = 0, pc: int = 0) -> str:
    """The words of an ERROR frame's fields (``int8 input: send INPUT``); for a code this host does not know,
    only the frame it answers (``about RESET``) or nothing."""
    text = _ERROR_TEXTS.get((code, frame_type)) or _ERROR_TEXTS.get((code, None))
    if text is None:
        return f"about {_frame_name(frame_type)}" if frame_type else ""
    return text.format(frame=_frame_name(frame_type), exception=exception, pc=pc)


@dataclass(frozen=True)
class Ack:
    TYPE: ClassVar[FrameType] = FrameType.ACK
    _FMT: ClassVar[struct.Struct] = struct.Struct("<BHII")
    acked_type: int
    acked_seq: int
    next_step: int
    rx_freed: int

    def pack(self) -> bytes:
        return self._FMT.pack(self.acked_type, self.acked_seq, self.next_step, self.rx_freed)

    @classmethod
    def unpack(cls, payload: bytes) -> Ack:
        return cls(*_unpack_exact(cls._FMT, payload))


@dataclass(frozen=True)
class Nak:
    """The board refused the host frame ``seq``, which named ``step``; it expects ``next_step``."""

    TYPE: ClassVar[FrameType] = FrameType.NAK
    _FMT: ClassVar[struct.Struct] = struct.Struct("<BHIII")
    reason: NakReason
    seq: int
    step: int
    next_step: int
    rx_freed: int

    def pack(self) -> bytes:
        return self._FMT.pack(self.reason, self.seq, self.step, self.next_step, self.rx_freed)

    @classmethod
    def unpack(cls, payload: bytes) -> Nak:
        reason, seq, step, nxt, freed = _unpack_exact(cls._FMT, payload)
        try:
            return cls(NakReason(reason), seq, step, nxt, freed)
        except ValueError as exc:
            raise PayloadError(str(exc)) from None


@dataclass(frozen=True)
class _Samples:
    """INPUT, INPUT_S16 and INPUT_F32: consecutive samples, the first one for the board's step ``step``."""

    TYPE: ClassVar[FrameType]
    MAX_INPUT_SIZE: ClassVar[int]  # the widest model input one frame carries (one sample)
    ITEM: ClassVar[str]  # struct (and numpy) code of one value, little-endian on the wire
    step: int
    samples: tuple[tuple[Any, ...], ...]

    @classmethod
    def sample_bytes(cls, input_size: int) -> int:
        """Payload bytes of one sample of ``input_size`` values."""
        return input_size * struct.calcsize(cls.ITEM)

    def pack(self) -> bytes:
        return input_payload(self.step, len(self.samples), _pack_samples(self.samples, self.ITEM))

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        step, samples = _unpack_samples(payload, cls.ITEM)
        return cls(step, samples)


@dataclass(frozen=True)
class Input(_Samples):
    """Consecutive quantized int8 samples (a model with an int8 input)."""

    TYPE: ClassVar[FrameType] = FrameType.INPUT
    MAX_INPUT_SIZE: ClassVar[int] = MAX_INPUT_SIZE
    ITEM: ClassVar[str] = "b"
    samples: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class InputS16(_Samples):
    """Consecutive quantized int16 samples, little-endian (an int16-h model: its input is int16)."""

    TYPE: ClassVar[FrameType] = FrameType.INPUT_S16
    MAX_INPUT_SIZE: ClassVar[int] = MAX_INPUT_SIZE_S16
    ITEM: ClassVar[str] = "h"
    samples: tuple[tuple[int, ...], ...]


def input_frame(bits: int) -> type[Input] | type[InputS16]:
    """The frame of a model's quantized samples, from the bits of its input (``Hello.input_bits``,
    ``IntModel.input_bits``): INPUT_S16 for an int16 input (an int16-h model's, or an int8-h model's with an
    int16 input), else INPUT."""
    return InputS16 if bits == 16 else Input


@dataclass(frozen=True)
class InputF32(_Samples):
    """Consecutive float32 samples; the board quantizes them with the generated constants."""

    TYPE: ClassVar[FrameType] = FrameType.INPUT_F32
    MAX_INPUT_SIZE: ClassVar[int] = MAX_INPUT_SIZE_F32
    ITEM: ClassVar[str] = "f"
    samples: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class _StepOnly:
    _FMT: ClassVar[struct.Struct] = struct.Struct("<I")
    step: int

    def pack(self) -> bytes:
        return self._FMT.pack(self.step)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        (step,) = _unpack_exact(cls._FMT, payload)
        return cls(step)


@dataclass(frozen=True)
class Reset(_StepOnly):
    """Zero the recurrent state; the board expects ``step`` in the next INPUT."""

    TYPE: ClassVar[FrameType] = FrameType.RESET
    step: int = 0


@dataclass(frozen=True)
class PredReq(_StepOnly):
    """Send the PRED of ``step`` again (it was lost on the way to the host)."""

    TYPE: ClassVar[FrameType] = FrameType.PRED_REQ


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
class HelloReq(_Empty):
    TYPE: ClassVar[FrameType] = FrameType.HELLO_REQ


@dataclass(frozen=True)
class StatsReq(_Empty):
    TYPE: ClassVar[FrameType] = FrameType.STATS_REQ


Message = (
    Hello
    | Pred
    | Stats
    | Error
    | Ack
    | Nak
    | Input
    | InputS16
    | InputF32
    | SetSource
    | Reset
    | PredReq
    | HelloReq
    | StatsReq
)
MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Pred,
        Stats,
        Error,
        Ack,
        Nak,
        Input,
        InputS16,
        InputF32,
        SetSource,
        Reset,
        PredReq,
        HelloReq,
        StatsReq,
    )
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


def max_wire_size(payload_len: int) -> int:
    """Most bytes a frame with this payload takes on the wire (COBS worst case and the 0x00)."""
    n = HEADER_SIZE + payload_len + CRC_SIZE
    return n + n // 254 + 2
