"""The serial link under stress, against the real firmware in QEMU: a board much slower than the host
on a loaded machine, a host that floods, a link that flips, drops, duplicates and inserts bytes, and
QEMU killed mid-run. Default settings throughout: credit flow control and recovery are not options.

A prediction "attributed to the wrong input" or "wrong" would show up as a mismatch against the host
kernel for that step: parity compares every delivered step.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from firmware_fixtures import EMULATED, Trained, next_error, require_board_tools, trained_firmware

from tinylstm.codegen.emit_c import emit_c
from tinylstm.codegen.heldout import load_held_out
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_int_model
from tinylstm.errors import TinyLSTMError
from tinylstm.host.analysis.parity import ParityReport, run_parity
from tinylstm.host.boards import QemuBoard, build_elf, get_board
from tinylstm.host.boards.csources import csrc_dir, firmware_dir, kernel_sources
from tinylstm.host.boards.firmware import app_sources, build_firmware, link_rx_capacity
from tinylstm.host.cli.main import main
from tinylstm.host.link.feed import Feeder, required_rx_capacity, wait_hello
from tinylstm.host.link.linklab import FaultProxy, Faults, cpu_hogs
from tinylstm.host.link.protocol import (
    MAX_INPUT_SIZE,
    MAX_INPUT_SIZE_S16,
    ErrorCode,
    FrameType,
    HelloReq,
    Input,
    Nak,
    NakReason,
    Pred,
    Stats,
    StatsReq,
    parse_message,
)
from tinylstm.host.link.stream import BoardStream
from tinylstm.host.link.transport import Link, LinkError
from tinylstm.host.targets.bridge import CModel

SLOW = ("-icount", "shift=7,align=on")  # 128 ns per instruction, paced against the host clock
# samples against the slow board: dozens of cycles of a full receive buffer, under two CPU hogs
SLOW_STEPS = 1_500


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return trained_firmware(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module", params=EMULATED)
def trained_each(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Trained:
    """The firmware built for every emulated board (its port's receive path under load)."""
    return trained_firmware(tmp_path_factory.getbasetemp(), request.param)


def expected_outputs(export_dir: Path, steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The held-out stream and the host kernel's outputs for it under the window rule."""
    held = load_held_out(export_dir)
    cm = CModel.from_generated(export_dir)
    xs = held.stream(steps)
    out = []
    for t, x in enumerate(xs):
        if held.window and t % held.window == 0:
            cm.reset()
        out.append(cm.step(x))
    return xs, out


def assert_clean(report: ParityReport) -> None:
    assert report.passed and report.clean, report.render()
    assert report.board_stats is not None and report.board_stats["dropped_rx"] == 0


@pytest.mark.slow
def test_slow_board_on_a_loaded_machine_parity(trained_each: Trained) -> None:
    trained = trained_each
    with cpu_hogs(2), QemuBoard(trained.host.elf, extra_args=SLOW) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        report = run_parity(link, trained.export_dir, SLOW_STEPS)
    assert_clean(report)
    assert report.steps == SLOW_STEPS and report.recovery["in_flight_peak"] <= report.rx_capacity


@pytest.mark.slow
def test_slow_board_on_a_loaded_machine_host_fed_stream(trained: Trained) -> None:
    xs, expect = expected_outputs(trained.export_dir, SLOW_STEPS)
    with (
        cpu_hogs(2),
        QemuBoard(trained.host.elf, extra_args=SLOW) as board,
        BoardStream(board.url, trained.export_dir) as s,
    ):  # type: ignore[arg-type]
        preds = list(s.predictions(feed=xs))
        counters = s.live_counters()
    assert [p.step for p in preds] == list(range(SLOW_STEPS))
    assert all(np.array_equal(p.raw, e) for p, e in zip(preds, expect, strict=True))
    feed = counters.feed
    assert feed is not None and feed["resends"] == feed["rewinds"] == 0 and not feed["naks"], feed
    assert (
        counters.frames_bad == counters.frames_dropped == counters.steps_missing == counters.board_errors == 0
    )


@pytest.fixture(scope="module")
def big_board(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IntModel]:
    """Firmware of a 3 x 128 LSTM (random full-range weights): milliseconds per step in QEMU, long
    enough for a flood to overrun the 256-byte ring while a step runs."""
    out = tmp_path_factory.mktemp("big-board")
    model = random_int_model(np.random.default_rng(3), "lstm", 3, 6, 128, 4)
    emit_c(model, out / "gen")
    app = firmware_dir() / "app"
    result = build_elf(
        [*kernel_sources(), out / "gen" / "tl_model.c", *app_sources(), app / "main.c"],
        [csrc_dir(), app, out / "gen"],
        {"TL_APP_HAS_REPLAY": "0"},
        out,
        "big",
        get_board("qemu-stm32f405"),
    )
    return result.elf, model


def _stats_after_a_loss(link: Link) -> Stats:
    """STATS, asked for after received bytes were lost: the board's decoder may still hold the start of a
    frame whose end was dropped, and the request's bytes then end that frame (ERROR BAD_FRAME, counted in
    frames_bad); the request sent again decodes on its own."""
    link.send(StatsReq())
    try:
        frame = link.expect(FrameType.STATS)
    except LinkError as exc:
        assert "BAD_FRAME" in str(exc), exc
        link.send(StatsReq())
        frame = link.expect(FrameType.STATS)
    stats = parse_message(frame)
    assert isinstance(stats, Stats)
    return stats


def test_a_flooding_host_is_refused_never_misstepped(big_board: tuple[Path, IntModel]) -> None:
    """Without credit the board's RX ring overflows: the damage is counted, and every PRED the board
    does send belongs to the step it names. A feeder run on the same board afterwards is bit-exact."""
    elf, model = big_board
    xs = np.random.default_rng(4).integers(-128, 128, (400, 6)).astype(np.int8)
    cm = CModel.from_int_model(model)
    expect = [cm.step(x) for x in xs]
    with QemuBoard(elf) as board, Link.open(board.url) as link:
        hello = wait_hello(link)
        # 40 samples in one frame keep the board busy for 40 long steps while ~4.6 KB more arrive
        link.send(Input(0, tuple(tuple(int(v) for v in xs[t]) for t in range(40))))
        for t in range(40, 240):
            link.send(Input(t, (tuple(int(v) for v in xs[t]),)))
        preds: dict[int, tuple[int, ...]] = {}
        naks = []
        while frames := link.read(3.0):
            for f in frames:
                msg = parse_message(f)
                if isinstance(msg, Pred):
                    assert msg.step not in preds
                    preds[msg.step] = msg.outputs
                elif isinstance(msg, Nak):
                    naks.append(msg)
        stats = _stats_after_a_loss(link)  # which also ends a frame the loss left unfinished
        assert stats.dropped_rx > 0, "the flood did not overflow the ring: the test proves nothing"
        assert len(preds) >= 40 and sorted(preds) == list(range(len(preds)))  # in order, up to the first loss
        assert all(np.array_equal(y, expect[t]) for t, y in preds.items())
        # the flood's frames that arrived whole after the first loss were refused (where the loss fell
        # decides how many: QEMU delivers bytes as fast as the interrupt reads them); so is one sent now
        assert stats.inputs_refused == len(naks) and stats.steps == len(preds)
        link.send(Input(240, (tuple(int(v) for v in xs[240]),)))
        refused = parse_message(link.expect(FrameType.NAK))
        assert isinstance(refused, Nak)
        assert all(n.reason == NakReason.GAP and n.next_step == len(preds) for n in [*naks, refused])
        feeder = Feeder(link, hello, xs)  # credit: restarts at step 0 with a RESET, then nothing is lost
        got = [d.outputs for d in feeder.run()]
        link.send(StatsReq())
        after = parse_message(link.expect(FrameType.STATS))
    assert all(np.array_equal(y, e) for y, e in zip(got, expect, strict=True)) and len(got) == len(xs)
    assert isinstance(after, Stats) and after.dropped_rx == stats.dropped_rx  # no new loss
    assert feeder.stats.retries == 0 and feeder.stats.in_flight_peak <= hello.rx_capacity


def test_a_late_answer_to_hello_req_is_not_a_board_reset(trained: Trained) -> None:
    """wait_hello asks with HELLO_REQ when the boot HELLO is slow, and then both come: the answer (seq != 0)
    reaches the feeder mid-run. The board did not restart, so the feeder counts no reset and rewinds
    nothing (a seq-0 HELLO would have cost a board_resets count and a rewind)."""
    xs, expect = expected_outputs(trained.export_dir, 600)
    with QemuBoard(trained.host.elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        feeder = Feeder(link, wait_hello(link), xs)
        got = []
        for d in feeder.run():
            got.append(d.outputs)
            if d.step == 100:
                link.send(HelloReq())  # as if wait_hello's request were answered only now
    assert all(np.array_equal(y, e) for y, e in zip(got, expect, strict=True)) and len(got) == len(xs)
    assert feeder.stats.board_resets == 0 and feeder.stats.rewinds == 0, feeder.stats.to_dict()


@pytest.mark.parametrize("rate", [1e-4, 1e-3])
@pytest.mark.parametrize("direction", ["to board", "to host", "both"])
def test_faulty_link_parity_recovers_bit_exact(trained: Trained, direction: str, rate: float) -> None:
    faults = Faults(rate, seed=int(rate * 1e6))
    to_board = faults if direction in ("to board", "both") else Faults()
    to_host = faults if direction in ("to host", "both") else Faults()
    steps = 4000
    with (
        QemuBoard(trained.host.elf) as board,
        FaultProxy(board.port, to_board, to_host) as proxy,
        Link.open(proxy.url) as link,
    ):
        start = time.monotonic()
        report = run_parity(
            link, trained.export_dir, steps, reopen=lambda: Link.open(proxy.url), stall_timeout=20
        )
        elapsed = time.monotonic() - start
    assert report.passed, report.render()
    assert report.mismatches == 0 and report.recovery["conflicts"] == 0
    damaged = sum(proxy.counts.values())
    if rate >= 1e-3:
        assert damaged > 10, proxy.counts
    if damaged:  # every loss was seen and dealt with
        r = report.recovery
        noticed = (
            report.link["frames_bad"]
            + r["retries"]
            + r["timeouts"]
            + r["duplicates"]
            + sum(r["naks"].values())
            + sum(r["board_errors"].values())
        )
        assert noticed > 0, report.render()
    assert elapsed < 300


@pytest.mark.parametrize(
    "fault",
    ["blackout to board", "blackout to host", "chunk drops both ways"],
)
def test_blackouts_and_lost_chunks_never_stall_parity(trained: Trained, fault: str) -> None:
    """Lost answers and lost host bytes leave the host believing its credit is used up; the probe is sent
    regardless and its answer (NAK NOT_YET, which names the probe) gives the credit back."""
    chunks = Faults(chunks=0.05, seed=3) if fault == "chunk drops both ways" else Faults()
    with (
        QemuBoard(trained.host.elf) as board,
        FaultProxy(board.port, chunks, chunks) as proxy,
        Link.open(proxy.url) as link,
    ):
        darkness: list[threading.Timer] = []
        if fault.startswith("blackout"):  # one second without a byte one way, twice, mid-run
            for at in (0.5, 3.0):
                darkness.append(threading.Timer(at, proxy.blackout, (fault.removeprefix("blackout "), 1.0)))
                darkness[-1].start()
        start = time.monotonic()
        steps = 3000 if darkness else 1000  # the blackouts end 4 s in; chunk drops slow every step
        report = run_parity(
            link, trained.export_dir, steps, reopen=lambda: Link.open(proxy.url), stall_timeout=20
        )
        elapsed = time.monotonic() - start
        for timer in darkness:
            timer.cancel()
    assert report.passed and report.mismatches == 0, report.render()
    lost = sum(n for kind, n in proxy.counts.items() if "blackout" in kind or "chunk" in kind)
    assert lost > 0, proxy.counts  # the fault happened while parity ran
    assert report.recovery["timeouts"] + report.recovery["pred_requests"] > 0, report.render()
    assert elapsed < 120


def test_a_halted_board_is_probed_without_a_go_back(trained: Trained) -> None:
    """The board stops for longer than the retransmission timeout, then runs on: the probe's answer (NAK
    NOT_YET, expecting the step the host sent next before the probe) arrives behind INPUT frames the host
    sent after it, and must not send the host back, restart the board or count as a loss."""
    with QemuBoard(trained.host.elf) as board, Link.open(board.url) as link:
        halts = [threading.Timer(at, board.halt, (1.5,)) for at in (0.5, 3.0)]
        for timer in halts:
            timer.start()
        report = run_parity(link, trained.export_dir, 3000, stall_timeout=20)
        for timer in halts:
            timer.cancel()
    r = report.recovery
    assert report.passed and report.mismatches == 0, report.render()
    assert r["timeouts"] > 0 and r["probes_answered"] > 0, report.render()  # the halts were long enough
    assert r["resends"] == 0 and r["rewinds"] == 0 and not r["naks"], report.render()
    assert report.link["frames_bad"] == 0, report.render()


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["to board", "to host", "both"])
def test_very_faulty_link_ends_in_bounded_time_with_a_report(trained: Trained, direction: str) -> None:
    """1 % of the bytes damaged one way or both: the run ends, bit-exact so far, within bounds and with a
    report that names the damage (400 steps: a few hundred bad frames both ways)."""
    faults = Faults(1e-2, seed=7)
    to_board = faults if direction in ("to board", "both") else Faults()
    to_host = faults if direction in ("to host", "both") else Faults()
    with (
        QemuBoard(trained.host.elf) as board,
        FaultProxy(board.port, to_board, to_host) as proxy,
        Link.open(proxy.url) as link,
    ):
        start = time.monotonic()
        report = run_parity(
            link, trained.export_dir, 400, reopen=lambda: Link.open(proxy.url), stall_timeout=15
        )
        elapsed = time.monotonic() - start
    assert report.mismatches == 0 and report.recovery["conflicts"] == 0, report.render()
    assert report.passed or report.failure, report.render()
    text = report.render()
    assert "link:" in text and "board errors:" in text and "recovery:" in text
    assert report.link["frames_bad"] > 0 or report.recovery["naks"], text  # the damage is named
    assert elapsed < 240


def _kill_and_restart_after(
    board: QemuBoard, feeder_started: threading.Event, delay: float
) -> threading.Thread:
    def run() -> None:
        feeder_started.wait(30)
        time.sleep(delay)
        board.restart()  # power loss: QEMU killed, started again on the same port

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.slow
def test_qemu_restarted_during_parity_recovers(trained: Trained) -> None:
    started = threading.Event()
    with QemuBoard(trained.host.elf) as board, Link.open(board.url) as link:  # type: ignore[arg-type]
        killer = _kill_and_restart_after(board, started, 1.5)

        def status(f: Feeder) -> None:
            started.set()

        report = run_parity(
            link, trained.export_dir, 8000, reopen=lambda: Link.open(board.url), on_status=status
        )
        killer.join(10)
    assert report.passed, report.render()
    assert report.recovery["reconnects"] >= 1 and report.recovery["rewinds"] >= 1
    assert report.steps == 8000 and report.mismatches == 0


@pytest.mark.slow
def test_qemu_restarted_during_host_fed_stream_recovers(trained: Trained) -> None:
    xs, expect = expected_outputs(trained.export_dir, 8000)
    started = threading.Event()
    with QemuBoard(trained.host.elf) as board, BoardStream(board.url, trained.export_dir) as s:  # type: ignore[arg-type]
        killer = _kill_and_restart_after(board, started, 1.5)
        preds = list(s.predictions(feed=xs, on_status=lambda c: started.set()))
        counters = s.live_counters()
        killer.join(10)
    assert [p.step for p in preds] == list(range(8000))
    assert all(np.array_equal(p.raw, e) for p, e in zip(preds, expect, strict=True))
    assert counters.disconnects >= 1 and counters.feed is not None and counters.feed["rewinds"] >= 1


def test_a_port_lost_on_a_write_is_recovered_like_one_lost_on_a_read(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection can reset under an INPUT write before any read notices (QEMU killed while the
    host sends): the feeder reconnects and rewinds exactly as for a lost read."""
    xs, expect = expected_outputs(trained.export_dir, 3000)
    write = Link.write_frame
    calls = {"n": 0}

    def write_then_lose(self: Link, ftype: int, payload: bytes) -> tuple[int, int]:
        calls["n"] += 1
        if calls["n"] == 40:
            self.port.close()  # the socket is gone under the write
            raise self._lost(ConnectionResetError(104, "Connection reset by peer"))
        return write(self, ftype, payload)

    monkeypatch.setattr(Link, "write_frame", write_then_lose)
    with QemuBoard(trained.host.elf) as board, BoardStream(board.url, trained.export_dir) as s:  # type: ignore[arg-type]
        preds = list(s.predictions(feed=xs))
        counters = s.live_counters()
    assert calls["n"] > 40 and [p.step for p in preds] == list(range(3000))
    assert all(np.array_equal(p.raw, e) for p, e in zip(preds, expect, strict=True))
    assert counters.disconnects == 1 and counters.feed is not None and counters.feed["rewinds"] >= 1


# ---- the command line: one line, exit 2, for every port problem -----------------------------------


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BAD_PORTS = [
    ("sockt://127.0.0.1:4444", "unknown port URL scheme 'sockt://'"),
    ("socket://localhost", "malformed socket URL socket://localhost: expected socket://HOST:PORT"),
    ("socket://127.0.0.1:99999", "malformed socket URL"),
    ("socket://:4444", "malformed socket URL"),
    ("socket://127.0.0.1:abc", "malformed socket URL"),
    ("rfc2217://host", "malformed rfc2217 URL"),
    ("/dev/ttyTINYLSTM404", "serial port /dev/ttyTINYLSTM404 not found"),
    ("", "empty serial port name"),
]


@pytest.mark.parametrize("command", ["stream", "parity"])
@pytest.mark.parametrize(("port", "message"), BAD_PORTS, ids=[p or "empty" for p, _ in BAD_PORTS])
def test_bad_port_is_one_line_exit_2(
    trained: Trained, capsys: pytest.CaptureFixture[str], command: str, port: str, message: str
) -> None:
    argv = (
        ["stream", "--port", port]
        if command == "stream"
        else ["parity", str(trained.export_dir), "--port", port]
    )
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


@pytest.mark.parametrize("command", ["stream", "parity"])
def test_refused_and_busy_ports(trained: Trained, capsys: pytest.CaptureFixture[str], command: str) -> None:
    refused = f"socket://127.0.0.1:{_free_tcp_port()}"
    controller, device = os.openpty()
    try:
        with Link.open(os.ttyname(device)):
            busy = os.ttyname(device)
            for port, message in ((refused, "nothing listens on"), (busy, "is busy")):
                argv = (
                    ["stream", "--port", port]
                    if command == "stream"
                    else ["parity", str(trained.export_dir), "--port", port]
                )
                assert main(argv) == 2
                err = capsys.readouterr().err
                assert err.count("\n") == 1 and message in err, err
    finally:
        os.close(controller)
        os.close(device)


def _run_cli(args: list[str], **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tinylstm.host.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )  # type: ignore[call-overload]


def _rest_of(proc: subprocess.Popen[str], timeout: float = 30.0) -> tuple[str, str]:
    """(the rest of stdout, stderr) once ``proc`` exits, killed after ``timeout`` s. Not ``communicate``: it
    reads the pipes' descriptors and drops what an earlier ``readline`` read ahead into the stdout object,
    which is every line of a burst of predictions that arrived together."""
    assert proc.stdout is not None and proc.stderr is not None
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        rest = proc.stdout.read()  # what readline buffered, then the pipe to its end
        err = proc.stderr.read()  # a few lines: it cannot fill its pipe while stdout is read
        proc.wait()
    finally:
        timer.cancel()
    return rest, err


def _running_cli_parity(
    trained: Trained, board: QemuBoard, report: Path, *extra: str
) -> subprocess.Popen[str]:
    """`tinylstm parity` of 200,000 steps against ``board``, once its status line says it is running."""
    argv = [
        "parity",
        str(trained.export_dir),
        "--port",
        board.url,
        "--steps",
        "200000",
        "--report",
        str(report),
    ]
    proc = _run_cli([*argv, *extra])
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("# parity: step")  # running: the status line came
    return proc


def test_qemu_killed_during_cli_parity_is_a_report_not_a_traceback(trained: Trained, tmp_path: Path) -> None:
    report = tmp_path / "parity.json"
    with QemuBoard(trained.host.elf) as board:  # type: ignore[arg-type]
        proc = _running_cli_parity(trained, board, report, "--reconnect-timeout", "2")
        board.kill()  # and it never comes back
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in err and "FAIL" in out and "stopped: lost" in out, (out, err)
    doc = json.loads(report.read_text())
    assert doc["passed"] is False and doc["failure"].startswith("lost") and 0 < doc["steps"] < 200000


def test_sigterm_during_cli_parity_writes_a_partial_report(trained: Trained, tmp_path: Path) -> None:
    report = tmp_path / "parity.json"
    with QemuBoard(trained.host.elf) as board:  # type: ignore[arg-type]
        proc = _running_cli_parity(trained, board, report)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, (out, err)
    doc = json.loads(report.read_text())
    assert doc["interrupted"] is True and doc["failure"] == "interrupted (SIGTERM)" and doc["passed"] is False
    assert 0 < doc["steps"] < 200000 and doc["mismatches"] == 0


def test_sigterm_flushes_the_stream_log(trained: Trained, tmp_path: Path) -> None:
    log = tmp_path / "out.csv"
    with QemuBoard(trained.replay.elf) as board:  # type: ignore[arg-type]
        proc = _run_cli(
            ["stream", "--port", board.url, "--export", str(trained.export_dir), "--log", str(log)]
        )
        assert proc.stdout is not None
        for _ in range(50):  # printed predictions arrive (the replay runs every 2 ms)
            proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        rest, err = _rest_of(proc)
    printed = 50 + sum(1 for line in rest.splitlines() if line and not line.startswith("#"))
    rows = log.read_text().splitlines()[1:]
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, err
    # every printed prediction is in the log (the first printed line is the board's); one more may be logged
    # than printed when SIGTERM lands between writing a row and printing it
    assert printed - 1 <= len(rows) <= printed
    assert "# session 0 (replay)" in err and "predictions" in err


def test_stream_says_why_a_host_fed_board_predicts_nothing(trained: Trained) -> None:
    """Without --feed, a host-fed board printed "0 predictions" each second, then "steps None..None"."""
    with QemuBoard(trained.host.elf) as board:  # type: ignore[arg-type]
        proc = _run_cli(["stream", "--port", board.url, "--export", str(trained.export_dir), "--quiet"])
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stderr.readline()  # the hint comes right after the board's HELLO line (stdout)
        status = proc.stderr.readline()  # a counters line: the stream is running, its summary will print
        proc.send_signal(signal.SIGTERM)
        _, err = _rest_of(proc)
    assert "takes its samples from the host and nothing sends them: add --feed held-out" in first, first + err
    assert "0 predictions" in status, status
    assert "# session 0 (host): no steps, 0 received" in err and "None" not in err, err


def test_a_second_client_of_a_qemu_board_is_told_it_may_be_taken(trained: Trained) -> None:
    """QEMU's socket takes one client: a second connects and hears nothing, and was told only to check the
    firmware and baud rate."""
    with QemuBoard(trained.host.elf) as board:  # type: ignore[arg-type]
        with Link.open(board.url) as first:
            wait_hello(first)
            with Link.open(board.url) as second:
                with pytest.raises(TinyLSTMError, match="serves one client at a time; is another stream"):
                    wait_hello(second, timeout=2.0)


# where each emulated board's code lives (the faulting pc must point there)
CODE_PC_PREFIX = {"qemu-stm32f405": "0x080", "qemu-riscv32": "0x800"}


@pytest.mark.parametrize("board", EMULATED)
def test_a_cpu_fault_is_reported_before_the_board_stops(tmp_path: Path, trained: Trained, board: str) -> None:
    require_board_tools(board)
    fault = 0xEE
    build = build_firmware(trained.export_dir, board, tmp_path, defines={"TL_APP_TEST_FAULT": str(fault)})
    assert build.elf is not None
    with QemuBoard(build.elf) as qemu, Link.open(qemu.url) as link:
        wait_hello(link)
        link.write_frame(fault, b"")
        err = next_error(link)
        code = qemu.wait(timeout=10)
    # __builtin_trap: HardFault (exception 3) on Cortex-M, ebreak (mcause 3, breakpoint) on RISC-V
    assert err.code == ErrorCode.FAULT
    assert err.message.startswith(f"exception 0x00000003 at pc {CODE_PC_PREFIX[board]}"), err.message
    assert code == 128 + 3  # in QEMU the fault handler ends the emulator with 128 + exception


def test_replay_keeps_running_through_a_flood_of_garbage(trained: Trained) -> None:
    """tl_app_poll handles at most one frame's worth of bytes per call: received bytes never starve the
    source."""
    with QemuBoard(trained.replay.elf) as board, BoardStream(board.url, trained.export_dir) as s:  # type: ignore[arg-type]
        stop = threading.Event()

        def flood() -> None:
            while not stop.is_set():
                s.link.port.write(bytes(range(1, 256)) * 4)  # no delimiter: one endless TOO_LONG frame
                time.sleep(0.005)

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        try:
            preds = list(s.predictions(300, idle_timeout=10))
        finally:
            stop.set()
            t.join(5)
    assert [p.step for p in preds] == list(range(300))


def test_status_line_keeps_updating_while_nothing_arrives(trained: Trained) -> None:
    """Three status lines with nothing received in between; counted as they come, so a slow start on a
    busy machine (imports, QEMU boot) does not matter."""
    with QemuBoard(trained.host.elf) as board:  # type: ignore[arg-type]  # host source: no PRED unless fed
        proc = _run_cli(["stream", "--port", board.url, "--export", str(trained.export_dir)])
        assert proc.stderr is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while sum(line.startswith("# 0 predictions") for line in seen) < 3 and time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=1.0))
            except queue.Empty:
                if proc.poll() is not None:
                    break
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    status = [line for line in seen if line.startswith("# 0 predictions")]
    assert len(status) >= 3, "".join(seen)  # about one a second, with nothing to print in between
    assert proc.returncode == 143


def test_models_the_link_cannot_carry_are_refused_at_build() -> None:
    # one frame of one sample and the control reserve: int16 samples (an int16-h model's INPUT_S16) take twice
    # the bytes of int8 ones
    assert required_rx_capacity(207, 8) == required_rx_capacity(103, 16) == 256
    assert required_rx_capacity(208, 8) == required_rx_capacity(104, 16) == 512
    assert required_rx_capacity(MAX_INPUT_SIZE, 8) == required_rx_capacity(MAX_INPUT_SIZE_S16, 16) == 1024
    assert link_rx_capacity(6, 7, 8) == 256
    assert link_rx_capacity(MAX_INPUT_SIZE, 1, 8) == 1024  # one 526-byte frame plus the control reserve
    assert link_rx_capacity(104, 1, 16) == 512  # an int16-h model's samples take twice the bytes
    with pytest.raises(TinyLSTMError, match=r"takes 600 inputs per step, but one INPUT frame .* at most 507"):
        link_rx_capacity(600, 4, 8)
    with pytest.raises(
        TinyLSTMError, match=r"takes 254 inputs per step, but one INPUT_S16 frame .* at most 253"
    ):
        link_rx_capacity(254, 4, 16)
    with pytest.raises(TinyLSTMError, match=r"has 300 outputs per step, but one PRED frame .* at most 251"):
        link_rx_capacity(6, 300, 8)
