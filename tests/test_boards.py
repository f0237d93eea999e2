"""The board registry is the one place a board is described: a new record is picked up by the CLI's
choices, the build, the size report and flashing without any other edit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from firmware_fixtures import train_and_export

from tinylstm.host.boards import BOARDS, Board
from tinylstm.host.boards.registry import CORE_CORTEX_M4F, FLASHERS, KINDS
from tinylstm.host.cli.main import build_parser, main

TOY = Board(
    name="toy-f405",
    description="a toy STM32F405 board for the registry test",
    kind="bare-metal",
    flash_bytes=1024 * 1024,
    ram_bytes=128 * 1024,
    flasher="stm32",
    port="stm32f4",
    port_sources=("startup.c", "tl_hal_stm32f4.c"),
    linker_script="stm32f4.ld",
    core=CORE_CORTEX_M4F,
    defines={"TL_WATCHDOG_MS": "500"},
    pyocd_target="toychip",
)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_and_export(tmp_path_factory.mktemp("toy"), hidden=8, epochs=1)


def test_every_board_has_its_facts() -> None:
    for b in BOARDS.values():
        assert b.flash_bytes > 0 and b.ram_bytes > 0 and b.description
        assert b.kind in KINDS and (b.flasher in FLASHERS or (b.flasher is None and b.kind != "bare-metal"))
        if b.kind == "bare-metal":
            assert b.port and b.linker_script and all((b.port_dir / f).is_file() for f in b.port_sources)
            assert b.core is not None and b.core.toolchain is not None
        elif b.kind == "platformio":
            assert b.pio_platform and b.pio_board and b.pio_packages and b.core is not None
            assert b.framework_flash_bytes > 0  # the Arduino core's own footprint counts against the flash
        if b.emulator is not None:
            assert b.flasher == "qemu" and b.name.startswith("qemu-")
        if b.flasher == "esp32":
            assert b.esptool_chip


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
def test_a_toy_board_record_is_all_it_takes(
    monkeypatch: pytest.MonkeyPatch, export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(BOARDS, TOY.name, TOY)
    for command in ("build", "flash"):  # the CLI offers it
        args = build_parser().parse_args([command, str(export_dir), "--board", TOY.name])
        assert args.board == TOY.name
    out = tmp_path / "fw"
    assert (
        main(["build", str(export_dir), "--board", TOY.name, "--out", str(out)]) == 0
    )  # the build uses its port
    assert (out / "tinylstm.elf").is_file()
    report = json.loads((out / "size-report.json").read_text())  # the size report has its port group
    assert report["board"] == TOY.name and set(report["groups"]) == {
        "kernel",
        "model data",
        "app",
        "port",
        "libgcc",
        "literals",
        "rest",
    }
    assert report["groups"]["port"]["flash"] > 500
    assert "toy-f405" in capsys.readouterr().out
    bin_dir = tmp_path / "bin"  # its flasher, with a stand-in pyocd on PATH that records its arguments
    bin_dir.mkdir()
    (bin_dir / "pyocd").write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "pyocd-args"}\n')
    (bin_dir / "pyocd").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert main(["flash", str(out), "--board", TOY.name]) == 0
    assert (tmp_path / "pyocd-args").read_text().split() == [
        "flash",
        "-t",
        "toychip",
        str(out / "tinylstm.elf"),
    ]


def test_an_unknown_board_lists_the_known_ones(export_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(export_dir), "--board", "no-such-board"]) == 2
    err = capsys.readouterr().err
    assert all(name in err for name in BOARDS) and len(err.strip().splitlines()) == 1
