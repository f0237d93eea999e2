"""Assemble and build the TinyLSTM firmware for a board from an export directory.

The board's record (host/boards/registry.py) decides: a bare-metal board gets the kernel (csrc/) + the
export's tl_model.c + the app (firmware/app) + its port (+ tl_replay.c, held-out samples for the replay
source, when the firmware boots into replay or is asked for them), compiled with ``build_elf`` ->
ELF, BIN, map and a size report split into kernel / model data / app / port / libgcc; the other kinds
get a project for their build system (host/boards/packaging.py: PlatformIO, an ESP-IDF component, an Arduino
library), built on the user's machine. Either way the model is first checked to fit (host/boards/fit.py).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tinylstm.codegen.emit_c import build_settings, verify_emitted
from tinylstm.codegen.emit_replay import emit_replay
from tinylstm.codegen.heldout import HeldOut, load_held_out
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.store import export_layout, load_int_model
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards import SizeReport, build_elf, get_board, size_report
from tinylstm.host.boards.csources import csrc_dir, firmware_dir, kernel_sources
from tinylstm.host.boards.fit import check_fits
from tinylstm.host.boards.model_check import CHECKED_DEFINE, check_on_host, checked_value
from tinylstm.host.boards.packaging import PACKAGERS
from tinylstm.host.link.feed import required_rx_capacity
from tinylstm.host.link.protocol import MAX_OUTPUT_SIZE, Source, input_frame

ELF_NAME = "tinylstm"  # a bare-metal build's tinylstm.elf/.bin/.map
REPLAY_STEPS = 256  # held-out samples a replay firmware embeds unless told otherwise (--replay-steps)
# in every build's output directory: the board it was built for (host/boards/flash.py)
BUILD_STAMP = "build.json"
# the files a bare-metal build writes into its output directory (ELF_NAME's image, map and size report)
BUILD_FILES = (
    *(f"{ELF_NAME}{ext}" for ext in (".elf", ".bin", ".map")),
    "size-report.md",
    "size-report.json",
)


@dataclass
class FirmwareBuild:
    board: str
    out_dir: Path
    elf: Path | None = None  # bare-metal boards
    bin: Path | None = None
    sizes: SizeReport | None = None
    project: Path | None = None  # PlatformIO, ESP-IDF, Arduino library: the project directory
    state_bytes: int = 0  # the model's state buffer, in static RAM (tl_state_words)
    window_bytes: int = 0  # of which a bidirectional model's window of inputs (W x C int8)

    def state_line(self) -> str:
        """The state's RAM, as `build` prints it."""
        window = (
            f", of which the bidirectional window's inputs {self.window_bytes} B" if self.window_bytes else ""
        )
        return f"model state: {self.state_bytes} B of static RAM{window}"


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


def replay_steps(source: str, steps: int | None, window: int | None) -> int:
    """Held-out samples the firmware embeds for its replay source: ``steps`` when given (0: none), else
    REPLAY_STEPS when it boots into replay and none otherwise (a host-fed or sensor firmware carries no
    recording it does not run); a whole number of windows in window mode."""
    if steps is None:
        steps = REPLAY_STEPS if source == "replay" else 0
    if steps < 0:
        raise TinyLSTMError(f"--replay-steps {steps}: give a number of samples >= 0 (0: no replay data)")
    if steps == 0 and source == "replay":
        raise TinyLSTMError(
            "--source replay boots into the replay of embedded held-out data, but --replay-steps 0 embeds "
            "none: give --replay-steps N > 0 (or leave it out: 256)"
        )
    if steps and window:
        steps = max(window, steps // window * window)
    return steps


def write_replay(export_dir: Path, gen_dir: Path, steps: int, held: HeldOut) -> tuple[Path, Path]:
    """tl_replay.h/.c in gen_dir: the first ``steps`` samples of ``held`` (``replay_steps``)."""
    xq = held.stream(steps)
    return emit_replay(
        xq,
        held.model.model_hash,
        gen_dir,
        f"{len(xq)} {held.split} samples (the recorded split, in order) of {export_dir.name}.",
    )


def _source_define(source: str) -> str:
    names = [s.name.lower() for s in Source]
    if source not in names:  # exactly: "Replay" booted into replay, yet embedded no replay data
        raise TinyLSTMError(f"unknown input source {source!r}: choose {', '.join(names)}")
    return str(int(Source[source.upper()]))


def link_rx_capacity(input_size: int, output_size: int, input_bits: int) -> int:
    """The receive buffer the firmware needs for a model; refuses a model the serial link cannot carry (its
    samples travel in INPUT frames, an int16 input's in INPUT_S16)."""
    frame = input_frame(input_bits)
    if input_size > frame.MAX_INPUT_SIZE:
        raise TinyLSTMError(
            f"the model takes {input_size} inputs per step, but one {frame.TYPE.name} frame of the serial "
            f"protocol carries at most {frame.MAX_INPUT_SIZE}: the firmware could not be fed over the link. "
            "Reduce the input channels (or feed the board from its sensor source, a custom app)"
        )
    if output_size > MAX_OUTPUT_SIZE:
        raise TinyLSTMError(
            f"the model has {output_size} outputs per step, but one PRED frame of the serial protocol "
            "carries at "
            f"most {MAX_OUTPUT_SIZE}: reduce the outputs (classes or forecast horizon)"
        )
    return required_rx_capacity(input_size, input_bits)


def build_firmware(
    export_dir: Path,
    board: str,
    out_dir: Path,
    source: str = "host",
    defines: dict[str, str] | None = None,
    replay: int | None = None,
    data: str | None = None,
    test_data: str | None = None,
) -> FirmwareBuild:
    """Build (bare metal) or write (PlatformIO) the firmware of ``export_dir`` for ``board`` into
    ``out_dir``; ``replay``: held-out samples to embed for the replay source (``replay_steps``), read
    from the export's data files (``data``, ``test_data``: at their new paths, moved)."""
    spec = get_board(board)
    boot_source = _source_define(source)
    if source == "sensor" and spec.kind == "bare-metal":
        raise TinyLSTMError(
            f"--source sensor boots {board} into tl_sensor_read(), and this build links only its weak "
            "default (no sample, ever: the firmware would never predict): build a project for your board "
            "(--board nucleo_f446re, esp32dev, esp-idf or arduino-lib) and add your tl_sensor_read() there "
            "(firmware/app/tl_sensor.h)"
        )
    model, _ = load_int_model(export_dir)
    layout = export_layout(export_dir)
    rx = link_rx_capacity(model.input_size, model.output_size, model.input_bits)
    steps = replay_steps(source, replay, model.meta.window)
    if (data or test_data) and not steps:
        raise TinyLSTMError(
            "--data/--test-data give the held-out data a firmware embeds for its replay source, and this one "
            "embeds none: give --source replay or --replay-steps N, or leave them out"
        )
    held = load_held_out(export_dir, data, test_data) if steps else None  # before anything is written
    check_fits(model, spec, rx, steps * model.input_size * model.input_bits // 8, layout)
    model_c, _ = _model_files(export_dir)
    verify_emitted(model, export_dir, "model", layout)
    gen = out_dir / "gen"
    project = [] if spec.kind == "bare-metal" else [out_dir / PACKAGERS[spec.kind].directory]
    check_build_dirs(export_dir, out_dir, [gen, *project])
    settings = {
        "TL_APP_HAS_REPLAY": "1" if steps else "0",
        "TL_APP_BOOT_SOURCE": boot_source,
        **build_settings(model, layout),  # the int16-h steps, the w16 loops
        **(defines or {}),
    }
    try:
        return _write_firmware(
            export_dir, board, out_dir, gen, model, model_c, source, held, steps, settings, rx
        )
    except OSError as exc:  # a file where the build makes a directory further down, a full disk
        raise TinyLSTMError(f"cannot write the firmware into {out_dir} ({exc}); pick another --out") from None


def check_build_dirs(export_dir: Path, out_dir: Path, dirs: list[Path]) -> None:
    """Refuse, before anything is written, a build whose directories (``dirs``) are files, or whose gen/
    is the export directory itself (its tl_model.* would be copied onto themselves)."""
    for d in dirs:
        if d.exists() and not d.is_dir():
            raise TinyLSTMError(
                f"--out {out_dir}: {d} is a file, where the build writes a directory; move it or pick "
                "another output directory"
            )
    for f in BUILD_FILES:  # the linker's or the cleanup's error on a directory was pages long
        if (out_dir / f).is_dir():
            raise TinyLSTMError(
                f"--out {out_dir}: {out_dir / f} is a directory, where the build writes a file; move it or "
                "pick another output directory"
            )
    if export_dir.resolve() in {d.resolve() for d in dirs}:
        raise TinyLSTMError(
            f"--out {out_dir}: the build would write its {dirs[0].name}/ into the export directory "
            f"{export_dir} itself; pick another output directory"
        )
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / BUILD_STAMP).is_file():
        raise TinyLSTMError(  # a build writes and replaces files there (obj/, tinylstm.map, its project's)
            f"--out {out_dir} holds files that are not an earlier build's (no {BUILD_STAMP}), which the "
            "build would replace or delete: give a new or empty directory, or an earlier build's"
        )


def _write_firmware(
    export_dir: Path,
    board: str,
    out_dir: Path,
    gen: Path,
    model: IntModel,
    model_c: Path,
    source: str,
    held: HeldOut | None,
    steps: int,
    all_defines: dict[str, str],
    rx: int,
) -> FirmwareBuild:
    """build_firmware's writing and compiling, once everything it checks before writing has passed."""
    spec = get_board(board)
    state_bytes, window_bytes = 2 * model.state_words, model.window * model.input_size
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = {
        "board": board,
        "kind": spec.kind,
        "model_hash": f"0x{model.model_hash:08x}",
        "source": source,
        "replay_steps": steps,
    }
    (out_dir / BUILD_STAMP).write_text(
        json.dumps(stamp, indent=2) + "\n"
    )  # first: the directory is a build's
    gen.mkdir(exist_ok=True)
    shutil.copy2(export_dir / "tl_model.h", gen / "tl_model.h")
    shutil.copy2(model_c, gen / "tl_model.c")
    for stale in gen.glob("tl_replay.*"):  # an earlier build's into the same directory
        stale.unlink()
    replay_c = [write_replay(export_dir, gen, steps, held)[1]] if held is not None else []
    if spec.kind != "bare-metal":
        # a bare-metal build's image and size report there earlier are another board's (and model's)
        for name in BUILD_FILES:
            (out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "obj", ignore_errors=True)
        project = PACKAGERS[spec.kind].write(gen, out_dir, spec, model, all_defines, rx)
        return FirmwareBuild(
            board, out_dir, project=project, state_bytes=state_bytes, window_bytes=window_bytes
        )
    all_defines.setdefault("TL_UART_RX_BUF", str(rx))
    check_on_host(gen, all_defines, out_dir / "obj" / "model-check")
    all_defines[CHECKED_DEFINE] = checked_value(model.model_hash)  # passed: this model needs no check at boot
    app = firmware_dir() / "app"
    result = build_elf(
        [*kernel_sources(), gen / "tl_model.c", *replay_c, *app_sources(), app / "main.c"],
        [csrc_dir(), app, gen],
        all_defines,
        out_dir,
        ELF_NAME,
        spec,
    )
    sizes = size_report(result.elf, result.map, spec.size_groups(), spec.toolchain)
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
    return FirmwareBuild(
        board,
        out_dir,
        elf=result.elf,
        bin=result.bin,
        sizes=sizes,
        state_bytes=state_bytes,
        window_bytes=window_bytes,
    )
