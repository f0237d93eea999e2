"""Board vs host parity: feed real held-out data as INPUT frames, compare every PRED with the cffi kernel.

The feeder (tinylstm.host.link.feed) delivers every step's board outputs exactly once and in order, through
any loss on the link. The host's reference is the same C code, run over the same samples with the
same resets: the window rule (reset before every step s with s % window == 0) and, in stream mode,
any RESET point the feeder had to restart the board at.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinylstm.codegen.emit_c import verify_emitted
from tinylstm.codegen.heldout import HeldOut, load_held_out
from tinylstm.codegen.store import export_layout
from tinylstm.errors import TinyLSTMError
from tinylstm.host.link.feed import Feeder, FeedError, FeedStats, check_hello, request_stats, wait_hello
from tinylstm.host.link.protocol import Stats
from tinylstm.host.link.transport import Link, LinkError
from tinylstm.host.targets.bridge import CModel

# steps per parity run: the held-out samples are laid out for the whole run first (10M: 60 MB of int8 samples
# for six channels, hours of a board at 115200 baud)
MAX_PARITY_STEPS = 10_000_000


@dataclass
class ParityReport:
    board: str
    model_hash: str
    window: int
    steps_requested: int
    rx_capacity: int  # the board's receive capacity (the credit), bytes
    history: int  # PRED frames the board can send again
    batch: int  # samples per INPUT frame
    data: str = "held-out"  # the samples fed: "held-out", or "training" for a model that has none held out
    steps: int = 0  # steps whose board outputs were compared
    mismatches: int = 0
    first_mismatch: dict[str, Any] | None = None
    failure: str | None = None  # why the run ended before every step was compared
    seconds: float = 0.0
    steps_per_second: float = 0.0
    bytes_to_board: int = 0
    bytes_from_board: int = 0
    link: dict[str, Any] = field(default_factory=dict)  # host decoder: bad frames by error, dropped
    recovery: dict[str, Any] = field(default_factory=dict)  # FeedStats: retries, NAKs, board errors, ...
    # the board's STATS counters over this run (its final STATS less those before the run; "since_boot": the
    # final ones as the board counts them); None: it did not answer
    board_stats: dict[str, Any] | None = None
    passed: bool = False  # every requested step compared, none mismatching
    clean: bool = False  # ... and nothing was damaged, lost, refused or resent on the way
    interrupted: bool = False  # Ctrl-C or SIGTERM ended the run: a partial report
    # the interrupt itself, re-raised by the caller once the partial report is written (not in the JSON)
    interrupt: BaseException | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(dataclasses.replace(self, interrupt=None))
        out.pop("interrupt")
        out["verdict"] = self.verdict()
        return out

    @property
    def bytes_per_step(self) -> tuple[float, float]:
        n = max(self.steps, 1)
        return self.bytes_to_board / n, self.bytes_from_board / n

    def render(self) -> str:
        r = self.recovery
        to_board, from_board = self.bytes_per_step
        naks = ", ".join(f"{k} {v}" for k, v in r.get("naks", {}).items()) or "none"
        errors = ", ".join(f"{k} {v}" for k, v in r.get("board_errors", {}).items()) or "none"
        bad = ", ".join(f"{k} {v}" for k, v in self.link.get("errors", {}).items())
        lines = [
            (
                f"board {self.board}, model {self.model_hash}, window {self.window or 'none (stream)'}; "
                "credit "
                f"{self.rx_capacity} B, {self.batch} samples per INPUT frame, PRED history {self.history}"
            ),
            (
                f"  {self.steps} of {self.steps_requested} host-fed steps of {self.data} data compared in "
                f"{self.seconds:.1f} s "
                f"({self.steps_per_second:.0f} steps/s): {self.mismatches} mismatching"
            ),
            (
                f"  wire: {to_board:.1f} B/step to the board, {from_board:.1f} B/step back; most in flight "
                f"{r.get('in_flight_peak', 0)} B"
            ),
            (
                f"  link: {self.link.get('frames_bad', 0)} bad frames{f' ({bad})' if bad else ''}, "
                f"{self.link.get('frames_dropped', 0)} missing by sequence number"
            ),
            (
                f"  recovery: {r.get('resends', 0)} INPUT frames resent, {r.get('pred_requests', 0)} PRED "
                "requests, "
                f"{r.get('timeouts', 0)} timeouts ({r.get('probes_answered', 0)} probes answered), "
                f"{r.get('rewinds', 0)} restarts from a known state, "
                f"{r.get('reconnects', 0)} reconnects, {r.get('board_resets', 0)} board resets; NAK: {naks}"
            ),
            f"  board errors: {errors}",
        ]
        if self.board_stats is not None:
            b = self.board_stats
            lines.append(
                f"  board STATS (this run): {b['steps']} steps, {b['dropped_rx']} received bytes lost, "
                f"{b['frames_bad']} bad frames, {b['inputs_refused']} inputs refused, "
                f"{b['tx_timeouts']} TX timeouts"
            )
        else:
            lines.append("  board STATS: no answer")
        lines += [f"  {e}" for e in r.get("events", [])[-5:]]
        if self.first_mismatch:
            lines.append(f"  first mismatch: {self.first_mismatch}")
        if r.get("conflicts"):
            lines.append(f"  {r['conflicts']} steps answered twice with different outputs")
        if self.failure:
            lines.append(f"  stopped: {self.failure}")
        lines.append(self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        """BIT-EXACT or FAIL, with the rule that decided it: every requested step compared, none differing
        from the host kernel, none answered twice with different outputs."""
        conflicts = int(self.recovery.get("conflicts", 0))
        broken = [
            f"{self.steps} of {self.steps_requested} steps compared"
            if self.steps < self.steps_requested
            else "",
            f"{self.mismatches} differing from the host kernel" if self.mismatches else "",
            f"{conflicts} answered twice with different outputs" if conflicts else "",
            f"stopped: {self.failure}" if self.failure and self.steps == self.steps_requested else "",
        ]
        if not self.passed:
            return "FAIL: " + "; ".join(b for b in broken if b)
        exact = f"BIT-EXACT: all {self.steps} steps equal the host kernel's outputs"
        return exact if self.clean else f"{exact} (recovered: {self.recovery.get('retries', 0)} retries)"


def run_parity(
    link: Link,
    export_dir: Path,
    steps: int = 10_000,
    held: HeldOut | None = None,
    *,
    reopen: Callable[[], Link] | None = None,
    stall_timeout: float = 30.0,
    reconnect_timeout: float = 10.0,
    on_status: Callable[[Feeder], None] | None = None,
) -> ParityReport:
    """Feed ``steps`` held-out samples host-fed and compare each PRED bit for bit with the cffi kernel.

    Raises TinyLSTMError before the run (no HELLO, another model, another window). Everything that goes
    wrong once the run has started ends up in the report (``failure``), which is always returned.
    ``reopen`` reconnects after the port vanished (a board reset, QEMU restarted).
    """
    held = held or load_held_out(export_dir)
    verify_emitted(held.model, export_dir, held.name, export_layout(export_dir))
    hello = wait_hello(link)
    check_hello(hello, held.model.model_hash, str(export_dir))
    cm = CModel.from_generated(export_dir, held.name)
    window = hello.window if hello.mode.windowed else 0
    if window != held.window:
        raise TinyLSTMError(f"the board resets every {window} steps, the export every {held.window}: rebuild")
    xs = held.stream(steps)
    baseline = request_stats(link)  # the board counts since boot: the report counts this session
    feeder = Feeder(
        link,
        hello,
        xs,
        reopen=reopen,
        stall_timeout=stall_timeout,
        reconnect_timeout=reconnect_timeout,
        on_status=on_status,
    )
    report = ParityReport(
        hello.board_name,
        f"0x{hello.model_hash:08x}",
        window,
        steps,
        feeder.capacity,
        feeder.history,
        feeder.batch,
        held.split,
    )
    tx0, rx0 = link.tx_bytes, link.rx_bytes
    start = time.monotonic()
    try:
        for d in feeder.run():
            if d.reset_before:
                cm.reset()
            expect = cm.step(xs[d.step])
            report.steps += 1
            if not np.array_equal(np.asarray(d.outputs, dtype=np.int16), expect):
                report.mismatches += 1
                if report.first_mismatch is None:
                    report.first_mismatch = {
                        "step": d.step,
                        "board": list(d.outputs),
                        "host": expect.tolist(),
                    }
    except (FeedError, LinkError) as exc:
        report.failure = str(exc)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM through the CLI: report what was compared
        report.failure = f"interrupted ({'SIGTERM' if type(exc) is not KeyboardInterrupt else 'Ctrl-C'})"
        report.interrupted, report.interrupt = True, exc
    report.seconds = time.monotonic() - start
    report.steps_per_second = report.steps / max(report.seconds, 1e-9)
    _finish(report, feeder, tx0, rx0, None if report.interrupted else baseline, ask=not report.interrupted)
    if feeder.link is not link:  # opened by a reconnect: ours to close
        feeder.link.close()
    return report


def session_stats(stats: Stats, baseline: Stats | None) -> dict[str, int]:
    """The board's loss counters over this session: the final STATS less the ones before it started (all of
    the final ones when there was no baseline, or the board restarted and its counters went back)."""
    keys = ("steps", "cycles", "dropped_rx", "frames_bad", "inputs_refused", "tx_timeouts")
    now = {k: int(getattr(stats, k)) for k in keys}
    if baseline is None or any(now[k] < getattr(baseline, k) for k in keys):
        return now
    return {k: now[k] - int(getattr(baseline, k)) for k in keys}


def _finish(
    report: ParityReport, feeder: Feeder, tx0: int, rx0: int, baseline: Stats | None = None, ask: bool = True
) -> None:
    """Fill the report's counters; ``ask``: exchange a last STATS with the board first (not when the user
    interrupted: they want out now)."""
    try:  # first the last exchange, then the counters: they include it
        stats = request_stats(feeder.link) if ask else None
    except LinkError:
        stats = None
    counters = feeder.link_counters()
    report.bytes_to_board = counters.pop("bytes_to_board") - tx0
    report.bytes_from_board = counters.pop("bytes_from_board") - rx0
    report.link = counters
    session = None if stats is None else session_stats(stats, baseline)
    report.board_stats = (
        None
        if stats is None or session is None
        else {
            **session,
            "cycles_per_step": session["cycles"] // session["steps"] if session["steps"] else 0,
            "since_boot": asdict(stats),
        }
    )
    fs: FeedStats = feeder.stats
    report.recovery = fs.to_dict()
    report.passed = (
        report.failure is None
        and report.steps == report.steps_requested
        and report.mismatches == 0
        and fs.conflicts == 0
    )
    # Nothing damaged, refused, resent or restarted. A timeout alone (a slow answer, then a probe and its
    # answer, which is not counted as a NAK) loses nothing.
    lossless = (
        fs.resends == 0
        and fs.rewinds == 0
        and not fs.naks
        and not fs.board_errors
        and fs.reconnects == 0
        and counters["frames_bad"] == 0
        and counters["frames_dropped"] == 0
    )
    board_clean = session is not None and session["dropped_rx"] == 0 and session["frames_bad"] == 0
    report.clean = report.passed and lossless and board_clean
