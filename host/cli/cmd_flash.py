"""`tinylstm flash`: program a board, or run the firmware in QEMU."""

from __future__ import annotations

import argparse

from tinylstm.api import DEFAULT_BOARD, flash
from tinylstm.host.boards import BOARDS, board_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "flash",
        help="flash firmware onto a board (or start it in QEMU)",
        description="Program the board the way its record says (host/boards/registry.py): a QEMU "
        "board starts QEMU, prints its socket:// URL and runs until Ctrl-C (QEMU boots the "
        "firmware when the first client connects); an STM32 board uses st-flash, openocd or "
        "pyocd; a PlatformIO board pio run -t upload (ESP32: or esptool for a .bin).",
    )
    p.add_argument("target", help="ELF/BIN, or the `tinylstm build --out` directory")
    p.add_argument(
        "--board",
        choices=board_names(),
        default=DEFAULT_BOARD,
        help="; ".join(f"{b.name}: {b.description}" for b in BOARDS.values()),
    )
    p.add_argument("--port", help="serial port for ESP32 uploads (e.g. /dev/ttyUSB0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    flash(args.target, args.board, port=args.port)
    return 0
