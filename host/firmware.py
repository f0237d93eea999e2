"""Assemble and build the TinyLSTM firmware for a board from an export directory.

The board's record (host/boards/registry.py) decides: a bare-metal board gets the kernel (csrc/) + the
export's tl_model.c + the app (firmware/app) + tl_replay.c + its port, compiled with ``build_elf`` ->
ELF, BIN, map and a size report split into kernel / model data / app / port; a PlatformIO board gets a
complete PlatformIO project directory, which ``pio run`` builds on a machine with the platform installed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tinylstm.codegen.emit_replay import emit_replay
from tinylstm.codegen.store import load_int_model
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards import BOARDS, Board, SizeReport, build_elf, get_board, size_report
from tinylstm.host.csources import csrc_dir, firmware_dir, kernel_sources
from tinylstm.host.feed import required_rx_capacity
from tinylstm.host.heldout import load_held_out
from tinylstm.host.protocol import MAX_INPUT_SIZE, MAX_OUTPUT_SIZE, Source

REPLAY_STEPS = 256


@dataclass
class FirmwareBuild:
    board: str
    out_dir: Path
    elf: Path | None = None  # bare-metal boards
    bin: Path | None = None
    sizes: SizeReport | None = None
    project: Path | None = None  # PlatformIO boards: the project directory


def app_sources() -> list[Path]:
    """The board-independent app: protocol, app logic (main.c is for bare-metal ports only)."""
    app = firmware_dir() / "app"
    return [app / "tl_proto.c", app / "tl_app.c"]


def _model_files(export_dir: Path) -> tuple[Path, Path]:
    files = export_dir / "tl_model.c", export_dir / "tl_model.h"
    if not all(f.is_file() for f in files):
        raise TinyLSTMError(
            f"{export_dir} has no tl_model.c/.h: run `tinylstm export ... --out {export_dir}` "
            "(the firmware expects the default model name 'model')"
        )
    return files


def write_replay(export_dir: Path, gen_dir: Path, steps: int = REPLAY_STEPS) -> tuple[Path, Path]:
    """tl_replay.h/.c in gen_dir: the first held-out samples, a whole number of windows in window mode."""
    held = load_held_out(export_dir)
    if held.window:
        steps = max(held.window, steps // held.window * held.window)
    xq = held.stream(steps)
    return emit_replay(
        xq,
        held.model.model_hash,
        gen_dir,
        f"{len(xq)} held-out samples (recorded test split, in order) of {export_dir.name}.",
    )


def _source_define(source: str) -> str:
    try:
        return str(int(Source[source.upper()]))
    except KeyError:
        raise TinyLSTMError(f"unknown input source {source!r}: choose host, replay or sensor") from None


def link_rx_capacity(input_size: int, output_size: int) -> int:
    """The receive buffer the firmware needs for a model; refuses a model the serial link cannot carry."""
    if input_size > MAX_INPUT_SIZE:
        raise TinyLSTMError(
            f"the model takes {input_size} inputs per step, but one INPUT frame of the serial protocol "
            "carries at "
            f"most {MAX_INPUT_SIZE}: the firmware could not be fed over the link. Reduce the input channels "
            "(or feed the board from its sensor source, a custom app)"
        )
    if output_size > MAX_OUTPUT_SIZE:
        raise TinyLSTMError(
            f"the model has {output_size} outputs per step, but one PRED frame of the serial protocol "
            "carries at "
            f"most {MAX_OUTPUT_SIZE}: reduce the outputs (classes or forecast horizon)"
        )
    return required_rx_capacity(input_size)


def build_firmware(
    export_dir: Path, board: str, out_dir: Path, source: str = "host", defines: dict[str, str] | None = None
) -> FirmwareBuild:
    """Build (bare metal) or write (PlatformIO) the firmware of ``export_dir`` for ``board`` into
    ``out_dir``."""
    model_c, _ = _model_files(export_dir)
    model, _ = load_int_model(export_dir)
    rx = link_rx_capacity(model.input_size, model.output_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = out_dir / "gen"
    gen.mkdir(exist_ok=True)
    shutil.copy2(export_dir / "tl_model.h", gen / "tl_model.h")
    shutil.copy2(model_c, gen / "tl_model.c")
    _, replay_c = write_replay(export_dir, gen)
    all_defines = {"TL_APP_HAS_REPLAY": "1", "TL_APP_BOOT_SOURCE": _source_define(source), **(defines or {})}
    spec = get_board(board)
    if spec.kind == "platformio":
        return FirmwareBuild(
            board, out_dir, project=write_platformio(gen, out_dir / "pio", spec, all_defines, rx)
        )
    all_defines.setdefault("TL_UART_RX_BUF", str(rx))
    app = firmware_dir() / "app"
    result = build_elf(
        [*kernel_sources(), gen / "tl_model.c", replay_c, *app_sources(), app / "main.c"],
        [csrc_dir(), app, gen],
        all_defines,
        out_dir,
        "tinylstm",
        spec,
    )
    sizes = size_report(result.elf, result.map, spec.size_groups())
    (out_dir / "size-report.md").write_text(sizes.render() + "\n")
    (out_dir / "size-report.json").write_text(
        json.dumps(
            {
                "board": board,
                "flash": sizes.flash,
                "ram": sizes.ram,
                "stack": sizes.stack,
                "groups": {g.name: {"flash": g.flash, "ram": g.ram} for g in sizes.groups},
            },
            indent=2,
        )
        + "\n"
    )
    return FirmwareBuild(board, out_dir, elf=result.elf, bin=result.bin, sizes=sizes)


PLATFORMIO_INI = """\
; Generated by `tinylstm build --board {board}`. Build and flash: pio run -e {board} -t upload
; Then: tinylstm stream --port /dev/ttyUSB0 (USB-serial bridge) or /dev/ttyACM0 (ST-LINK VCP)
[platformio]
default_envs = {board}

[env]
framework = arduino
monitor_speed = 115200
; -ffp-contract=off: no fused multiply-add in the float input conversion (bit-exact with the host)
build_flags = -I src -ffp-contract=off {defines}
build_src_flags = -Wall -Wextra
"""

PLATFORMIO_ENV = """
[env:{name}]
platform = {platform}
board = {pio_board}
; the serial RX buffer is the receive capacity the board announces (credit flow control)
build_flags = ${{env.build_flags}} {flags}
"""


def write_platformio(gen: Path, project: Path, board: Board, defines: dict[str, str], rx: int) -> Path:
    """A PlatformIO project: platformio.ini (an [env:] per PlatformIO board), src/ with the kernel, model,
    replay data, app and Arduino HAL."""
    src = project / "src"
    src.mkdir(parents=True, exist_ok=True)
    app = firmware_dir() / "app"
    files = [
        *kernel_sources(),
        *csrc_dir().glob("*.h"),
        *gen.glob("tl_*.[ch]"),
        *app.glob("tl_*.[ch]"),
        firmware_dir() / "hal" / "tl_hal.h",
        firmware_dir() / "platformio" / "hal_arduino.cpp",
    ]
    for f in files:
        shutil.copy2(f, src / f.name)
    flags = " ".join(f"-D{k}={v}" for k, v in sorted(defines.items()))
    envs = "".join(
        PLATFORMIO_ENV.format(
            name=b.name,
            platform=b.pio_platform,
            pio_board=b.pio_board,
            flags=" ".join(b.pio_flags).format(rx=max(rx, b.rx_buffer_min)),
        )
        for b in BOARDS.values()
        if b.kind == "platformio"
    )
    (project / "platformio.ini").write_text(PLATFORMIO_INI.format(board=board.name, defines=flags) + envs)
    return project
