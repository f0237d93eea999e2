"""`tinylstm parity`: board vs cffi kernel, bit for bit, on real held-out data."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tinylstm.api import parity
from tinylstm.host.analysis.parity import MAX_PARITY_STEPS
from tinylstm.host.boards.registry import emulated_boards
from tinylstm.host.cli.options import add_moved_data
from tinylstm.host.link.feed import Feeder
from tinylstm.host.link.transport import DEFAULT_BAUD


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parity",
        help="compare every board prediction with the host C kernel, bit for bit",
        description="Feed the export's held-out data as INPUT frames (credit flow control, lost "
        "frames recovered) and compare each PRED with the cffi build of the same C files. "
        "Always writes a report; exit 1 on any mismatch or unrecovered loss.",
    )
    p.add_argument("export_dir", help="directory written by `tinylstm export`")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port or URL (/dev/ttyUSB0, socket://127.0.0.1:4444)")
    where.add_argument(
        "--qemu",
        metavar="ELF",
        help="boot this firmware in QEMU and use it (the board, "
        f"{' or '.join(b.name for b in emulated_boards())}, is told by the ELF)",
    )
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    p.add_argument(
        "--steps",
        type=int,
        default=10_000,
        help=f"host-fed steps (default 10000, at most {MAX_PARITY_STEPS:,})",
    )
    p.add_argument(
        "--stall-timeout",
        type=float,
        default=30.0,
        help="give up when no step is delivered for this many seconds (default 30)",
    )
    p.add_argument(
        "--reconnect-timeout",
        type=float,
        default=10.0,
        help="how long to wait for a port that went away to come back (default 10 s)",
    )
    add_moved_data(p)
    p.add_argument("--report", help="write the JSON report here (default: EXPORT_DIR/parity-report.json)")
    p.add_argument("--quiet", action="store_true", help="no live status line on stderr")
    p.set_defaults(func=run)


def _status(total: int) -> Callable[[Feeder], None]:
    def show(f: Feeder) -> None:
        rate = f.base / max(time.monotonic() - f.started, 1e-9)
        print(
            f"# parity: step {f.base}/{total}, {rate:.0f} steps/s, {f.in_flight} B in flight, "
            f"{f.stats.retries} retries, {f.stats.timeouts} timeouts",
            file=sys.stderr,
            flush=True,
        )

    return show


def run(args: argparse.Namespace) -> int:
    report = parity(
        args.export_dir,
        args.port,
        args.steps,
        args.baud,
        qemu=args.qemu,
        stall_timeout=args.stall_timeout,
        reconnect_timeout=args.reconnect_timeout,
        data=args.data,
        test_data=args.test_data,
        report=args.report,
        on_status=None if args.quiet else _status(args.steps),
    )
    print(report.render())
    print(f"report: {Path(args.report) if args.report else Path(args.export_dir) / 'parity-report.json'}")
    return 0 if report.passed else 1
