"""Every board TinyLSTM builds for, one record each: what build, flash, the size report and the CLI read.

A bare-metal board is built here with a cross compiler into an ELF (its port: ``firmware/ports/<port>``,
startup, linker script, HAL); a PlatformIO board gets a PlatformIO project that ``pio run`` builds (one
``[env:<name>]``, the Arduino HAL). ``flasher`` names how ``tinylstm flash`` programs it (host/flash.py:
``qemu`` runs the emulator, ``stm32`` st-flash/openocd/pyocd, ``platformio`` pio's upload, ``esp32``
pio or esptool). Adding a board is adding a record here (and, for a new chip family, a port):
docs/porting.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tinylstm.errors import TinyLSTMError
from tinylstm.host.csources import firmware_dir

CORTEX_M4F = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
KINDS = ("bare-metal", "platformio")
FLASHERS = ("qemu", "stm32", "platformio", "esp32")


@dataclass(frozen=True)
class Board:
    name: str  # the --board value
    description: str
    kind: Literal["bare-metal", "platformio"]
    flash_bytes: int  # program flash the firmware may take
    ram_bytes: int  # RAM for static data and the stack
    flasher: str  # one of FLASHERS
    # bare metal: a port in firmware/ports/<port>
    port: str | None = None
    port_sources: tuple[str, ...] = ()  # file names in the port directory
    linker_script: str | None = None  # file name in the port directory
    cpu_flags: tuple[str, ...] = ()
    defines: dict[str, str] = field(default_factory=dict)
    qemu_machine: str | None = None  # QEMU -M value when the board runs in QEMU
    pyocd_target: str | None = None  # pyocd's target name for the chip (flasher "stm32")
    # PlatformIO
    pio_platform: str | None = None
    pio_board: str | None = None
    pio_flags: tuple[str, ...] = ()  # extra build_flags of its [env:] section; {rx} = the receive buffer size
    rx_buffer_min: int = 0  # the smallest receive buffer the port allocates (bytes)

    @property
    def port_dir(self) -> Path:
        if self.port is None:
            raise TinyLSTMError(f"board {self.name} has no bare-metal port")
        return firmware_dir() / "ports" / self.port

    def size_groups(self) -> dict[str, list[str]]:
        """Size-report groups, first match wins (object path or symbol name); everything else is "rest"."""
        groups = {
            "kernel": ["*/csrc/*.o"],
            "model data": ["*/tl_model.o", "*/tl_replay.o"],
            "app": ["*/app/*.o"],
        }
        if self.port is not None:
            groups["port"] = [f"*/{self.port}/*.o"]
        return groups


def _stm32f4(
    name: str, description: str, defines: dict[str, str], qemu_machine: str | None, flasher: str
) -> Board:
    return Board(
        name=name,
        description=description,
        kind="bare-metal",
        flash_bytes=1024 * 1024,
        ram_bytes=128 * 1024,
        flasher=flasher,
        port="stm32f4",
        port_sources=("startup.c", "tl_hal_stm32f4.c", "libc_min.c"),
        linker_script="stm32f4.ld",
        cpu_flags=CORTEX_M4F,
        defines=defines,
        qemu_machine=qemu_machine,
        pyocd_target="stm32f405rg",
    )


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        _stm32f4(
            "qemu-stm32f405",
            "STM32F405 emulated by QEMU (netduinoplus2), UART on a local TCP port",
            {"TL_QEMU": "1", "TL_SEMIHOSTING": "1"},
            "netduinoplus2",
            "qemu",
        ),
        _stm32f4("stm32f405", "STM32F405/F407 board, USART1 on PA9/PA10 (bare metal)", {}, None, "stm32"),
        Board(
            name="nucleo_f446re",
            description="ST Nucleo-F446RE, ST-LINK virtual COM port (PlatformIO, STM32duino)",
            kind="platformio",
            flash_bytes=512 * 1024,
            ram_bytes=128 * 1024,
            flasher="platformio",
            pio_platform="ststm32",
            pio_board="nucleo_f446re",
            pyocd_target="stm32f446retx",
            pio_flags=("-DSERIAL_RX_BUFFER_SIZE={rx}",),
        ),
        Board(
            name="esp32dev",
            description="ESP32 DevKit, UART0 on the USB bridge (PlatformIO, arduino-esp32)",
            kind="platformio",
            flash_bytes=1280 * 1024,
            ram_bytes=320 * 1024,
            flasher="esp32",
            pio_platform="espressif32",
            pio_board="esp32dev",
            pio_flags=("-DTL_RX_CAPACITY={rx}",),
            rx_buffer_min=1024,
        ),
    )
}


def board_names() -> list[str]:
    """The --board choices, in the registry's order."""
    return list(BOARDS)


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise TinyLSTMError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}") from None
