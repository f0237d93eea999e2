"""`tinylstm build`: firmware for a board from an export directory."""

from __future__ import annotations

import argparse
import shlex

from tinylstm.api import DEFAULT_BOARD, SOURCES, build
from tinylstm.host.boards import BOARDS, board_names, get_board
from tinylstm.host.boards.packaging import PACKAGERS
from tinylstm.host.cli.options import add_moved_data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="build the streaming firmware for a board",
        description="Compile the kernel, the exported model, the app and the board port into an "
        "ELF/BIN (bare-metal boards), or write a project for PlatformIO, ESP-IDF or the Arduino IDE (the "
        "other boards).",
    )
    p.add_argument("export_dir", help="directory written by `tinylstm export`")
    p.add_argument(
        "--board",
        choices=board_names(),
        default=DEFAULT_BOARD,
        help="; ".join(f"{b.name}: {b.description}" for b in BOARDS.values()),
    )
    p.add_argument(
        "--source",
        choices=SOURCES,
        default="host",
        help="input source at boot (default host: INPUT frames); the host can switch with SET_SOURCE",
    )
    p.add_argument(
        "--replay-steps",
        type=int,
        help="held-out samples embedded for the replay source (default: 256 with --source replay, else "
        "none, so a host-fed firmware carries no recording; whole windows in window mode)",
    )
    p.add_argument(
        "--replay-period-ms",
        type=int,
        help="ms between replayed samples (default 20; 0: UART speed); only with replay data",
    )
    add_moved_data(p, "for the replay data")
    p.add_argument("--out", help="output directory (default: EXPORT_DIR/firmware-BOARD)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    b = build(
        args.export_dir,
        args.board,
        source=args.source,
        replay_steps=args.replay_steps,
        replay_period_ms=args.replay_period_ms,
        out=args.out,
        data=args.data,
        test_data=args.test_data,
    )
    if b.project is not None:
        # quoted: the printed command must work when pasted, also for a path with spaces
        next_step = PACKAGERS[get_board(args.board).kind].next_step
        print(next_step.format(project=shlex.quote(str(b.project)), board=args.board))
        print(b.state_line())
        return 0
    assert b.sizes is not None
    print(
        f"built {b.elf} and {b.bin} for {args.board}\n{b.sizes.render()}\n{b.state_line()}\n"
        f"(size report: {b.out_dir}/size-report.md)"
    )
    return 0
