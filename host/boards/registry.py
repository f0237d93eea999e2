"""Every board TinyLSTM builds for, one record each: what build, flash, the size report and the CLI read.

A bare-metal board is built here with a cross compiler into an ELF (its port: ``firmware/ports/<port>``,
startup, linker script, HAL); a PlatformIO board gets a PlatformIO project that ``pio run`` builds (one
``[env:<name>]``, the Arduino HAL); ``esp-idf`` writes an ESP-IDF component and ``arduino-lib`` an
Arduino library (host/boards/packaging.py). Every record states the flash and RAM the firmware may use, and
``tinylstm build`` refuses a model that cannot fit (host/boards/fit.py). ``flasher`` names how ``tinylstm
flash`` programs it (host/boards/flash.py: ``qemu`` runs the emulator, ``stm32`` st-flash/openocd/pyocd,
``platformio`` pio's upload, ``esp32`` pio or esptool). A bare-metal board names its cross
``Toolchain`` and, when it runs in QEMU, its ``Emulator``. Adding a board is adding a record here (and,
for a new chip family, a port): docs/porting.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import firmware_dir

CORTEX_M4F = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
# the ESP32-C3/C6/H2 instruction set; -msmall-data-limit=0: no gp-relative small data (the port sets no gp)
RV32IMC = ("-march=rv32imc", "-mabi=ilp32", "-msmall-data-limit=0")
KINDS = ("bare-metal", "platformio", "esp-idf", "arduino-lib")
FLASHERS = ("qemu", "stm32", "platformio", "esp32")


@dataclass(frozen=True)
class Toolchain:
    """A GNU cross toolchain: ``<prefix>gcc``, ``<prefix>size``, ... and how to install it."""

    prefix: str
    apt_packages: tuple[str, ...]
    elf_machine: int  # e_machine of the ELF files it links (a --qemu ELF is matched to its board by it)
    # False: no C library headers; builds get -ffreestanding and firmware/ports/common/freestanding
    has_libc: bool = True

    def install_hint(self) -> str:
        return f"on Debian/Ubuntu: sudo apt-get install {' '.join(self.apt_packages)}"


ARM_GCC = Toolchain("arm-none-eabi-", ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi"), elf_machine=40)
# Debian's package has no libc (picolibc-riscv64-unknown-elf is about 1 GB): none is needed
RISCV_GCC = Toolchain("riscv64-unknown-elf-", ("gcc-riscv64-unknown-elf",), elf_machine=243, has_libc=False)


@dataclass(frozen=True)
class Core:
    """A CPU core and how code for it is compiled here (the bare-metal build, the compile gates)."""

    name: str
    toolchain: Toolchain | None  # its GNU cross toolchain; None: none here (Xtensa: host/targets/xtensa.py)
    cpu_flags: tuple[str, ...] = ()  # compile and link
    # cycles per instruction assumed to turn counted instructions into time (benchmarks/bench_kernel.py):
    # an assumption, not a measurement (flash wait states and caches decide it on a chip)
    cpi_assumed: float = 1.0


# Cortex-M4 with the STM32 ART flash accelerator: about one cycle per instruction, a little more for
# loads, multiplies and taken branches
CORE_CORTEX_M4F = Core("cortex-m4f", ARM_GCC, CORTEX_M4F, cpi_assumed=1.25)
# ESP32-C3: single-issue, code and constants through a 16 KB flash cache
CORE_RV32IMC = Core("rv32imc", RISCV_GCC, RV32IMC, cpi_assumed=1.5)  # ESP32-C3/C6/H2
# ESP32: clang-22's esp32 target compiles it (host/targets/xtensa.py)
CORE_XTENSA_LX6 = Core("xtensa-lx6", None)


@dataclass(frozen=True)
class Emulator:
    """How QEMU runs a board: the first -serial is the board's UART (host/boards/qemu.py)."""

    system: str  # the qemu-system-* executable
    machine: str  # its -M value
    args: tuple[str, ...] = ()  # what else the machine needs (firmware loading, semihosting)
    apt_package: str = ""

    def install_hint(self) -> str:
        return f"on Debian/Ubuntu: sudo apt-get install {self.apt_package or self.system}"


QEMU_NETDUINOPLUS2 = Emulator(
    "qemu-system-arm", "netduinoplus2", ("-semihosting-config", "enable=on,target=native"), "qemu-system-arm"
)
# -bios none: no OpenSBI; the ELF is loaded where it is linked and run from 0x80000000 in M-mode
QEMU_RISCV_VIRT = Emulator("qemu-system-riscv32", "virt", ("-bios", "none"), "qemu-system-misc")


@dataclass(frozen=True)
class Board:
    name: str  # the --board value
    description: str
    kind: Literal["bare-metal", "platformio", "esp-idf", "arduino-lib"]
    flash_bytes: int  # program flash the firmware may take (ESP32: the app partition)
    ram_bytes: int  # RAM for static data, the heap the framework takes and the stack
    flasher: str | None  # one of FLASHERS; None: a package for another build system, not flashed here
    # bare metal: a port in firmware/ports/<port> (plus firmware/ports/common, shared by every port)
    port: str | None = None
    port_sources: tuple[str, ...] = ()  # file names in the port directory
    linker_script: str | None = None  # file name in the port directory
    core: Core | None = None  # None: a package for several cores (ESP-IDF, the Arduino library)
    defines: dict[str, str] = field(default_factory=dict)
    emulator: Emulator | None = None  # when the board runs in QEMU
    cpu_hz: int = 0  # the core clock the firmware `build` makes runs at (0: an emulator or a package)
    pyocd_target: str | None = None  # pyocd's target name for the chip (flasher "stm32")
    # PlatformIO
    pio_platform: str | None = None
    pio_board: str | None = None
    pio_flags: tuple[str, ...] = ()  # extra build_flags of its [env:] section; {rx} = the receive buffer size
    # what `pio run` needs in PlatformIO's core directory (platforms/ and packages/): without them it
    # downloads, so `tinylstm flash` checks first (host/boards/flash.py)
    pio_packages: tuple[str, ...] = ()
    esptool_chip: str | None = None  # esptool's --chip for a merged .bin (flasher "esp32")
    rx_buffer_min: int = 0  # the smallest receive buffer the port allocates (bytes)
    # the framework's own footprint (Arduino core, ESP-IDF), approximate: what an empty application with
    # a serial port takes on that framework; 0 for bare metal, where the link measures everything
    framework_flash_bytes: int = 0
    framework_ram_bytes: int = 0

    @property
    def toolchain(self) -> Toolchain:
        if self.core is None or self.core.toolchain is None:
            what = f"its {self.core.name} core" if self.core else "a package for several cores"
            raise TinyLSTMError(f"board {self.name}: no GNU toolchain here for {what}")
        return self.core.toolchain

    @property
    def cpu_flags(self) -> tuple[str, ...]:
        return () if self.core is None else self.core.cpu_flags

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
            groups["port"] = [f"*/{self.port}/*.o", "*/common/*.o"]
        groups["libgcc"] = ["*libgcc.a*"]  # the compiler's runtime: soft float, 64-bit division
        return groups


def _stm32f4(
    name: str,
    description: str,
    defines: dict[str, str],
    emulator: Emulator | None,
    flasher: str,
    cpu_hz: int = 0,
) -> Board:
    return Board(
        name=name,
        description=description,
        kind="bare-metal",
        flash_bytes=1024 * 1024,
        ram_bytes=128 * 1024,
        flasher=flasher,
        port="stm32f4",
        port_sources=("startup.c", "tl_hal_stm32f4.c"),
        linker_script="stm32f4.ld",
        core=CORE_CORTEX_M4F,
        defines=defines,
        emulator=emulator,
        cpu_hz=cpu_hz,
        pyocd_target="stm32f405rg",
    )


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        _stm32f4(
            "qemu-stm32f405",
            "STM32F405 emulated by QEMU (netduinoplus2), UART on a local TCP port",
            {"TL_QEMU": "1", "TL_SEMIHOSTING": "1"},
            QEMU_NETDUINOPLUS2,
            "qemu",
        ),
        Board(
            name="qemu-riscv32",
            description="RV32IMC (the ESP32-C3's instruction set) on QEMU's virt machine, 16550 UART on a "
            "local TCP port",
            kind="bare-metal",
            flash_bytes=1280 * 1024,  # the ESP32-C3's default app partition: the linker script's FLASH
            ram_bytes=400 * 1024,  # and its 400 KB SRAM
            flasher="qemu",
            port="riscv_virt",
            port_sources=("startup.c", "tl_hal_riscv_virt.c"),
            linker_script="riscv_virt.ld",
            core=CORE_RV32IMC,
            emulator=QEMU_RISCV_VIRT,
        ),
        _stm32f4(
            "stm32f405",
            "STM32F405/F407 board, USART1 on PA9/PA10 (bare metal)",
            {},
            None,
            "stm32",
            16_000_000,  # the reset clock (HSI) the port runs at: it never starts the PLL (its README)
        ),
        Board(
            name="nucleo_f446re",
            description="ST Nucleo-F446RE, ST-LINK virtual COM port (PlatformIO, STM32duino)",
            kind="platformio",
            flash_bytes=512 * 1024,
            ram_bytes=128 * 1024,
            flasher="platformio",
            pio_platform="ststm32",
            pio_board="nucleo_f446re",
            core=CORE_CORTEX_M4F,
            cpu_hz=180_000_000,
            pyocd_target="stm32f446retx",
            pio_flags=("-DSERIAL_RX_BUFFER_SIZE={rx}",),
            pio_packages=(
                "platforms/ststm32",
                "packages/framework-arduinoststm32",
                "packages/toolchain-gccarmnoneeabi",
            ),
            framework_flash_bytes=16 * 1024,
            framework_ram_bytes=2 * 1024,
        ),
        Board(
            name="esp32dev",
            description="ESP32 DevKit (Xtensa LX6), UART0 on the USB bridge (PlatformIO, arduino-esp32)",
            kind="platformio",
            flash_bytes=1280 * 1024,  # arduino-esp32's default partition table: app0 is 1.25 MB
            ram_bytes=320 * 1024,
            flasher="esp32",
            pio_platform="espressif32",
            pio_board="esp32dev",
            core=CORE_XTENSA_LX6,
            cpu_hz=240_000_000,
            pio_flags=("-DTL_RX_CAPACITY={rx}",),
            pio_packages=(
                "platforms/espressif32",
                "packages/framework-arduinoespressif32",
                "packages/toolchain-xtensa-esp32",
            ),
            esptool_chip="esp32",
            rx_buffer_min=1024,
            framework_flash_bytes=280 * 1024,
            framework_ram_bytes=24 * 1024,
        ),
        Board(
            name="esp32-c3-devkitm-1",
            description="ESP32-C3-DevKitM-1 (RISC-V RV32IMC), USB-serial bridge (PlatformIO, arduino-esp32)",
            kind="platformio",
            flash_bytes=1280 * 1024,
            ram_bytes=320 * 1024,  # of the 400 KB SRAM, 16 KB are the flash cache and the rest is shared
            flasher="esp32",
            pio_platform="espressif32",
            pio_board="esp32-c3-devkitm-1",
            core=CORE_RV32IMC,
            cpu_hz=160_000_000,
            pio_flags=("-DTL_RX_CAPACITY={rx}",),
            pio_packages=(
                "platforms/espressif32",
                "packages/framework-arduinoespressif32",
                "packages/toolchain-riscv32-esp",
            ),
            esptool_chip="esp32c3",
            rx_buffer_min=1024,
            framework_flash_bytes=260 * 1024,
            framework_ram_bytes=24 * 1024,
        ),
        Board(
            name="esp-idf",
            description="an ESP-IDF component (CMakeLists.txt, idf_component.yml) with an example app, "
            "any ESP32 chip; idf.py build flash",
            kind="esp-idf",
            flash_bytes=1024 * 1024,  # ESP-IDF's default "single factory app" partition
            ram_bytes=320 * 1024,
            flasher=None,
            rx_buffer_min=1024,
            framework_flash_bytes=180 * 1024,
            framework_ram_bytes=20 * 1024,
        ),
    )
}


def _arduino_library() -> Board:
    """The Arduino library runs on the cores hal_arduino.cpp supports: it must fit the smallest of
    the Arduino boards above."""
    arduino = [b for b in BOARDS.values() if b.kind == "platformio"]
    small = min(arduino, key=lambda b: b.flash_bytes - b.framework_flash_bytes)
    return Board(
        name="arduino-lib",
        description="an Arduino library (library.properties, src/, an example sketch) for arduino-esp32 "
        f"and STM32duino; sized for the smallest of {', '.join(b.name for b in arduino)}",
        kind="arduino-lib",
        flash_bytes=small.flash_bytes,
        ram_bytes=min(b.ram_bytes for b in arduino),
        flasher=None,
        rx_buffer_min=max(b.rx_buffer_min for b in arduino),
        framework_flash_bytes=small.framework_flash_bytes,
        framework_ram_bytes=max(b.framework_ram_bytes for b in arduino),
    )


BOARDS[_arduino_library().name] = _arduino_library()


def board_names() -> list[str]:
    """The --board choices, in the registry's order."""
    return list(BOARDS)


def emulated_boards() -> list[Board]:
    """The boards QEMU runs (flasher "qemu"), in the registry's order."""
    return [b for b in BOARDS.values() if b.emulator is not None and b.flasher == "qemu"]


def elf_machine(elf: Path) -> int:
    """An ELF file's e_machine (ARM: 40, RISC-V: 243); refuses a file that is not an ELF."""
    try:
        head = elf.read_bytes()[:20]
    except OSError as exc:
        raise TinyLSTMError(f"cannot read firmware {elf}: {exc.strerror}") from None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        raise TinyLSTMError(f"{elf} is not an ELF file: pass the .elf that `tinylstm build` wrote")
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def check_elf_for(elf: Path, board: Board) -> None:
    """Refuse ``elf`` unless it is an ELF for ``board``'s core (its toolchain's e_machine)."""
    machine, want = elf_machine(elf), board.toolchain.elf_machine
    if machine != want:
        raise TinyLSTMError(
            f"{elf} is built for ELF machine {machine}, not {board.name}'s ({want}): "
            f"run `tinylstm build EXPORT --board {board.name}` and flash that"
        )


def board_for_elf(elf: Path) -> Board:
    """The emulated board an ELF was built for, told by its e_machine (ARM: 40, RISC-V: 243)."""
    machine = elf_machine(elf)
    for b in emulated_boards():
        if b.toolchain.elf_machine == machine:
            return b
    names = ", ".join(b.name for b in emulated_boards())
    raise TinyLSTMError(f"{elf} is built for ELF machine {machine}, which no QEMU board runs ({names})")


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise TinyLSTMError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}") from None
