"""Host-fed input with credit flow control and recovery (docs/serial-protocol.md, sections 6 and 7).

``Feeder(link, hello, samples).run()`` sends quantized samples as INPUT frames (int8), or as INPUT_S16 frames
to a board whose model is int16-h (its input is int16: HELLO.hidden_bits), and yields one ``Delivery`` per
sample, in step order, each holding the outputs the board computed for exactly that sample. What it
guarantees:

- **Credit**: the bytes sent but not yet taken out of the board's receive buffer (every board frame
  reports ``rx_freed``) never exceed the capacity the board announced in HELLO, so the buffer cannot
  overflow whatever the board's speed or the baud rate (the one exception: the timeout probe, below).
- **Accounting**: every INPUT names the step of its first sample and every PRED the step it answers.
  The board refuses an INPUT for any other step than the one it expects (NAK GAP), so a lost INPUT
  never shifts later samples; the host then goes back and sends again from the expected step.
- **Lost answers**: a PRED missing from the in-order sequence is asked for again (PRED_REQ, from the
  board's history); a wait without any answer ends in a probe after the retransmission timeout. The
  probe asks for a step the board has not run, so its answer (NAK NOT_YET) names the probe and the step
  the board expects: it gives back the credit that lost bytes and lost answers held, and it is sent
  whatever the credit says, so no loss can leave the host waiting for credit it cannot get back.
- **Known states**: when the board's state cannot be trusted any more (it rebooted, its history no
  longer holds a needed PRED, its source changed) the feeder restarts it from the last point whose
  state is known: a window start in window mode, a RESET at the first undelivered step in stream
  mode (``Delivery.reset_before`` tells the host to zero its own reference state there too).
- **Bounds**: a run ends with ``FeedError`` when nothing is delivered for ``stall_timeout`` seconds
  or the port stays away for ``reconnect_timeout``; every wait in between is bounded too.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinylstm.errors import TinyLSTMError
from tinylstm.host.link.protocol import (
    INPUT_HEAD,
    MAX_BATCH,
    Ack,
    Error,
    ErrorCode,
    Frame,
    FrameType,
    Hello,
    HelloReq,
    Message,
    Nak,
    NakReason,
    PayloadError,
    Pred,
    PredReq,
    Reset,
    SetSource,
    Source,
    Stats,
    StatsReq,
    boot_hello,
    error_name,
    input_frame,
    input_payload,
    max_wire_size,
    parse_message,
)
from tinylstm.host.link.transport import Link, LinkError, LinkLost

CONTROL_RESERVE = 2 * max_wire_size(4)  # credit kept back for PRED_REQ / RESET frames
# frames older than this many sequence numbers count as sent before the last go-back: seq is a u16, and a
# NAK's frame is compared with the go-back's by their difference modulo 2^16, valid within 2^15
EPOCH_REACH = 0x4000
RTO_INITIAL, RTO_MIN, RTO_MAX = 1.0, 0.3, 4.0  # seconds: retransmission timeout bounds
COMMAND_TRIES = 6
# Board errors after which feeding cannot go on: the board and the host disagree about the model
# or the protocol. FAULT is not among them: the board resets and announces itself with HELLO.
FATAL_ERRORS = (
    ErrorCode.UNKNOWN_TYPE,
    ErrorCode.BAD_PAYLOAD,
    ErrorCode.INPUT_SIZE,
    ErrorCode.UNSUPPORTED,
    ErrorCode.INTERNAL,
)


class FeedError(TinyLSTMError):
    """Feeding stopped: the board stopped answering, vanished for good, or refused the model."""


def check_hello(hello: Hello, model_hash: int, where: str) -> None:
    if hello.model_hash != model_hash:
        raise TinyLSTMError(
            f"the board runs model 0x{hello.model_hash:08x} but {where} holds model 0x{model_hash:08x}: "
            "refusing to compare different models. Build and flash the firmware of this export "
            f"(`tinylstm build {where}`), or pass the export the board was built from"
        )


def wait_hello(link: Link, timeout: float = 5.0) -> Hello:
    """The board's HELLO: the one it sends at boot, else asked for with HELLO_REQ every half second
    (a board that is already running, or a HELLO lost on the way) until ``timeout``. The frames that came
    after it in the same read stay queued for the caller: a replaying board streams its first PREDs right
    behind its boot HELLO, and a late reader gets them in one read."""
    deadline = time.monotonic() + timeout
    ask_at = time.monotonic() + 0.3  # the boot HELLO comes first when the board has just started
    while True:
        frames = link.read(0.05)
        for i, frame in enumerate(frames):
            if frame.type == FrameType.HELLO:
                try:
                    hello = Hello.unpack(frame.payload)
                except PayloadError:
                    continue
                link.requeue(frames[i + 1 :])
                return hello
        now = time.monotonic()
        if now >= deadline:
            raise LinkError(f"no HELLO frame within {timeout:g} s on {link.url} ({link.describe()})")
        if now >= ask_at:
            link.send(HelloReq())
            ask_at = now + 0.5


def command(link: Link, msg: Reset | SetSource, timeout: float = 2.0) -> Ack:
    """Send RESET or SET_SOURCE until the board acknowledges exactly that frame (bounded retries).

    Frames received before the ACK answer what was sent before the command: they are dropped.
    """
    for _ in range(COMMAND_TRIES):
        seq = link.send(msg)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in link.read(min(0.2, max(0.0, deadline - time.monotonic()))):
                if frame.type == FrameType.ERROR:
                    err = Error.unpack(frame.payload)
                    if err.code in FATAL_ERRORS:
                        hint = (
                            ": this firmware embeds no replay data; build it with --source replay or "
                            "--replay-steps N"
                            if isinstance(msg, SetSource)
                            and msg.source == Source.REPLAY
                            and err.code == ErrorCode.UNSUPPORTED
                            else ""
                        )
                        raise LinkError(f"board error {err.describe()} after {msg.TYPE.name}{hint}")
                if frame.type != FrameType.ACK:
                    continue
                ack = Ack.unpack(frame.payload)
                if (ack.acked_type, ack.acked_seq) == (msg.TYPE, seq):
                    return ack
    raise LinkError(
        f"the board did not acknowledge {msg.TYPE.name} after {COMMAND_TRIES} tries ({link.describe()})"
    )


def request_stats(link: Link, timeout: float = 2.0) -> Stats | None:
    """The board's STATS, or None if it does not answer within a few tries."""
    for _ in range(3):
        try:
            link.send(StatsReq())
            return Stats.unpack(link.expect(FrameType.STATS, timeout).payload)
        except (LinkError, PayloadError):
            continue
    return None


def least_rx_bytes(input_size: int, input_bits: int) -> int:
    """The smallest receive buffer the host can feed this model through: one INPUT frame of one sample
    (INPUT_S16 for an int16 input, ``input_bits`` 16) plus the control reserve, so the credit always admits
    a frame."""
    return max_wire_size(INPUT_HEAD + input_frame(input_bits).sample_bytes(input_size)) + CONTROL_RESERVE


def required_rx_capacity(input_size: int, input_bits: int) -> int:
    """Receive buffer (a power of two, at least 256 B) a board needs for this model: ``least_rx_bytes``
    rounded up."""
    need = least_rx_bytes(input_size, input_bits)
    size = 256
    while size < need:
        size *= 2
    return size


def batch_size(sample_bytes: int, credit: int, history: int) -> int:
    """Samples of ``sample_bytes`` each per INPUT frame: a few frames fit the credit at once, and they fit
    the PRED history."""
    n = 1
    limit = min(MAX_BATCH, max(1, history // 2))
    while n < limit and max_wire_size(INPUT_HEAD + (n + 1) * sample_bytes) <= credit // 3:
        n += 1
    return n


@dataclass
class Delivery:
    step: int
    outputs: tuple[int, ...]  # the board's raw int16 outputs for the sample of this step
    reset_before: bool  # the board's state was zero before this step (window start or RESET point)


@dataclass
class FeedStats:
    """What happened on the way; ``retries`` sums every kind of second attempt."""

    frames_sent: int = 0  # INPUT frames, resends included
    resends: int = 0  # INPUT frames sent again from the board's expected step after a gap
    pred_requests: int = 0  # PRED_REQ frames for PRED frames lost on the way back
    timeouts: int = 0  # waits without any answer that ended in a probe
    probes_answered: int = 0  # probes the board answered (NAK NOT_YET: not a loss, not in ``naks``)
    rewinds: int = 0  # restarts from a known state (RESET)
    duplicates: int = 0  # PRED frames for steps already delivered (after a rewind or a late answer)
    conflicts: int = 0  # duplicates whose outputs differed from the first delivery
    reconnects: int = 0
    board_resets: int = 0  # HELLO frames announcing a reboot mid-run
    unreadable: int = 0  # CRC-valid board frames whose payload did not parse
    naks: Counter[str] = field(default_factory=Counter)  # by NakReason name
    board_errors: Counter[str] = field(default_factory=Counter)  # ERROR frames by code name
    in_flight_peak: int = 0  # most unconfirmed bytes at once (never above the credit; probes aside)
    events: list[str] = field(default_factory=list)  # rewinds and reconnects, with their reasons

    @property
    def retries(self) -> int:
        return self.resends + self.pred_requests + self.rewinds

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames_sent": self.frames_sent,
            "resends": self.resends,
            "pred_requests": self.pred_requests,
            "timeouts": self.timeouts,
            "probes_answered": self.probes_answered,
            "rewinds": self.rewinds,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "reconnects": self.reconnects,
            "board_resets": self.board_resets,
            "unreadable": self.unreadable,
            "naks": dict(self.naks),
            "board_errors": dict(self.board_errors),
            "in_flight_peak": self.in_flight_peak,
            "retries": self.retries,
            "events": self.events[-20:],
        }


@dataclass
class _Sent:
    end: int  # link.tx_bytes after the frame: the host byte position the board frees with it
    first: int
    count: int
    when: float
    resend: bool


class _Samples:
    """Random access to the samples from the oldest one that may still be sent again."""

    def __init__(self, source: np.ndarray | Iterable[np.ndarray], width: int) -> None:
        self.width = width  # values per sample: the board's input_size
        if isinstance(source, np.ndarray) and (source.ndim != 2 or source.shape[1] != width):
            raise self._misshapen("the samples are", source.shape)
        if isinstance(source, list | tuple):  # known before anything is sent; an iterator's as it is read
            for k, sample in enumerate(source):
                self._check(k, sample)
        self._array = source if isinstance(source, np.ndarray) else None
        self._iter = None if isinstance(source, np.ndarray) else iter(source)
        self._kept: dict[int, np.ndarray] = {}
        self._pulled = 0
        self.total: int | None = len(source) if isinstance(source, np.ndarray) else None

    def _misshapen(self, what: str, shape: tuple[int, ...]) -> FeedError:
        return FeedError(
            f"{what} shaped {list(shape)}, but the board's model takes {self.width} values per sample: "
            f"feed an array [steps, {self.width}] (the export's quantized samples)"
        )

    def _check(self, k: int, sample: object) -> np.ndarray:
        try:
            row = np.asarray(sample)
        except ValueError as exc:  # a ragged sample
            raise FeedError(f"sample {k} is not an array of numbers ({exc})") from None
        if row.shape != (self.width,):
            raise self._misshapen(f"sample {k} is", row.shape)
        return row

    def get(self, step: int, count: int) -> np.ndarray:
        """Up to ``count`` consecutive samples from ``step`` (fewer at the end), [n, input_size] as given."""
        if self._array is not None:
            return np.asarray(self._array[step : step + count])
        assert self._iter is not None
        while self.total is None and self._pulled < step + count:
            sample = next(self._iter, None)
            if sample is None:
                self.total = self._pulled
                break
            self._kept[self._pulled] = self._check(self._pulled, sample)
            self._pulled += 1
        rows = [self._kept[k] for k in range(step, min(step + count, self._pulled)) if k in self._kept]
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.int8)

    def release(self, below: int) -> None:
        for k in [k for k in self._kept if k < below]:
            del self._kept[k]

    def exhausted(self, step: int) -> bool:
        """True once ``step`` is past the last sample."""
        return self.total is not None and step >= self.total


class Feeder:
    """Feed ``samples`` to the board behind ``link`` and deliver every answer once, in order."""

    def __init__(
        self,
        link: Link,
        hello: Hello,
        samples: np.ndarray | Iterable[np.ndarray],
        *,
        reopen: Callable[[], Link] | None = None,
        reconnect_timeout: float = 10.0,
        stall_timeout: float = 30.0,
        on_status: Callable[[Feeder], None] | None = None,
    ) -> None:
        self.link = link
        self.hello = hello
        self.model_hash = hello.model_hash
        self.samples = _Samples(samples, hello.input_size)
        self.reopen = reopen
        self.reconnect_timeout, self.stall_timeout = reconnect_timeout, stall_timeout
        self.on_status = on_status
        self.window = hello.window if hello.mode.windowed else 0
        self.stats = FeedStats()
        self.base = 0  # lowest step not delivered yet
        self.next_send = 0  # next step to send
        self.started = time.monotonic()
        self._configure(hello)
        self._results: dict[int, tuple[int, ...]] = {}
        self._delivered: dict[int, tuple[int, ...]] = {}  # recent deliveries, to check duplicates
        self._ready: deque[Delivery] = deque()
        self._reset_points: set[int] = set()
        self._frames: dict[int, _Sent] = {}  # by seq: INPUT and PRED_REQ frames still of interest
        self._frame_of: dict[int, int] = {}  # step -> seq of the INPUT frame that last carried it
        self._requested: dict[int, tuple[float, int]] = {}  # step -> (when, seq) of its last PRED_REQ
        self._to_request: set[int] = set()
        self._probe_due = False  # a retransmission timeout passed without any answer
        self._probes: dict[int, int] = {}  # seq of each unanswered probe -> next_send when it was sent
        self._epoch_seq = 0  # NAKs of frames sent before this seq are stale (a go-back happened since)
        self._high_water = 0  # one past the highest step ever sent: frames below it are resends
        self._generation = 0  # bumped by every restart: frames read before it are stale
        self._acked = 0  # host byte position the board has freed
        self._last_freed: int | None = None
        self._srtt: float | None = None
        self._rttvar = 0.0
        self.rto = RTO_INITIAL
        self._last_answer = self._last_advance = time.monotonic()
        self._last_status = time.monotonic()
        self.retired: list[Link] = []  # links replaced by reconnects (closed), for link_counters()

    # ---- public ---------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Bytes sent that the board has not taken out of its receive buffer yet (as far as known)."""
        return max(0, self.link.tx_bytes - self._acked)

    def link_counters(self) -> dict[str, Any]:
        """Bytes both ways and the host decoder's counters, over every link this feeder used."""
        links = [*self.retired, self.link]
        errors: Counter[str] = Counter()
        for lk in links:
            errors.update({e.name: n for e, n in lk.decoder.errors.items()})
        return {
            "bytes_to_board": sum(lk.tx_bytes for lk in links),
            "bytes_from_board": sum(lk.rx_bytes for lk in links),
            "frames_bad": sum(lk.decoder.frames_bad for lk in links),
            "frames_dropped": sum(lk.decoder.frames_dropped for lk in links),
            "errors": dict(errors),
        }

    def run(self) -> Iterator[Delivery]:
        """Deliveries in step order until the samples run out; raises FeedError if feeding stops."""
        self._restart(0, "start")
        while True:
            while self._ready:
                yield self._ready.popleft()
            if self.samples.exhausted(self.base):
                return
            try:  # the port can go away on a write as well as on a read (QEMU killed, cable pulled)
                self._fill()
                frames = self.link.read(self._wait())
                generation = self._generation
                for frame in frames:
                    self._on_frame(frame)
                    if self._generation != generation:
                        break  # the rest answers what was sent before the restart
                self._check_timeouts()
            except LinkLost as exc:
                self._reconnect(exc)
                continue
            if self.on_status is not None and time.monotonic() - self._last_status >= 1.0:
                self._last_status = time.monotonic()
                self.on_status(self)

    # ---- sending --------------------------------------------------------------------------

    def _configure(self, hello: Hello) -> None:
        self.capacity = hello.rx_capacity
        self.history = max(1, hello.history)
        self.credit = self.capacity - CONTROL_RESERVE
        self.frame = input_frame(hello.input_bits)  # INPUT, or INPUT_S16 for a model's int16 input
        self.word = np.dtype("<" + self.frame.ITEM)
        sample = self.frame.sample_bytes(hello.input_size)
        one = max_wire_size(INPUT_HEAD + sample)
        if self.credit < one:
            raise FeedError(
                f"the board's receive buffer ({self.capacity} B) cannot hold one {self.frame.TYPE.name} "
                f"frame of {one} B plus {CONTROL_RESERVE} B for control frames: rebuild the firmware with a "
                "larger one (`tinylstm build` sizes it for the model; the bare-metal ports' TL_UART_RX_BUF, "
                "STM32duino's SERIAL_RX_BUFFER_SIZE)"
            )
        self.batch = batch_size(sample, self.credit, self.history)

    def _send(self, msg: Message) -> int:
        seq = self.link.send(msg)
        self.stats.in_flight_peak = max(self.stats.in_flight_peak, self.in_flight)
        return seq

    def _fill(self) -> None:
        """Send what the credit and the history allow: a due probe, PRED_REQs, then INPUT frames."""
        if self._probe_due:
            self._probe()
        for step in sorted(self._to_request):
            if self.in_flight + max_wire_size(4) > self.capacity:
                return
            self._to_request.discard(step)
            if step in self._results or step < self.base:
                continue
            seq = self._send(PredReq(step))
            self._frames[seq] = _Sent(self.link.tx_bytes, step, 0, time.monotonic(), True)
            self._requested[step] = (time.monotonic(), seq)
            self.stats.pred_requests += 1
        while True:
            room = self.history - (self.next_send - self.base)
            if room <= 0:
                return
            xs = self.samples.get(self.next_send, min(self.batch, room))
            if not len(xs):
                return
            payload = input_payload(self.next_send, len(xs), self._words(xs).tobytes())
            if self.in_flight + max_wire_size(len(payload)) > self.credit:
                return
            resend = self.next_send < self._high_water
            seq, _ = self.link.write_frame(self.frame.TYPE, payload)
            self.stats.frames_sent += 1
            self.stats.resends += resend
            self.stats.in_flight_peak = max(self.stats.in_flight_peak, self.in_flight)
            self._frames[seq] = _Sent(self.link.tx_bytes, self.next_send, len(xs), time.monotonic(), resend)
            for k in range(self.next_send, self.next_send + len(xs)):
                self._frame_of[k] = seq
            self.next_send += len(xs)
            self._high_water = max(self._high_water, self.next_send)
            if ((self.link.tx_seq - self._epoch_seq) & 0xFFFF) > EPOCH_REACH:  # keep the u16 comparison valid
                self._epoch_seq = (self.link.tx_seq - EPOCH_REACH) & 0xFFFF

    def _words(self, xs: np.ndarray) -> np.ndarray:
        """The samples as the board's input words (``self.word``: int8, or int16 for an int16-h model),
        refused unless they are integers in its range: the model's quantized input (golden.quantize_input)."""
        info = np.iinfo(self.word)
        if xs.dtype.kind not in "iu" or xs.min() < info.min or xs.max() > info.max:
            raise FeedError(
                f"samples {self.next_send}..{self.next_send + len(xs) - 1} are {xs.dtype} from {xs.min()} to "
                f"{xs.max()}, but the board's model takes {self.word.name} input ({self.frame.TYPE.name} "
                "frames): feed the export's quantized samples (golden.quantize_input)"
            )
        return xs.astype(self.word)

    def _probe(self) -> None:
        """PRED_REQ for the step after the highest one ever sent, which the board cannot have run: it answers
        NAK NOT_YET naming this frame (the credit comes back to the frame's end: the board has taken every
        byte before it) and the step it expects (the host goes back to it if that is before the step that was
        next when the probe left, and asks again for the answers lost before). Its answer is not a loss
        (``probes_answered``, not ``naks``).

        Sent whatever the credit says: a probe is due only after a retransmission timeout without any
        answer, by when a live board has emptied its buffer and the bytes the host still counts in flight
        were lost on the way (or their answers were). A board stalled with a full buffer for that long drops
        the probe and says so (ERROR OVERRUN, ``dropped_rx``): the one case where the host sends beyond the
        credit, at most one probe per timeout (doubling to 4 s). Not counted in ``in_flight_peak``."""
        self._probe_due = False
        step = max(self._high_water, self.next_send)
        seq = self.link.send(PredReq(step))
        self._frames[seq] = _Sent(self.link.tx_bytes, step, 0, time.monotonic(), True)
        self._probes[seq] = self.next_send

    def _wait(self) -> float:
        """How long the next read may block: until an answer is due, at most 0.2 s (status updates)."""
        if self.base >= self.next_send and not self._requested and not self._to_request:
            return 0.2 if self.samples.exhausted(self.next_send) else 0.0
        return max(0.0, min(0.2, self._last_answer + self.rto - time.monotonic()))

    # ---- receiving ------------------------------------------------------------------------

    def _credit(self, freed: int, pin: int | None = None) -> None:
        """Move the freed position: to ``pin`` (the end of the host frame this answer names), else by
        the growth of the board's rx_freed since the last report."""
        if pin is not None:
            self._acked = min(pin, self.link.tx_bytes)
        elif self._last_freed is not None:
            delta = (freed - self._last_freed) & 0xFFFFFFFF
            if delta < 0x80000000:
                self._acked = min(self._acked + delta, self.link.tx_bytes)
        self._last_freed = freed

    def _on_frame(self, frame: Frame) -> None:
        try:
            msg = parse_message(frame)
        except PayloadError:
            self.stats.unreadable += 1
            return
        self._last_answer = time.monotonic()
        self.rto = self._rto_estimate()  # an answer ends the backoff
        if isinstance(msg, Pred):
            self._on_pred(msg)
        elif isinstance(msg, Nak):
            self._on_nak(msg)
        elif isinstance(msg, Error):
            self._on_error(msg)
        elif isinstance(msg, Hello) and boot_hello(frame):
            self._on_hello(msg)
        elif isinstance(msg, Hello):  # a late answer to wait_hello's HELLO_REQ: the board did not restart
            self._check_model(msg)
            self._credit(msg.rx_freed)
        elif isinstance(msg, Ack | Stats):
            self._credit(msg.rx_freed)

    def _on_pred(self, msg: Pred) -> None:
        step, now = msg.step, time.monotonic()
        request = self._requested.pop(step, None)
        requested = request is not None
        sent = self._frames.get(self._frame_of.get(step, -1))
        pin = sent.end if sent is not None and not requested else None
        self._credit(msg.rx_freed, pin)
        if sent is not None and not requested and not sent.resend and step == sent.first:
            self._rtt_sample(now - sent.when)
        if step < self.base or step in self._results:
            self._duplicate(step, msg.outputs)
            return
        if step >= self.next_send:
            self._restart(self.base, f"the board answered step {step}, which was not sent")
            return
        self._results[step] = msg.outputs
        self._answered_after(request[1] if request is not None else self._frame_of.get(step))
        self._advance()

    def _answered_after(self, seq: int | None) -> None:
        """The board answered host frame ``seq``. It handles frames in order and answers each, so every
        answer to a frame sent before ``seq`` has been sent already: a PRED still missing for such a frame
        (an INPUT or a PRED_REQ) was lost, on the way out or back. Ask for it: the board sends the PRED
        again, or says NOT_YET (the INPUT never arrived) and the host goes back to it."""
        if seq is None:
            return

        def before(s: int | None) -> bool:
            return s is not None and s != seq and ((seq - s) & 0xFFFF) < 0x8000

        for k, (_, req_seq) in list(self._requested.items()):
            if before(req_seq):
                del self._requested[k]
                self._to_request.add(k)
        for k in range(self.base, self.next_send):
            if k not in self._results and k not in self._requested and before(self._frame_of.get(k)):
                self._to_request.add(k)

    def _on_nak(self, msg: Nak) -> None:
        # the answer to a probe: INPUT frames sent after it may be on their way, so the go-back below only
        # reaches back from the step that was next when the probe left
        sent_next = self._probes.pop(msg.seq, None) if msg.reason == NakReason.NOT_YET else None
        if sent_next is None:
            self.stats.naks[msg.reason.name] += 1
        else:
            self.stats.probes_answered += 1
        self._answered_after(msg.seq)
        sent = self._frames.get(msg.seq)
        self._credit(msg.rx_freed, sent.end if sent is not None else None)
        stale = ((msg.seq - self._epoch_seq) & 0xFFFF) >= 0x8000
        expected = msg.next_step
        if msg.reason == NakReason.SOURCE:
            self._restart(self.base, "the board's input source is not the host", set_source=True)
            return
        if msg.reason == NakReason.EXPIRED:
            self._requested.pop(msg.step, None)
            if msg.step >= self.base and msg.step not in self._results:
                self._restart(self.base, f"the board no longer holds the PRED of step {msg.step}")
            return
        if msg.reason == NakReason.NOT_YET:
            self._requested.pop(msg.step, None)
        if stale:
            return
        if expected < self.base or expected > self.next_send:
            self._restart(self.base, f"the board expects step {expected}, the host is at {self.base}")
            return
        if msg.reason == NakReason.GAP and msg.step < expected:
            return  # a second copy of a frame the board had already applied
        for k in range(self.base, expected):  # run on the board; their PRED frames are lost
            if k not in self._results and k not in self._requested:
                self._to_request.add(k)
        if expected < (self.next_send if sent_next is None else min(self.next_send, sent_next)):
            # go back: everything from the expected step again
            for k in range(expected, self.next_send):
                self._frame_of.pop(k, None)
                self._to_request.discard(k)
                self._requested.pop(k, None)
            self.next_send = expected
            self._epoch_seq = self.link.tx_seq

    def _on_error(self, msg: Error) -> None:
        self._credit(msg.rx_freed)
        self.stats.board_errors[error_name(msg.code)] += 1
        if msg.code in FATAL_ERRORS:
            raise FeedError(
                f"board error {msg.describe()} at step {self.base}: the board and this export do not "
                "agree (rebuild and flash the firmware of this export)"
            )

    def _on_hello(self, hello: Hello) -> None:
        self.stats.board_resets += 1
        self._adopt(hello)
        self._restart(self.base, f"the board restarted (HELLO, source {hello.source.name.lower()})")

    def _check_model(self, hello: Hello) -> None:
        if hello.model_hash != self.model_hash:
            raise FeedError(
                f"the board now runs model 0x{hello.model_hash:08x}, not 0x{self.model_hash:08x}: "
                "it was reflashed mid-run"
            )

    def _adopt(self, hello: Hello) -> None:
        self._check_model(hello)
        self.hello = hello
        self._configure(hello)
        self._acked, self._last_freed = self.link.tx_bytes, hello.rx_freed

    def _duplicate(self, step: int, outputs: tuple[int, ...]) -> None:
        self.stats.duplicates += 1
        first = self._delivered.get(step, self._results.get(step))
        if first is not None and first != outputs:
            self.stats.conflicts += 1

    def _advance(self) -> None:
        moved = False
        while self.base in self._results:
            outputs = self._results.pop(self.base)
            reset = bool(self.window and self.base % self.window == 0) or self.base in self._reset_points
            self._ready.append(Delivery(self.base, outputs, reset))
            self._delivered[self.base] = outputs
            self._frame_of.pop(self.base, None)
            self.base += 1
            moved = True
        if moved:
            self._last_advance = time.monotonic()
            keep = max(2 * self.history, self.window)
            for k in [k for k in self._delivered if k < self.base - keep]:
                del self._delivered[k]
            self.samples.release(self._known_point(self.base))
            for seq in [s for s, f in self._frames.items() if f.first + max(f.count, 1) <= self.base - keep]:
                del self._frames[seq]

    # ---- recovery -------------------------------------------------------------------------

    def _known_point(self, step: int) -> int:
        return step - step % self.window if self.window else step

    def _restart(self, step: int, why: str, set_source: bool = False) -> None:
        """Zero the board's state at the last known point at or before ``step`` and feed again from there."""
        point = self._known_point(step)
        if why != "start":
            self.stats.rewinds += 1
            self.stats.events.append(f"step {step}: {why}; restarting at step {point}")
        deadline = time.monotonic() + self.stall_timeout
        while True:
            try:
                if set_source or self.hello.source != Source.HOST:
                    command(self.link, SetSource(Source.HOST), max(self.rto * 2, 1.0))
                    self.hello = dataclasses.replace(self.hello, source=Source.HOST)
                    set_source = False
                ack = command(self.link, Reset(point), max(self.rto * 2, 1.0))
                break
            except LinkLost as exc:
                self._reconnect(exc)
            except LinkError as exc:
                if time.monotonic() > deadline:
                    raise FeedError(f"could not restart the board at step {point}: {exc}") from None
        self._acked, self._last_freed = self.link.tx_bytes, ack.rx_freed
        self._results = {k: v for k, v in self._results.items() if k < point}
        self._requested.clear()
        self._to_request.clear()
        self._probe_due = False
        self._probes.clear()
        self._frames.clear()
        self._frame_of.clear()
        if not self.window:
            self._reset_points.add(point)
        self.next_send = point
        self._epoch_seq = self.link.tx_seq
        self._generation += 1
        self._last_answer = self._last_advance = time.monotonic()

    def _reconnect(self, lost: LinkLost) -> None:
        if self.reopen is None:
            raise FeedError(str(lost)) from None
        self.stats.reconnects += 1
        self.stats.events.append(f"step {self.base}: {lost}")
        self.link.close()
        deadline = time.monotonic() + self.reconnect_timeout
        while True:
            link: Link | None = None
            try:
                link = self.reopen()
                hello = wait_hello(link)
                break
            except LinkError as exc:
                if link is not None:  # opened, but no HELLO: closed, its bytes still counted
                    link.close()
                    self.retired.append(link)
                if time.monotonic() >= deadline:  # self.link stays the lost one, counted once
                    raise FeedError(
                        f"{lost}; could not reopen it within {self.reconnect_timeout:g} s ({exc})"
                    ) from None
                time.sleep(0.2)
        self.retired.append(self.link)
        self.link = link
        self._adopt(hello)
        self._restart(self.base, "reconnected")

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        waiting = self.base < self.next_send or self._requested or self._to_request
        if not waiting:
            self._last_advance = now
            return
        if now - self._last_advance > self.stall_timeout:
            raise FeedError(
                f"no progress for {self.stall_timeout:g} s at step {self.base} "
                f"({self.stats.timeouts} timeouts, {self.stats.retries} retries; {self.link.describe()})"
            )
        for step, (when, _) in list(self._requested.items()):  # a PRED_REQ or its answer was lost
            if now - when >= self.rto:
                del self._requested[step]
                self._to_request.add(step)
        if now - self._last_answer >= self.rto:
            self.stats.timeouts += 1
            self._probe_due = True
            self._last_answer = now
            self.rto = min(self.rto * 2, RTO_MAX)

    def _rtt_sample(self, rtt: float) -> None:
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt

    def _rto_estimate(self) -> float:
        if self._srtt is None:
            return RTO_INITIAL
        return min(RTO_MAX, max(RTO_MIN, self._srtt + 4 * self._rttvar))
