"""Stream predictions from a board: ``with BoardStream(url, export_dir) as s: for p in s.predictions(): ...``.

Nothing is lost silently. Every gap is counted in ``StreamCounters``:
- ``frames_bad``: corrupted frames (CRC, COBS, ...) the decoder rejected, never yielded;
- ``frames_dropped``: sequence numbers missing between accepted frames (lost or corrupted);
- ``steps_missing``: PRED step indices missing within one board session;
- ``board_resets``: a new HELLO arrived (the board rebooted), each starts a new session;
- ``disconnects``: the port went away (unplugged, QEMU killed); the stream reopens the port
  and carries on with the next session. What the board sent after the last frame received
  before a disconnect cannot be known: each session records the last step it delivered.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import serial
from tinylstm.codegen.store import load_int_model
from tinylstm.host.link import DEFAULT_BAUD, Link, LinkError
from tinylstm.host.parity import check_hello, command, in_flight_limit, wait_hello
from tinylstm.host.protocol import (
    Error,
    Frame,
    FrameType,
    Hello,
    Input,
    Pred,
    SetSource,
    Source,
    parse_message,
)
from tinylstm.trainer.errors import TinyLSTMError

if TYPE_CHECKING:
    from typing_extensions import Self


@dataclass(frozen=True)
class Prediction:
    step: int  # the board's step index (since its boot, RESET or SET_SOURCE)
    raw: tuple[int, ...]  # int16 outputs as sent
    values: tuple[float, ...] | None  # raw * output scale (None without an export)
    label: str | None  # class with the largest output, for classifiers
    session: int  # 0 for the first board boot seen, +1 for every reboot or reconnect


@dataclass
class Session:
    source: str
    first_step: int | None = None
    last_step: int | None = None
    received: int = 0
    steps_missing: int = 0
    ended: str = "open"  # "board reset", "disconnect" or "open"


@dataclass
class StreamCounters:
    predictions: int = 0
    steps_missing: int = 0
    frames_bad: int = 0
    frames_dropped: int = 0
    board_resets: int = 0
    disconnects: int = 0
    board_errors: int = 0
    last_error: str = ""
    sessions: list[Session] = field(default_factory=list)

    def summary(self, seconds: float) -> str:
        rate = self.predictions / seconds if seconds > 0 else 0.0
        return (f"{self.predictions} predictions ({rate:.1f}/s), {self.steps_missing} steps missing, "
                f"{self.frames_dropped} frames dropped, {self.frames_bad} corrupt, {self.board_resets} board resets, "
                f"{self.disconnects} disconnects, {self.board_errors} board errors")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BoardStream:
    """A reconnecting prediction stream from one board (device path, ``socket://`` or ``loop://``)."""

    def __init__(self, url: str, export_dir: Path | None = None, baud: int = DEFAULT_BAUD,
                 reconnect_timeout: float = 10.0) -> None:
        self.url, self.baud, self.reconnect_timeout = url, baud, reconnect_timeout
        self.export_dir = export_dir
        self.counters = StreamCounters()
        self._scale: float | None = None
        self._classes: list[str] | None = None
        self._hash: int | None = None
        if export_dir is not None:
            m, _ = load_int_model(export_dir)
            self._scale, self._classes, self._hash = m.output_scale, m.meta.classes or None, m.model_hash
        self._link: Link | None = None
        self._expect_step: int | None = None
        self.hello: Hello | None = None

    @property
    def link(self) -> Link:
        if self._link is None:
            raise TinyLSTMError("the stream is not open: use `with BoardStream(...) as s`")
        return self._link

    def open(self) -> None:
        self._link = Link.open(self.url, self.baud)
        self._on_hello(wait_hello(self._link))

    def close(self) -> None:
        if self._link is not None:
            self._fold_decoder()
            self._link.close()
            self._link = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def set_source(self, source: Source) -> None:
        """Switch the board's input source (it restarts its step index at 0)."""
        command(self.link, SetSource(source))
        self._new_session(source.name.lower())

    def predictions(self, count: int | None = None, feed: Iterator[np.ndarray] | None = None,
                    idle_timeout: float | None = None) -> Iterator[Prediction]:
        """Yield predictions as they arrive: ``count`` of them, all answers to ``feed``, or forever.

        ``feed``: int8 samples to send as INPUT frames, a bounded number in flight; the iterator ends
        once every sample is answered. ``idle_timeout``:
        raise LinkError when no frame arrives for that long (None: wait forever).
        """
        in_flight = 0
        fed_all = False
        limit = in_flight_limit(self.hello.input_size if self.hello else 1)
        last_frame = time.monotonic()
        while count is None or self.counters.predictions < count:
            while feed is not None and in_flight < limit:
                sample = next(feed, None)
                if sample is None:
                    feed, fed_all = None, True
                    break
                self.link.send(Input(tuple(int(v) for v in sample)))
                in_flight += 1
            if fed_all and in_flight == 0:
                return
            try:
                frames = self.link.read(0.2)
            except (serial.SerialException, OSError):
                self._reconnect()
                in_flight = 0
                continue
            if frames:
                last_frame = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last_frame > idle_timeout:
                raise LinkError(f"no frame from {self.url} for {idle_timeout:g} s; {self.counters.summary(0)}")
            for frame in frames:
                if frame.type == FrameType.ERROR:  # the board's answer to an INPUT it could not use
                    in_flight = max(0, in_flight - 1)
                pred = self._on_frame(frame)
                if pred is not None:
                    in_flight = max(0, in_flight - 1)
                    yield pred
                    if count is not None and self.counters.predictions >= count:
                        return

    # ---- internals -------------------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> Prediction | None:
        try:
            msg = parse_message(frame)
        except ValueError as exc:
            self.counters.board_errors += 1
            self.counters.last_error = f"unreadable frame: {exc}"
            return None
        if isinstance(msg, Hello):
            self.counters.board_resets += 1
            self._end_session("board reset")
            self._on_hello(msg)
        elif isinstance(msg, Error):
            self.counters.board_errors += 1
            self.counters.last_error = f"code {msg.code}: {msg.message}"
        elif isinstance(msg, Pred):
            return self._on_pred(msg)
        return None

    def _on_pred(self, msg: Pred) -> Prediction:
        session = self.counters.sessions[-1]
        if self._expect_step is not None and msg.step != self._expect_step:
            missing = (msg.step - self._expect_step) if msg.step > self._expect_step else 0
            session.steps_missing += missing
            self.counters.steps_missing += missing
        self._expect_step = msg.step + 1
        session.first_step = msg.step if session.first_step is None else session.first_step
        session.last_step = msg.step
        session.received += 1
        self.counters.predictions += 1
        values = label = None
        if self._scale is not None:
            values = tuple(v * self._scale for v in msg.outputs)
            if self._classes and len(self._classes) == len(msg.outputs):
                label = self._classes[int(np.argmax(msg.outputs))]
        return Prediction(msg.step, msg.outputs, values, label, len(self.counters.sessions) - 1)

    def _on_hello(self, hello: Hello) -> None:
        if self._hash is not None:
            check_hello(hello, self._hash, str(self.export_dir))
        self.hello = hello
        self._new_session(hello.source.name.lower())

    def _new_session(self, source: str) -> None:
        if self.counters.sessions and self.counters.sessions[-1].received == 0:
            self.counters.sessions.pop()  # nothing happened in it (e.g. HELLO then SET_SOURCE)
        self.counters.sessions.append(Session(source))
        self._expect_step = None

    def _end_session(self, why: str) -> None:
        if self.counters.sessions:
            self.counters.sessions[-1].ended = why

    def _fold_decoder(self) -> None:
        d = self.link.decoder
        self.counters.frames_bad += d.frames_bad
        self.counters.frames_dropped += d.frames_dropped
        d.frames_bad = d.frames_dropped = 0

    def _reconnect(self) -> None:
        self.counters.disconnects += 1
        self._end_session("disconnect")
        self.close()
        deadline = time.monotonic() + self.reconnect_timeout
        while True:
            try:
                self.open()
                return
            except LinkError as exc:
                if time.monotonic() >= deadline:
                    raise LinkError(f"lost {self.url} and could not reopen it within {self.reconnect_timeout:g} s "
                                    f"({exc}); so far: {self.counters.summary(0)}") from None
                time.sleep(0.2)

    def live_counters(self) -> StreamCounters:
        """Counters including the open link's decoder (frames_bad, frames_dropped) right now."""
        if self._link is not None:
            self._fold_decoder()
        return self.counters
