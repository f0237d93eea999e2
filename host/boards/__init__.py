"""Board layer: cross toolchain driver, board descriptions, QEMU runner and size reports."""
from tinylstm.host.boards.qemu import QemuBoard
from tinylstm.host.boards.sizes import GroupSize, SizeReport, size_report
from tinylstm.host.boards.toolchain import BOARDS, BoardSpec, BuildResult, build_elf, get_board

__all__ = [
    "BOARDS",
    "BoardSpec",
    "BuildResult",
    "GroupSize",
    "QemuBoard",
    "SizeReport",
    "build_elf",
    "get_board",
    "size_report",
]
