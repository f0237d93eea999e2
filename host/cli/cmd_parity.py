"""`tinylstm parity`: board vs cffi kernel, bit for bit, on real held-out data."""
from __future__ import annotations

import argparse
import json
from contextlib import ExitStack
from pathlib import Path

from tinylstm.host.boards import QemuBoard
from tinylstm.host.link import DEFAULT_BAUD, Link
from tinylstm.host.parity import QEMU_IN_FLIGHT, run_parity
from tinylstm.trainer.errors import TinyLSTMError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parity", help="compare every board prediction with the host C kernel, bit for bit",
                       description="Feed the export's held-out data as INPUT frames and compare each PRED with the "
                                   "cffi build of the same C files. Exit 1 on any mismatch, bad or lost frame.")
    p.add_argument("export_dir", help="directory written by `tinylstm export`")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port or URL (/dev/ttyUSB0, socket://127.0.0.1:4444)")
    where.add_argument("--qemu", metavar="ELF", help="boot this qemu-stm32f405 firmware in QEMU and use it")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    p.add_argument("--steps", type=int, default=10_000, help="host-fed steps (default 10000)")
    p.add_argument("--in-flight", type=int, help="INPUT frames sent ahead of their PRED (default: fits the RX ring)")
    p.add_argument("--report", help="write the JSON report here (default: EXPORT_DIR/parity-report.json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    export_dir = Path(args.export_dir)
    if args.steps <= 0:
        raise TinyLSTMError("--steps must be positive")
    with ExitStack() as stack:
        url, in_flight = args.port, args.in_flight
        if args.qemu:
            url = stack.enter_context(QemuBoard(Path(args.qemu))).url
            in_flight = in_flight or QEMU_IN_FLIGHT
        link = stack.enter_context(Link.open(url, args.baud))
        report = run_parity(link, export_dir, args.steps, in_flight=in_flight)
    out = Path(args.report) if args.report else export_dir / "parity-report.json"
    out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    print(report.render())
    print(f"report: {out}")
    return 0 if report.passed else 1
