"""`tinylstm flash`: program a board, or run the firmware in QEMU."""
from __future__ import annotations

import argparse
from pathlib import Path

from tinylstm.host.firmware import ALL_BOARDS
from tinylstm.host.flash import flash


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flash", help="flash firmware onto a board (or start it in QEMU)",
                       description="qemu-stm32f405: start QEMU, print its socket:// URL and run until Ctrl-C; QEMU "
                                   "boots the firmware when the first client connects. stm32f405/nucleo_f446re: "
                                   "st-flash, openocd or pyocd. esp32dev: pio run -t upload, or esptool for a .bin.")
    p.add_argument("target", help="ELF/BIN, or the `tinylstm build --out` directory")
    p.add_argument("--board", choices=ALL_BOARDS, default="qemu-stm32f405")
    p.add_argument("--port", help="serial port for ESP32 uploads (e.g. /dev/ttyUSB0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    flash(Path(args.target), args.board, args.port)
    return 0
