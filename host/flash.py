"""Put firmware on a board: QEMU for the emulated STM32F405, st-flash / openocd / pyocd for real
STM32 boards, PlatformIO or esptool for the ESP32."""
from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path
from types import FrameType

from tinylstm.host.boards import QemuBoard
from tinylstm.trainer.errors import TinyLSTMError

STM32_TOOLS = ("st-flash", "openocd", "pyocd")
STM32_INSTALL = ("no STM32 flashing tool on PATH: install one of stlink-tools (sudo apt-get install stlink-tools: "
                 "st-flash), openocd (sudo apt-get install openocd) or pyocd (pip install pyocd)")
PYOCD_TARGETS = {"stm32f405": "stm32f405rg", "nucleo_f446re": "stm32f446retx"}


def _artifact(target: Path, suffix: str) -> Path:
    """target itself, or the firmware file with this suffix in a `tinylstm build` output directory."""
    found = target if target.is_file() else target / f"tinylstm{suffix}"
    if not found.is_file():
        raise TinyLSTMError(f"no firmware at {target}: pass the .elf/.bin or the `tinylstm build --out` directory")
    return found.with_suffix(suffix) if found.suffix != suffix else found


def stm32_command(elf: Path, board: str) -> list[str]:
    """The command that programs ``elf`` (and its .bin) with the first tool found on PATH."""
    for tool in STM32_TOOLS:
        exe = shutil.which(tool)
        if exe is None:
            continue
        if tool == "st-flash":
            return [exe, "--reset", "write", str(elf.with_suffix(".bin")), "0x08000000"]
        if tool == "openocd":
            return [exe, "-f", "interface/stlink.cfg", "-f", "target/stm32f4x.cfg",
                    "-c", f"program {elf} verify reset exit"]
        return [exe, "flash", "-t", PYOCD_TARGETS.get(board, "stm32f405rg"), str(elf)]
    raise TinyLSTMError(STM32_INSTALL)


def esp32_command(target: Path, port: str | None) -> list[str]:
    """`pio run -t upload` in a generated project, or esptool for a merged .bin."""
    if (target / "platformio.ini").is_file() or (target / "pio" / "platformio.ini").is_file():
        project = target if (target / "platformio.ini").is_file() else target / "pio"
        pio = shutil.which("pio") or shutil.which("platformio")
        if pio is None:
            raise TinyLSTMError("PlatformIO not found: pip install platformio (it downloads the ESP32 toolchain "
                                "on first use, so this needs network access)")
        return [pio, "run", "-d", str(project), "-e", "esp32dev", "-t", "upload",
                *(["--upload-port", port] if port else [])]
    if target.suffix == ".bin":
        esptool = shutil.which("esptool.py") or shutil.which("esptool")
        if esptool is None:
            raise TinyLSTMError("esptool not found: pip install esptool")
        if port is None:
            raise TinyLSTMError("esptool needs the serial port: pass --port /dev/ttyUSB0")
        return [esptool, "--chip", "esp32", "--port", port, "write_flash", "0x0", str(target)]
    raise TinyLSTMError(f"{target} is neither a PlatformIO project (from `tinylstm build --board esp32dev`) "
                        "nor a merged .bin")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # unwinds the QemuBoard context, which kills QEMU


def run_qemu(target: Path) -> None:
    """Start QEMU with the firmware and keep it running until Ctrl-C or SIGTERM (or the firmware exits).

    Both end QEMU too (a background `tinylstm flash ... &` ignores SIGINT, so scripts send SIGTERM)."""
    signal.signal(signal.SIGTERM, _terminate)
    with QemuBoard(_artifact(target, ".elf")) as board:
        print(board.url, flush=True)
        print("QEMU is waiting for the first client to connect before it boots the firmware; "
              f"e.g. tinylstm stream --port {board.url}. Ctrl-C stops QEMU.", flush=True)
        while True:
            try:
                code = board.wait(timeout=1.0)
            except TinyLSTMError:  # still running after a second
                continue
            print(f"firmware exited with status {code}")
            return


def flash(target: Path, board: str, port: str | None = None) -> None:
    if board == "qemu-stm32f405":
        run_qemu(target)
        return
    if board in ("stm32f405", "nucleo_f446re"):
        if board == "nucleo_f446re" and (target / "pio" / "platformio.ini").is_file():
            cmd = [shutil.which("pio") or "pio", "run", "-d", str(target / "pio"), "-e", board, "-t", "upload"]
        else:
            cmd = stm32_command(_artifact(target, ".elf"), board)
    elif board == "esp32dev":
        cmd = esp32_command(target, port)
    else:
        raise TinyLSTMError(f"unknown board {board!r}: qemu-stm32f405, stm32f405, nucleo_f446re or esp32dev")
    print("$ " + " ".join(cmd), flush=True)
    if subprocess.run(cmd, check=False).returncode != 0:
        hint = " (its first run downloads the platform: it needs network access)" if "pio" in Path(cmd[0]).name else ""
        raise TinyLSTMError(f"{Path(cmd[0]).name} failed{hint}, see its output above: "
                            "is the board connected and powered, and the port right?")
