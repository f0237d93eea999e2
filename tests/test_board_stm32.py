"""STM32F4 board layer: build the echo firmware, run it in QEMU, talk to it over USART1."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
import serial

from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards import BuildResult, QemuBoard, build_elf, get_board, size_report
from tinylstm.host.boards.csources import firmware_dir
from tinylstm.host.boards.registry import QEMU_NETDUINOPLUS2, QEMU_RISCV_VIRT, RISCV_GCC
from tinylstm.host.boards.toolchain import find_tool

pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)

ECHO = firmware_dir() / "tests" / "echo_main.c"
BYE = re.compile(rb"BYE board=qemu-stm32f405 ms=(\d+) ovf=(\d+) cyc=(\d+)\n")


def _build(out_dir: Path, board: str, defines: dict[str, str] | None = None) -> BuildResult:
    return build_elf([ECHO], [], defines or {}, out_dir, "echo", get_board(board))


@pytest.fixture(scope="module")
def echo_qemu(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    return _build(tmp_path_factory.mktemp("echo-qemu"), "qemu-stm32f405")


def _connect(board: QemuBoard) -> serial.SerialBase:
    port = serial.serial_for_url(board.url, timeout=5)
    assert port.readline() == b"READY\n"
    return port


def _quit(board: QemuBoard, port: serial.SerialBase) -> re.Match[bytes]:
    port.write(b"Q")
    bye = BYE.fullmatch(port.readline())
    assert bye is not None
    assert board.wait(timeout=5) == 0
    return bye


def test_echo_over_usart1_then_semihosting_exit(echo_qemu: BuildResult) -> None:
    payload = bytes(b for b in range(256) if b != ord("Q")) * 3  # 765 bytes; 'Q' means quit
    with QemuBoard(echo_qemu.elf) as board:
        start = time.monotonic()
        port = _connect(board)
        echoed = b""
        for i in range(0, len(payload), 200):  # bursts far beyond the UART's 1-byte data register
            burst = payload[i : i + 200]
            port.write(burst)
            echoed += port.read(len(burst))
        assert echoed == payload
        bye = _quit(board, port)
        elapsed_ms = (time.monotonic() - start) * 1000
    ms, overflows, has_cycles = (int(g) for g in bye.groups())
    assert 0 < ms <= elapsed_ms + 50  # SysTick at 1 kHz against the host clock
    assert overflows == 0  # QEMU holds bytes back while RXNE is set
    assert has_cycles == 0  # QEMU has no DWT cycle counter


def test_kill_mid_stream_and_restart(echo_qemu: BuildResult) -> None:
    with QemuBoard(echo_qemu.elf, icount=True) as board:
        port = _connect(board)
        port.write(b"abc")
        assert port.read(3) == b"abc"
        board.kill()
        with pytest.raises(serial.SerialException):
            port.read(1)
        port.close()
        url = board.url
        board.restart()
        assert board.url == url
        _quit(board, _connect(board))


def test_size_report(echo_qemu: BuildResult) -> None:
    report = size_report(
        echo_qemu.elf, echo_qemu.map, {"port": ["*/stm32f4/*.o", "*/common/*.o"], "app": ["main", "write_*"]}
    )
    assert 600 < report.flash < 4096
    assert 256 <= report.ram < 1024  # the 256-byte RX ring buffer dominates
    assert report.stack == 8192
    port, app, literals, rest = report.groups
    assert (port.name, app.name, literals.name, rest.name) == ("port", "app", "literals", "rest")
    assert port.flash > 220 and port.ram == report.ram  # vector table alone is 55 words
    assert app.flash > 0 and literals.flash > 0 and 0 <= rest.flash < 64
    assert sum(g.flash for g in report.groups) == report.flash
    assert 0 <= echo_qemu.bin.stat().st_size - report.flash < 16  # the .bin also holds alignment gaps
    assert "| **total** |" in report.render()


def test_size_report_follows_inlined_code_to_its_file(echo_qemu: BuildResult) -> None:
    """Link-time optimisation inlines the echo's main into the port's Reset_Handler: by symbol, main's bytes
    are the port's; by the debug information's line table they are echo_main.c's, so its object's group has
    them."""
    port = ["*/stm32f4/*.o", "*/common/*.o"]
    by_symbol = size_report(echo_qemu.elf, echo_qemu.map, {"port": port, "app": ["main", "write_*"]})
    by_file = size_report(echo_qemu.elf, echo_qemu.map, {"port": port, "app": ["*/tests/echo_main.o"]})
    with pytest.raises(AssertionError, match="not a function"):
        _symbol_address(echo_qemu.elf, "main")  # inlined
    moved = by_file.groups[1].flash - by_symbol.groups[1].flash
    assert moved > 64 and by_symbol.groups[0].flash - by_file.groups[0].flash == moved
    assert by_file.groups[2:] == by_symbol.groups[2:]  # literals and rest


def _symbol_address(elf: Path, name: str) -> int:
    out = subprocess.run([str(find_tool("nm")), str(elf)], capture_output=True, text=True, check=True).stdout
    for parts in (line.split() for line in out.splitlines()):
        if len(parts) == 3 and parts[2] == name and parts[1] in "Tt":  # link-time optimised: local
            return int(parts[0], 16)
    raise AssertionError(f"{name} is not a function in {elf}")


@pytest.mark.parametrize(("usart", "irq"), [("1", 37), ("2", 38)])
def test_real_board_builds(tmp_path: Path, usart: str, irq: int) -> None:
    result = _build(tmp_path, "stm32f405", {"TL_STM32_USART": usart})
    assert result.log == ""
    image = result.bin.read_bytes()
    assert b"qemu" not in image and b"stm32f405" in image
    vector = struct.unpack_from("<I", image, 4 * (16 + irq))[0]
    assert vector == _symbol_address(result.elf, f"USART{usart}_IRQHandler") | 1  # Thumb bit
    hard_fault = struct.unpack_from("<I", image, 4 * 3)[0]
    assert hard_fault == _symbol_address(result.elf, "Fault_Handler") | 1  # reports, then resets
    table = struct.unpack_from("<55I", image)  # 16 exceptions + IRQ 0..38: it ends at USART2's interrupt
    assert [k for k, v in enumerate(table) if v == 0] == [7, 8, 9, 10, 13]  # only the reserved ones are empty
    assert struct.pack("<I", 0x40003000) in image  # the independent watchdog (IWDG) is started and refreshed


def test_qemu_build_has_no_watchdog(echo_qemu: BuildResult) -> None:
    assert struct.pack("<I", 0x40003000) not in echo_qemu.bin.read_bytes()  # QEMU does not model the IWDG


def test_missing_tools_explain_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TinyLSTMError, match="apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"):
        find_tool("gcc")
    with pytest.raises(TinyLSTMError, match="apt-get install qemu-system-arm"):
        QemuBoard(tmp_path / "x.elf", QEMU_NETDUINOPLUS2)
    with pytest.raises(TinyLSTMError, match="apt-get install qemu-system-misc"):
        QemuBoard(tmp_path / "x.elf", QEMU_RISCV_VIRT)
    with pytest.raises(TinyLSTMError, match="apt-get install gcc-riscv64-unknown-elf"):
        find_tool("gcc", RISCV_GCC)
