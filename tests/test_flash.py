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
    merged.write_bytes(b"\xe9" + b"\0" * 255)
    for board, chip in (("esp32dev", "esp32"), ("esp32-c3-devkitm-1", "esp32c3")):
        flash(merged, board, "/dev/ttyUSB0")
        assert (bin_dir / "esptool.py.args").read_text().split()[:2] == ["--chip", chip]
