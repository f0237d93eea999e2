"""Board vs host parity: feed real held-out data as INPUT frames, compare every PRED with the cffi kernel.

The host applies the firmware's window rule (tl_app.h): in window mode the state is reset before
every step s (counted from the RESET that starts the run) with s % window == 0.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tinylstm.host.bridge import CModel, load_library
from tinylstm.host.heldout import HeldOut, load_held_out
from tinylstm.host.link import Link, LinkError
from tinylstm.host.protocol import (
    Ack,
    Error,
    FrameType,
    Hello,
    HelloReq,
    Input,
    Pred,
    Reset,
    SetSource,
    Source,
    Stats,
    StatsReq,
    parse_message,
)
from tinylstm.trainer.errors import TinyLSTMError

REPLY_TIMEOUT = 5.0
MAX_IN_FLIGHT = 8
QEMU_IN_FLIGHT = 64


def wait_hello(link: Link, timeout: float = REPLY_TIMEOUT) -> Hello:
    """The board's HELLO: the one it sends at boot, else ask for it (a board that is already running)."""
    try:
        return Hello.unpack(link.expect(FrameType.HELLO, 0.3).payload)
    except LinkError:
        pass  # no boot HELLO (the board was already running): ask for one
    link.send(HelloReq())
    return Hello.unpack(link.expect(FrameType.HELLO, timeout).payload)


def check_hello(hello: Hello, model_hash: int, where: str) -> None:
    if hello.model_hash != model_hash:
        raise TinyLSTMError(
            f"the board runs model 0x{hello.model_hash:08x} but {where} holds model 0x{model_hash:08x}: "
            "refusing to compare different models. Build and flash the firmware of this export "
            f"(`tinylstm build {where}`), or pass the export the board was built from")


def in_flight_limit(input_size: int, rx_buffer: int = 256) -> int:
    """INPUT frames that fit the board's RX ring at once (with half of it spare)."""
    wire = input_size + 2 + 10 + 2  # payload + header/CRC + COBS code + delimiter, < 254 bytes
    return max(1, min(MAX_IN_FLIGHT, (rx_buffer // 2) // wire))


@dataclass
class ParityReport:
    board: str
    model_hash: str
    window: int
    steps: int = 0
    mismatches: int = 0
    first_mismatch: dict[str, Any] | None = None
    board_errors: list[str] = field(default_factory=list)
    frames_bad: int = 0
    frames_dropped: int = 0
    board_stats: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    steps_per_second: float = 0.0
    passed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        verdict = "BIT-EXACT" if self.passed else "FAIL"
        lines = [f"board {self.board}, model {self.model_hash}, window {self.window or 'none (stream)'}",
                 (f"  {self.steps} host-fed steps of held-out data in {self.seconds:.1f} s "
                 f"({self.steps_per_second:.0f} steps/s), {self.mismatches} mismatching PRED frames"),
                 f"  link: {self.frames_bad} bad frames, {self.frames_dropped} dropped; board: {self.board_stats}"]
        if self.first_mismatch:
            lines.append(f"  first mismatch: {self.first_mismatch}")
        lines += [f"  board error: {e}" for e in self.board_errors]
        lines.append(verdict)
        return "\n".join(lines)


def command(link: Link, msg: Reset | SetSource) -> None:
    """Send RESET or SET_SOURCE and wait for the board's ACK of exactly that frame."""
    seq = link.send(msg)
    ack = Ack.unpack(link.expect(FrameType.ACK, REPLY_TIMEOUT).payload)
    if (ack.acked_type, ack.acked_seq) != (msg.TYPE, seq):
        raise LinkError(f"board acknowledged {ack} instead of {msg.TYPE.name} seq {seq}")


def run_parity(link: Link, export_dir: Path, steps: int = 10_000, held: HeldOut | None = None,
               in_flight: int | None = None) -> ParityReport:
    """Feed ``steps`` held-out samples host-fed and compare each PRED bit for bit with the cffi kernel.

    At most ``in_flight`` INPUT frames are unanswered at any time (default: what fits half of the
    board's 256-byte RX ring). QEMU's UART holds bytes back while its data register is full, so
    emulated boards take a deeper pipeline (QEMU_IN_FLIGHT) without loss; STATS.dropped_rx proves it.
    """
    held = held or load_held_out(export_dir)
    hello = wait_hello(link)
    check_hello(hello, held.model.model_hash, str(export_dir))
    cm = CModel(load_library(export_dir, held.name))
    window = hello.window if hello.mode == 0 else 0
    if window != held.window:
        raise TinyLSTMError(f"the board resets every {window} steps, the export every {held.window}: rebuild")
    report = ParityReport(hello.board_name, f"0x{hello.model_hash:08x}", window)
    if hello.source != Source.HOST:
        command(link, SetSource(Source.HOST))
    command(link, Reset())
    xs = held.stream(steps)
    limit = in_flight or in_flight_limit(cm.input_size)
    pending: deque[tuple[int, np.ndarray]] = deque()
    sent = 0
    start = time.monotonic()
    while report.steps < steps:
        while sent < steps and len(pending) < limit:
            if window and sent % window == 0:
                cm.reset()
            pending.append((sent, cm.step(xs[sent])))
            link.send(Input(tuple(int(v) for v in xs[sent])))
            sent += 1
        frames = link.read(REPLY_TIMEOUT)
        if not frames:
            raise LinkError(f"no answer from the board for {REPLY_TIMEOUT:g} s after {report.steps} steps "
                            f"({len(pending)} INPUT frames unanswered)")
        for frame in frames:
            msg = parse_message(frame)
            if isinstance(msg, Error):
                report.board_errors.append(f"code {msg.code}: {msg.message}")
            if not isinstance(msg, Pred) or not pending:
                continue
            step, expect = pending.popleft()
            report.steps += 1
            if msg.step != step or not np.array_equal(np.asarray(msg.outputs, dtype=np.int16), expect):
                report.mismatches += 1
                if report.first_mismatch is None:
                    report.first_mismatch = {"step": step, "board_step": msg.step, "board": list(msg.outputs),
                                             "host": expect.tolist()}
        if report.board_errors:
            break
    report.seconds = time.monotonic() - start
    report.steps_per_second = report.steps / max(report.seconds, 1e-9)
    link.send(StatsReq())
    report.board_stats = asdict(Stats.unpack(link.expect(FrameType.STATS, REPLY_TIMEOUT).payload))
    report.frames_bad, report.frames_dropped = link.decoder.frames_bad, link.decoder.frames_dropped
    report.passed = (report.steps == steps and report.mismatches == 0 and not report.board_errors
                     and report.frames_bad == 0 and report.frames_dropped == 0
                     and report.board_stats["frames_bad"] == 0 and report.board_stats["dropped_rx"] == 0)
    return report
