"""`tinylstm flash` refuses what would go wrong on a real board, and never lets pio download unasked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.flash import flash


def _stand_in(bin_dir: Path, name: str) -> Path:
    """An executable that records its arguments in <name>.args and succeeds."""
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / name
    exe.write_text(f'#!/bin/sh\necho "$@" > "{bin_dir / name}.args"\n')
    exe.chmod(0o755)
    return exe


def test_a_qemu_build_is_refused_for_a_real_board(tmp_path: Path) -> None:
    (tmp_path / "tinylstm.elf").write_bytes(b"\x7fELF")
    (tmp_path / "build.json").write_text(json.dumps({"board": "qemu-stm32f405"}))
    with pytest.raises(TinyLSTMError, match=r"built for qemu-stm32f405 \(a QEMU build.*--board stm32f405"):
        flash(tmp_path, "stm32f405")
    image = tmp_path / "copied.bin"  # a lone image, no build.json: the QEMU port's board name gives it away
    image.write_bytes(b"\0" * 64 + b"qemu-riscv32\0" + b"\0" * 64)
    (tmp_path / "build.json").unlink()
    with pytest.raises(TinyLSTMError, match="built for qemu-riscv32"):
        flash(image, "esp32-c3-devkitm-1", "/dev/ttyUSB0")


def test_a_build_for_another_board_names_the_board_to_pass(tmp_path: Path) -> None:
    """Was: "built for qemu-riscv32 (a QEMU build: its semihosting exit faults on a chip)", with advice to
    rebuild, when build.json already named the board (and no chip was involved)."""
    (tmp_path / "tinylstm.elf").write_bytes(b"\x7fELF")
    (tmp_path / "build.json").write_text(json.dumps({"board": "qemu-riscv32"}))
    with pytest.raises(
        TinyLSTMError, match="built for qemu-riscv32, not qemu-stm32f405: pass --board qemu-riscv32"
    ):
        flash(tmp_path, "qemu-stm32f405")


@pytest.mark.parametrize(
    "board, why", [("stm32f405", "find the ST-LINK probe over USB"), ("qemu-stm32f405", "QEMU")]
)
def test_a_port_a_flasher_does_not_use_is_refused(tmp_path: Path, board: str, why: str) -> None:
    """--port was ignored without a word by st-flash/openocd/pyocd and by QEMU."""
    (tmp_path / "tinylstm.elf").write_bytes(b"\x7fELF")
    (tmp_path / "build.json").write_text(json.dumps({"board": board}))
    with pytest.raises(
        TinyLSTMError, match=f"--port /dev/ttyUSB7: {board} is not flashed over a serial port .*{why}"
    ):
        flash(tmp_path, board, "/dev/ttyUSB7")


def test_openocd_gets_the_path_as_one_tcl_word(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tcl split `program /tmp/my fw/tinylstm.elf ...` at the space: openocd was handed /tmp/my."""
    from tinylstm.host.boards import get_board
    from tinylstm.host.boards.flash import stm32_command

    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir, "openocd")
    monkeypatch.setenv("PATH", str(bin_dir))  # openocd only: st-flash and pyocd come first when installed
    elf = tmp_path / "my fw" / "tinylstm.elf"
    assert stm32_command(elf, get_board("stm32f405"))[-1] == f"program {{{elf}}} verify reset exit"


def test_packages_for_other_build_systems_are_not_flashed(tmp_path: Path) -> None:
    for board in ("esp-idf", "arduino-lib"):
        with pytest.raises(TinyLSTMError, match=f"{board} is a package for another build system"):
            flash(tmp_path, board)


def test_pio_runs_only_when_its_packages_are_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = tmp_path / "fw" / "pio"
    project.mkdir(parents=True)
    (project / "platformio.ini").write_text("[env:esp32dev]\n")
    (tmp_path / "fw" / "build.json").write_text(json.dumps({"board": "esp32dev"}))
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir, "pio")
    core = tmp_path / "core"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(core))
    with pytest.raises(
        TinyLSTMError, match=r"has not installed platforms/espressif32, .*toolchain-xtensa-esp32.*"
    ):
        flash(tmp_path / "fw", "esp32dev", "/dev/ttyUSB0")
    assert not (bin_dir / "pio.args").exists()  # pio never ran, so nothing was downloaded
    for pkg in (
        "platforms/espressif32",
        "packages/framework-arduinoespressif32",
        "packages/toolchain-xtensa-esp32",
    ):
        (core / pkg).mkdir(parents=True)
    with pytest.raises(TinyLSTMError, match="tool-scons"):  # pio's own SCons is a download too
        flash(tmp_path / "fw", "esp32dev", "/dev/ttyUSB0")
    (core / "packages" / "tool-scons").mkdir()
    flash(tmp_path / "fw", "esp32dev", "/dev/ttyUSB0")
    args = (bin_dir / "pio.args").read_text().split()
    assert args[:2] == ["run", "-d"] and args[3:] == [
        "-e",
        "esp32dev",
        "-t",
        "upload",
        "--upload-port",
        "/dev/ttyUSB0",
    ]


def test_esptool_gets_the_boards_chip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir, "esptool.py")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    merged = tmp_path / "merged.bin"
    for board, chip, offset, chip_id in (
        ("esp32dev", "esp32", 0x1000, 0),
        ("esp32-c3-devkitm-1", "esp32c3", 0, 5),
    ):
        merged.write_bytes(_esp_image(offset, chip_id))
        flash(merged, board, "/dev/ttyUSB0")
        assert (bin_dir / "esptool.py.args").read_text().split()[:2] == ["--chip", chip]


def _esp_image(offset: int, chip_id: int) -> bytes:
    """A merged flash image's start: 0xFF up to the bootloader, its header (magic 0xE9, the chip id)."""
    header = bytes([0xE9, 3, 2, 0x20]) + bytes(8) + chip_id.to_bytes(2, "little") + bytes(10)
    return b"\xff" * offset + header + bytes(256)


@pytest.mark.parametrize(
    "image, why",
    [
        (_esp_image(0, 0), "no bootloader image header, magic 0xE9, at 0x1000"),  # an app-only image
        (_esp_image(0x1000, 5), "is a flash image for esp32c3, not esp32"),
        (bytes(range(256)) * 8, "is not a merged esp32 flash image"),  # an ARM .bin, random bytes
        (b"", "is not a merged esp32 flash image"),
    ],
)
def test_esptool_never_writes_what_is_not_a_merged_image_for_the_chip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, image: bytes, why: str
) -> None:
    """esptool writes the .bin at 0x0, over the bootloader: it took any .bin, leaving the board unbootable."""
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir, "esptool.py")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "app.bin").write_bytes(image)
    with pytest.raises(TinyLSTMError, match=why):
        flash(tmp_path / "app.bin", "esp32dev", "/dev/ttyUSB0")
    assert not (bin_dir / "esptool.py.args").exists()
