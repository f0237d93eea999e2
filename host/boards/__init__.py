"""Boards: the registry, the cross toolchain driver, firmware build and packaging, flashing, the QEMU
boards, fit and size reports. Imports link (the frames a firmware speaks), never targets, analysis or
search."""

from tinylstm.host.boards.qemu import QemuBoard
from tinylstm.host.boards.registry import BOARDS, Board, board_names, get_board
from tinylstm.host.boards.sizes import GroupSize, SizeReport, size_report
from tinylstm.host.boards.toolchain import BuildResult, build_elf

__all__ = [
    "BOARDS",
    "Board",
    "BuildResult",
    "GroupSize",
    "QemuBoard",
    "SizeReport",
    "board_names",
    "build_elf",
    "get_board",
    "size_report",
]
