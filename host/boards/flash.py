"""Put firmware on a board, the way its record says (host/boards/registry.py, ``Board.flasher``):

- ``qemu``: run the emulated board in QEMU until Ctrl-C or SIGTERM;
- ``stm32``: st-flash, openocd or pyocd, whichever is on PATH;
- ``platformio``: ``pio run -t upload`` in the project ``tinylstm build`` wrote;
- ``esp32``: the same, or esptool for a merged .bin.

First it refuses firmware built for another board (build.json, or a QEMU board's name in the image:
semihosting faults on a chip), and before ``pio run`` it checks that PlatformIO already has the
platform and toolchain packages, because without them pio downloads them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards import BOARDS, Board, QemuBoard, get_board
from tinylstm.host.boards.firmware import BUILD_STAMP
from tinylstm.host.boards.registry import check_elf_for, emulated_boards

STM32_TOOLS = ("st-flash", "openocd", "pyocd")
STM32_INSTALL = (
    "no STM32 flashing tool on PATH: install one of stlink-tools (sudo apt-get install stlink-tools: "
    "st-flash), openocd (sudo apt-get install openocd) or pyocd (pip install pyocd)"
)


FIRMWARE_SUFFIXES = (".elf", ".bin")


def _artifact(target: Path, suffix: str) -> Path:
    """target itself, or the firmware file with this suffix in a `tinylstm build` output directory."""
    found = target if target.is_file() else target / f"tinylstm{suffix}"
    if not found.is_file():
        raise TinyLSTMError(
            f"no firmware at {target}: pass the .elf/.bin or the `tinylstm build --out` directory"
        )
    if found.suffix not in FIRMWARE_SUFFIXES:
        raise TinyLSTMError(
            f"{target} is not firmware (not a .elf or .bin): pass the .elf/.bin or the `tinylstm build "
            "--out` directory"
        )
    paired = found.with_suffix(suffix)
    if not paired.is_file():
        raise TinyLSTMError(
            f"{target} has no {paired.name} next to it: pass the `tinylstm build --out` directory, which "
            "holds both"
        )
    return paired


def stm32_command(elf: Path, board: Board) -> list[str]:
    """The command that programs ``elf`` (and its .bin) with the first tool found on PATH."""
    for tool in STM32_TOOLS:
        exe = shutil.which(tool)
        if exe is None:
            continue
        if tool == "st-flash":
            return [exe, "--reset", "write", str(elf.with_suffix(".bin")), "0x08000000"]
        if tool == "openocd":
            return [
                exe,
                "-f",
                "interface/stlink.cfg",
                "-f",
                "target/stm32f4x.cfg",
                "-c",
                f"program {{{elf}}} verify reset exit",  # braced: a Tcl word, spaces and all
            ]
        return [exe, "flash", "-t", board.pyocd_target or "stm32f405rg", str(elf)]
    raise TinyLSTMError(STM32_INSTALL)


def _pio_project(target: Path) -> Path | None:
    for project in (target, target / "pio"):
        if (project / "platformio.ini").is_file():
            return project
    return None


def pio_core_dir() -> Path:
    """PlatformIO's core directory (platforms/, packages/): $PLATFORMIO_CORE_DIR or ~/.platformio."""
    return Path(os.environ.get("PLATFORMIO_CORE_DIR") or Path.home() / ".platformio")


def missing_pio_packages(board: Board) -> list[str]:
    """What `pio run` for ``board`` would download: its platform and packages, and PlatformIO's SCons."""
    core = pio_core_dir()
    return [p for p in (*board.pio_packages, "packages/tool-scons") if not (core / p).is_dir()]


def pio_command(project: Path, board: Board, port: str | None) -> list[str]:
    pio = shutil.which("pio") or shutil.which("platformio")
    if pio is None:
        raise TinyLSTMError(
            "PlatformIO not found: pip install platformio (its first run downloads the platform and "
            "toolchain, so it needs network access)"
        )
    missing = missing_pio_packages(board)
    if missing:
        raise TinyLSTMError(
            f"PlatformIO has not installed {', '.join(missing)} (in {pio_core_dir()}), so `pio run` would "
            f"download them: on a machine with network access run `pio pkg install -d {project} -e "
            f"{board.name}` once, then flash again"
        )
    return [
        pio,
        "run",
        "-d",
        str(project),
        "-e",
        board.name,
        "-t",
        "upload",
        *(["--upload-port", port] if port else []),
    ]


# where a chip's second-stage bootloader sits in flash, and its image header's chip id (ESP-IDF's
# esp_image_header_t: magic 0xE9 at byte 0, esp_chip_id_t at bytes 12-13, little-endian)
ESP_IMAGE_MAGIC = 0xE9
ESP_BOOTLOADER: dict[str, tuple[int, int]] = {
    "esp32": (0x1000, 0x0000),
    "esp32s2": (0x1000, 0x0002),
    "esp32c3": (0x0, 0x0005),
    "esp32s3": (0x0, 0x0009),
}


def check_merged_image(image: Path, chip: str) -> None:
    """Refuse a .bin that is not a merged flash image for ``chip`` (esptool writes it at 0x0, over the
    bootloader: an app-only image, another chip's or an ARM one would leave the board unbootable)."""
    offset, chip_id = ESP_BOOTLOADER[chip]
    data = image.read_bytes()[: offset + 16]
    header = data[offset:]
    fix = (
        f"pass the PlatformIO project `tinylstm build --board ...` wrote, or an image merged for {chip} with "
        f"`esptool.py --chip {chip} merge_bin` (bootloader at 0x{offset:x})"
    )
    if len(header) < 16 or header[0] != ESP_IMAGE_MAGIC:
        raise TinyLSTMError(
            f"{image} is not a merged {chip} flash image (no bootloader image header, magic 0xE9, at "
            f"0x{offset:x}), and esptool would write it over the bootloader at 0x0: {fix}"
        )
    found = int.from_bytes(header[12:14], "little")
    if found != chip_id:
        named = {i: c for c, (_, i) in ESP_BOOTLOADER.items()}.get(found, f"chip id {found}")
        raise TinyLSTMError(f"{image} is a flash image for {named}, not {chip}: {fix}")


def esp32_command(target: Path, board: Board, port: str | None) -> list[str]:
    """`pio run -t upload` in a generated project, or esptool for a merged .bin (checked first)."""
    project = _pio_project(target)
    if project is not None:
        return pio_command(project, board, port)
    if target.suffix == ".bin":
        esptool = shutil.which("esptool.py") or shutil.which("esptool")
        if esptool is None:
            raise TinyLSTMError("esptool not found: pip install esptool")
        if port is None:
            raise TinyLSTMError("esptool needs the serial port: pass --port /dev/ttyUSB0")
        chip = board.esptool_chip or "auto"
        if chip in ESP_BOOTLOADER:
            check_merged_image(target, chip)
        return [esptool, "--chip", chip, "--port", port, "write_flash", "0x0", str(target)]
    raise TinyLSTMError(
        f"{target} is neither a PlatformIO project (from `tinylstm build --board {board.name}`) "
        "nor a merged .bin"
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # unwinds the QemuBoard context, which kills QEMU


def run_qemu(target: Path, board: Board) -> None:
    """Start QEMU with the firmware and keep it running until Ctrl-C or SIGTERM (or the firmware exits).

    Both end QEMU too (a background `tinylstm flash ... &` ignores SIGINT, so scripts send SIGTERM)."""
    signal.signal(signal.SIGTERM, _terminate)
    stamp = build_stamp(target)
    # a host-fed firmware (the default) predicts only what it is sent
    feed = " --export EXPORT_DIR --feed held-out" if (stamp or {}).get("source", "host") == "host" else ""
    with QemuBoard(_artifact(target, ".elf"), board.emulator) as qemu:
        print(qemu.url, flush=True)
        print(
            "QEMU is waiting for the first client to connect before it boots the firmware; "
            f"e.g. tinylstm stream --port {qemu.url}{feed}. Ctrl-C stops QEMU.",
            flush=True,
        )
        while True:
            try:
                code = qemu.wait(timeout=1.0)
            except TinyLSTMError:  # still running after a second
                continue
            print(f"firmware exited with status {code}")
            return


def _run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    if subprocess.run(cmd, check=False).returncode != 0:
        hint = (
            " (its first run downloads the platform: it needs network access)"
            if "pio" in Path(cmd[0]).name
            else ""
        )
        raise TinyLSTMError(
            f"{Path(cmd[0]).name} failed{hint}, see its output above: "
            "is the board connected and powered, and the port right?"
        )


def _flash_stm32(target: Path, board: Board, port: str | None) -> None:
    _run(stm32_command(_artifact(target, ".elf"), board))


def _flash_platformio(target: Path, board: Board, port: str | None) -> None:
    project = _pio_project(target)
    if project is None:
        raise TinyLSTMError(
            f"{target} is not a PlatformIO project: run `tinylstm build EXPORT --board {board.name}` "
            "and pass its --out directory"
        )
    _run(pio_command(project, board, port))


FLASHERS: dict[str, Callable[[Path, Board, str | None], None]] = {
    "qemu": lambda target, board, port: run_qemu(target, board),
    "stm32": _flash_stm32,
    "platformio": _flash_platformio,
    "esp32": lambda target, board, port: _run(esp32_command(target, board, port)),
}


# the flashers that program (or boot) the build's ELF: it must be an ELF for the board's core
ELF_FLASHERS = ("qemu", "stm32")


def build_stamp(target: Path) -> dict | None:
    """The build.json of the `tinylstm build` output ``target`` is (or holds ``target``), if any."""
    for d in (target, target.parent, target.parent.parent):
        stamp = d / BUILD_STAMP
        if d.is_dir() and stamp.is_file():
            found = json.loads(stamp.read_text())
            return found if isinstance(found, dict) else None
    return None


def built_for(target: Path) -> str | None:
    """The board ``target`` was built for: its build.json, or the name of a QEMU board in the image."""
    stamp = build_stamp(target)
    if stamp is not None:
        board = stamp.get("board")
        return str(board) if board else None
    if target.is_file():
        image = target.read_bytes()
        for b in emulated_boards():
            if b.name.encode() + b"\0" in image:  # tl_hal_board_name() of a QEMU port
                return b.name
    return None


def flash(target: Path, board: str, port: str | None = None) -> None:
    """Program ``target`` (a `tinylstm build --out` directory or a firmware file) onto ``board``."""
    spec = get_board(board)
    if spec.flasher is None:
        raise TinyLSTMError(
            f"{board} is a package for another build system, not a board to flash: build and flash it "
            "there (see what `tinylstm build` printed)"
        )
    built = built_for(target)
    if built is not None and built != board:
        emulated = get_board(built).emulator is not None if built in BOARDS else False
        why = (
            " (a QEMU build: its semihosting exit faults on a chip)"
            if emulated and spec.emulator is None
            else ""
        )
        raise TinyLSTMError(
            f"{target} was built for {built}{why}, not {board}: pass --board {built}, or run `tinylstm "
            f"build EXPORT --board {board}` and flash that"
        )
    if port is not None and spec.flasher in ELF_FLASHERS:
        raise TinyLSTMError(
            f"--port {port}: {board} is not flashed over a serial port ("
            + (
                "QEMU makes its own socket, printed when it starts"
                if spec.flasher == "qemu"
                else f"{', '.join(STM32_TOOLS)} find the ST-LINK probe over USB"
            )
            + "): leave --port out, and give it to `tinylstm stream`"
        )
    if spec.flasher in ELF_FLASHERS:
        check_elf_for(_artifact(target, ".elf"), spec)  # before QEMU waits for a client or a probe writes
    FLASHERS[spec.flasher](target, spec, port)
