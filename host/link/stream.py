"""Stream predictions from a board: ``with BoardStream(url, export_dir) as s: for p in s.predictions(): ...``.

Host-fed streams (``predictions(feed=samples)``) go through the feeder (tinylstm.host.link.feed): credit flow
control, every sample answered exactly once and in order, lost frames recovered (``counters.feed``
says how). Streams from the board's own source (replay, sensor) are read as they come.
Nothing is lost silently. Every gap is counted in ``StreamCounters``:
- ``frames_bad``: corrupted frames (CRC, COBS, ...) the decoder rejected, never yielded;
- ``frames_dropped``: sequence numbers missing between accepted frames (lost or corrupted);
- ``steps_missing``: PRED step indices missing within one board session;
- ``board_resets``: a boot HELLO (seq 0) arrived (the board rebooted), each starts a new session; a HELLO
  with another seq answers a HELLO_REQ and changes nothing;
- ``disconnects``: the port went away (unplugged, QEMU killed); the stream reopens the port
  and carries on with the next session. What the board sent after the last frame received
  before a disconnect cannot be known: each session records the last step it delivered.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from tinylstm.codegen.drift_reference import model_window
from tinylstm.codegen.emit_c import verify_emitted
from tinylstm.codegen.store import export_layout, load_int_model
from tinylstm.errors import TinyLSTMError
from tinylstm.host.link.drift import DEFAULT_DRIFT, DriftEvent, DriftMonitor, DriftThresholds, drift_reference
from tinylstm.host.link.feed import Feeder, check_hello, command, wait_hello
from tinylstm.host.link.protocol import (
    Error,
    Frame,
    Hello,
    Mode,
    Pred,
    SetSource,
    Source,
    boot_hello,
    parse_message,
)
from tinylstm.host.link.transport import DEFAULT_BAUD, Link, LinkError, LinkLost
from tinylstm.trainer.outputs import check_output_file

if TYPE_CHECKING:
    from typing_extensions import Self


@dataclass(frozen=True)
class Prediction:
    step: int  # the board's step index (since its boot, RESET or SET_SOURCE)
    raw: tuple[int, ...]  # int16 outputs as sent
    values: tuple[float, ...] | None  # raw * output scale (None without an export)
    label: str | None  # class with the largest output, for classifiers
    session: int  # 0 for the first board boot seen, +1 for every reboot or reconnect
    drift: tuple[str, ...] = ()  # the drift alerts active after this prediction (tinylstm.host.link.drift)
    # False for a bidirectional model's samples before its window's last (the head of zeros: no answer yet;
    # docs/integer-contract.md); such a prediction has no label
    answer: bool = True


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
    feed: dict[str, Any] | None = None  # host-fed streams: the feeder's recovery counters (FeedStats)
    in_flight: int = 0  # host-fed streams: bytes the board has not taken yet

    def summary(self, seconds: float | None = None) -> str:
        """The counters in one line; with the ``seconds`` they took, the prediction rate."""
        rate = f" ({self.predictions / seconds:.1f}/s)" if seconds else ""
        text = (
            f"{self.predictions} predictions{rate}, {self.steps_missing} steps missing, "
            f"{self.frames_dropped} frames dropped, {self.frames_bad} corrupt, {self.board_resets} board "
            "resets, "
            f"{self.disconnects} disconnects, {self.board_errors} board errors"
        )
        if self.feed is not None:
            feed = self.feed
            text += f"; {self.in_flight} B in flight, {feed['retries']} retries, {feed['timeouts']} timeouts"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BoardStream:
    """A reconnecting prediction stream from one board (device path, ``socket://`` or ``loop://``)."""

    def __init__(
        self,
        url: str,
        export_dir: Path | None = None,
        baud: int = DEFAULT_BAUD,
        reconnect_timeout: float = 10.0,
        drift: DriftThresholds | None = DEFAULT_DRIFT,
        on_drift: Callable[[DriftEvent], None] | None = None,
    ) -> None:
        """``drift``: with an export that holds a drift reference, watch the live predictions (and the
        inputs of host-fed streams) with these thresholds (None: no drift alerts); ``on_drift`` is
        called with every alert raised or cleared, which ``self.drift.events`` also collects (refused where it
        would never be called: no export, alerts off, an export without a reference)."""
        self.url, self.baud, self.reconnect_timeout = url, baud, reconnect_timeout
        self.export_dir = export_dir
        self.counters = StreamCounters()
        self._scale: float | None = None
        self._classes: list[str] | None = None
        self._hash: int | None = None
        self._answer_every = 0  # a bidirectional model's window: it answers at each window's last sample
        self.drift: DriftMonitor | None = None
        self._on_drift = on_drift
        if on_drift is not None and (export_dir is None or drift is None):
            why = "the model's export" if export_dir is None else "drift alerts, which are off"
            raise TinyLSTMError(f"on_drift is never called without {why}: give it, or drop on_drift")
        if export_dir is not None:
            m, doc = load_int_model(export_dir)
            # labels and units come from int_model.json: it must be the model the C files hold (an edited
            # class list or output scale keeps the model hash)
            verify_emitted(m, export_dir, str(doc.get("name", "model")), export_layout(export_dir))
            self._scale, self._classes, self._hash = m.output_scale, m.meta.classes or None, m.model_hash
            self._answer_every = m.window
            ref = drift_reference(export_dir) if drift is not None else None  # --no-drift: not even read
            if drift is not None and ref is None and on_drift is not None:
                report = export_dir / "export-report.json"
                why = (
                    "has no drift reference (an export made before drift alerts)"
                    if report.is_file()
                    else "is missing (it holds the drift reference)"
                )
                raise TinyLSTMError(
                    f"{report} {why}: export the model again (tinylstm export), or stream without drift "
                    "alerts (--no-drift)"
                )
            if drift is not None and ref is not None:
                self.drift = DriftMonitor(ref, m.output_scale, drift)
                model = (m.input_size, m.output_size, model_window(m))
                got = (self.drift.inputs, self.drift.outputs, int(ref.get("window") or 0))
                if got != model:
                    raise TinyLSTMError(
                        f"{export_dir}/export-report.json's drift_reference is for another model (inputs, "
                        f"outputs, window {got}; the export's model: {model}): export the model again "
                        "(tinylstm export), or stream without drift alerts (--no-drift)"
                    )
        self._link: Link | None = None
        self._expect_step: int | None = None
        self.hello: Hello | None = None
        self._closed_bad = self._closed_dropped = 0  # decoder counters of links already closed
        self._feeder: Feeder | None = None  # the host-fed run in progress
        self._feed_base = (0, 0, 0)  # disconnects, board resets, board errors when it started

    @property
    def link(self) -> Link:
        if self._link is None:
            raise TinyLSTMError("the stream is not open: use `with BoardStream(...) as s`")
        return self._link

    def open(self) -> None:
        link = Link.open(self.url, self.baud)
        try:
            hello = wait_hello(link)
        except BaseException:  # no HELLO (or interrupted): closed, its counters kept, nothing leaked
            self._retire(link)
            raise
        self._link = link
        try:
            self._on_hello(hello)  # refuses a board that runs another model
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._link is not None:
            self._retire(self._link)
            self._link = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def set_source(self, source: Source) -> None:
        """Switch the board's input source (it restarts its step index at 0)."""
        command(self.link, SetSource(source))
        assert self.hello is not None
        self.hello = dataclasses.replace(self.hello, source=source)
        self._new_session(source.name.lower())

    def predictions(
        self,
        count: int | None = None,
        feed: np.ndarray | Iterable[np.ndarray] | None = None,
        idle_timeout: float | None = None,
        on_status: Callable[[StreamCounters], None] | None = None,
    ) -> Iterator[Prediction]:
        """Yield predictions as they arrive: ``count`` of them, one per ``feed`` sample, or forever.

        ``feed``: the model's quantized samples to send (INPUT frames of int8, INPUT_S16 frames of int16 to
        the board of an int16-h model; the board is switched to the host source);
        the iterator ends once every sample is answered, in order, each exactly once.
        ``idle_timeout``: raise LinkError when no frame arrives for that long (None: wait forever;
        host-fed streams end with FeedError when they stall for 30 s). ``on_status`` is called with
        the live counters about once a second, also while nothing arrives.
        """
        if feed is not None:
            yield from self._fed(feed, count, on_status)
            return
        last_frame = last_status = time.monotonic()
        while count is None or self.counters.predictions < count:
            if on_status is not None and time.monotonic() - last_status >= 1.0:
                last_status = time.monotonic()
                on_status(self.live_counters())
            try:
                frames = self.link.read(0.2)
            except LinkLost:
                self._reconnect()
                continue
            if frames:
                last_frame = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last_frame > idle_timeout:
                raise LinkError(f"no frame from {self.url} for {idle_timeout:g} s; {self.counters.summary()}")
            for frame in frames:
                pred = self._on_frame(frame)
                if pred is not None:
                    yield pred
                    if count is not None and self.counters.predictions >= count:
                        return

    def _fed(
        self,
        feed: np.ndarray | Iterable[np.ndarray],
        count: int | None,
        on_status: Callable[[StreamCounters], None] | None,
    ) -> Iterator[Prediction]:
        assert self.hello is not None

        def reopen() -> Link:
            return Link.open(self.url, self.baud)

        def status(f: Feeder) -> None:
            self._feed_counters(f)
            if on_status is not None:
                on_status(self.live_counters())

        feeder = Feeder(
            self.link,
            self.hello,
            feed,
            reopen=reopen,
            reconnect_timeout=self.reconnect_timeout,
            on_status=status,
        )
        c = self.counters
        self._feed_base = (c.disconnects, c.board_resets, c.board_errors)
        self._feeder = feeder
        self._new_session("host")
        samples = feed if isinstance(feed, np.ndarray) else None
        try:
            for d in feeder.run():
                x = samples[d.step] if samples is not None else None
                yield self._prediction(Pred(d.step, 0, d.outputs), x)
                if count is not None and self.counters.predictions >= count:
                    return
        finally:
            self._feed_counters(feeder)
            self._feeder = None
            for old in feeder.retired:
                self._retire(old)
            self._link = feeder.link  # a reconnect may have replaced it

    def _feed_counters(self, f: Feeder) -> None:
        c = self.counters
        c.feed = f.stats.to_dict()
        c.in_flight = f.in_flight
        disconnects, resets, errors = self._feed_base
        c.disconnects = disconnects + f.stats.reconnects
        c.board_resets = resets + f.stats.board_resets
        c.board_errors = errors + sum(f.stats.board_errors.values())

    # ---- internals -------------------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> Prediction | None:
        try:
            msg = parse_message(frame)
        except ValueError as exc:
            self.counters.board_errors += 1
            self.counters.last_error = f"unreadable frame: {exc}"
            return None
        if isinstance(msg, Hello) and boot_hello(frame):
            self.counters.board_resets += 1
            self._end_session("board reset")
            self._on_hello(msg)
        elif isinstance(msg, Hello):  # a late answer to wait_hello's HELLO_REQ: the same session goes on
            if self._hash is not None:
                check_hello(msg, self._hash, str(self.export_dir))
        elif isinstance(msg, Error):
            self.counters.board_errors += 1
            self.counters.last_error = msg.describe()
        elif isinstance(msg, Pred):
            return self._prediction(msg)
        return None

    def _prediction(self, msg: Pred, inputs: np.ndarray | None = None) -> Prediction:
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
        answer = not self._answer_every or msg.step % self._answer_every == self._answer_every - 1
        if self._scale is not None:
            values = tuple(v * self._scale for v in msg.outputs)
            if answer and self._classes and len(self._classes) == len(msg.outputs):
                label = self._classes[int(np.argmax(msg.outputs))]
        active: tuple[str, ...] = ()
        if self.drift is not None:
            for event in self.drift.update(msg.outputs, inputs):
                if self._on_drift is not None:
                    self._on_drift(event)
            active = tuple(self.drift.active)
        session_index = len(self.counters.sessions) - 1
        return Prediction(msg.step, msg.outputs, values, label, session_index, active, answer)

    def _on_hello(self, hello: Hello) -> None:
        if self._hash is not None:
            check_hello(hello, self._hash, str(self.export_dir))
        self.hello = hello
        if hello.mode == Mode.WINDOW_END:  # without an export the board says it answers once per window
            self._answer_every = hello.window
        self._new_session(hello.source.name.lower())

    def _new_session(self, source: str) -> None:
        if self.counters.sessions and self.counters.sessions[-1].received == 0:
            self.counters.sessions.pop()  # nothing happened in it (e.g. HELLO then SET_SOURCE)
        self.counters.sessions.append(Session(source))
        self._expect_step = None

    def _end_session(self, why: str) -> None:
        if self.counters.sessions:
            self.counters.sessions[-1].ended = why

    def _retire(self, link: Link) -> None:
        self._closed_bad += link.decoder.frames_bad
        self._closed_dropped += link.decoder.frames_dropped
        link.close()

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
                    raise LinkError(
                        f"lost {self.url} and could not reopen it within {self.reconnect_timeout:g} s "
                        f"({exc}); so far: {self.counters.summary()}"
                    ) from None
                time.sleep(0.2)

    def live_counters(self) -> StreamCounters:
        """Counters including the open link's decoder (frames_bad, frames_dropped) right now."""
        bad, dropped = self._closed_bad, self._closed_dropped
        if self._feeder is not None:
            now = self._feeder.link_counters()
            bad, dropped = bad + now["frames_bad"], dropped + now["frames_dropped"]
        elif self._link is not None:
            bad, dropped = bad + self._link.decoder.frames_bad, dropped + self._link.decoder.frames_dropped
        self.counters.frames_bad, self.counters.frames_dropped = bad, dropped
        return self.counters


def check_log_path(path: Path) -> Path:
    """Refuse a prediction log path before the stream opens: a .csv or .jsonl file that can be written."""
    if path.suffix not in (".csv", ".jsonl"):
        raise TinyLSTMError(f"--log {path}: use a .csv or .jsonl file name")
    return check_output_file(path, "--log")  # a directory, a missing or unwritable one (/proc, /sys)


class PredictionLog:
    """Every prediction of a stream, one row (.csv) or one JSON object (.jsonl) each."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("w", newline="")
        self._csv = csv.writer(self._file) if path.suffix == ".csv" else None
        if self._csv:
            self._csv.writerow(["session", "step", "label", "raw", "values", "drift"])

    def write(self, p: Prediction) -> None:
        if self._csv:
            self._csv.writerow(
                [
                    p.session,
                    p.step,
                    p.label or "",
                    " ".join(map(str, p.raw)),
                    " ".join(f"{v:.6g}" for v in p.values or ()),
                    " ".join(p.drift),
                ]
            )
        else:
            self._file.write(
                json.dumps(
                    {
                        "session": p.session,
                        "step": p.step,
                        "label": p.label,
                        "raw": list(p.raw),
                        "values": list(p.values) if p.values else None,
                        "drift": list(p.drift),
                    }
                )
                + "\n"
            )

    def close(self) -> None:
        self._file.close()
