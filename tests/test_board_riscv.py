"""RV32IMC board layer on QEMU's virt machine: the echo firmware over the 16550 UART (RX interrupt
through the PLIC), mtime millis, mcycle, the exit device, the freestanding build."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import serial
from firmware_fixtures import require_board_tools

from tinylstm.host.boards import BuildResult, QemuBoard, build_elf, get_board
from tinylstm.host.boards.csources import firmware_dir
from tinylstm.host.boards.registry import RISCV_GCC, board_for_elf
from tinylstm.host.boards.toolchain import find_tool

BOARD = "qemu-riscv32"
ECHO = firmware_dir() / "tests" / "echo_main.c"
BYE = re.compile(rb"BYE board=qemu-riscv32 ms=(\d+) ovf=(\d+) cyc=(\d+)\n")


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    require_board_tools(BOARD)
    return build_elf([ECHO], [], {}, tmp_path_factory.mktemp("echo-rv"), "echo", get_board(BOARD))


def test_clean_freestanding_build(echo: BuildResult) -> None:
    assert echo.log == ""  # -Wall -Wextra -Werror, no warning from the compiler or the linker
    header = subprocess.run(
        [str(find_tool("readelf", RISCV_GCC)), "-h", "-A", str(echo.elf)], capture_output=True, text=True
    ).stdout
    assert (
        "RISC-V" in header and "ELF32" in header and "Entry point address:               0x80000000" in header
    )
    assert board_for_elf(echo.elf).name == BOARD  # `parity --qemu` finds the board from the ELF
    dis = subprocess.run(
        [str(find_tool("objdump", RISCV_GCC)), "-d", str(echo.elf)], capture_output=True, text=True
    ).stdout
    assert re.search(r"^\s*[0-9a-f]+:\t[0-9a-f]{4} ", dis, re.M)  # compressed (16-bit) instructions
    assert "mret" in dis and "csrr" in dis  # the trap handler returns with mret; CSRs without -march zicsr


def test_echo_through_the_rx_interrupt_then_exit(echo: BuildResult) -> None:
    payload = bytes(b for b in range(256) if b != ord("Q")) * 3  # 765 bytes; 'Q' means quit
    with QemuBoard(echo.elf) as board:
        start = time.monotonic()
        port = serial.serial_for_url(board.url, timeout=5)
        assert port.readline() == b"READY\n"
        echoed = b""
        for i in range(0, len(payload), 200):  # bursts far beyond the 16550's 16-byte FIFO
            burst = payload[i : i + 200]
            port.write(burst)
            echoed += port.read(len(burst))
        assert echoed == payload
        port.write(b"Q")
        bye = BYE.fullmatch(port.readline())
        assert bye is not None, "no BYE line"
        assert board.wait(timeout=5) == 0  # the sifive_test finisher: 0x5555 is status 0
        elapsed_ms = (time.monotonic() - start) * 1000
    ms, overflows, has_cycles = (int(g) for g in bye.groups())
    assert 0 < ms <= elapsed_ms + 50  # mtime at 10 MHz against the host clock
    assert overflows == 0
    assert has_cycles == 1  # mcycle advances (in QEMU: host ticks, not a chip's cycles)


def test_port_sources_are_small() -> None:
    """The port is startup, HAL and register names; everything else is shared with the other boards."""
    port = get_board(BOARD).port_dir
    lines = sum(len(f.read_text().splitlines()) for f in port.glob("*.[ch]"))
    assert lines < 400, lines


def test_missing_board_tools_name_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tinylstm.errors import TinyLSTMError

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TinyLSTMError, match="apt-get install gcc-riscv64-unknown-elf"):
        build_elf([ECHO], [], {}, tmp_path, "echo", get_board(BOARD))
