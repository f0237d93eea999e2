"""The Arduino outputs of `tinylstm build` compiled and linked against the real STM32duino core, for the
Nucleo-F446RE. Opt-in: TINYLSTM_STM32DUINO = an Arduino_Core_STM32 checkout (checked with release 2.12.0,
what the Arduino board manager installs; from 3.0 on with its submodule, `git clone --recursive`) and
TINYLSTM_CMSIS = a CMSIS_6 checkout (the core's CMSIS tool: 6.2.0 for 2.12.0); never run in CI, nothing
downloaded.

Both outputs build as arduino-cli builds a sketch (tests/arduino_platform.py): the core's platform.txt and
boards.txt recipes for board Nucleo_64, part NUCLEO_F446RE, with Debian's arm-none-eabi-gcc in place of
the core's xPack GCC, the whole core, the variant and the libraries the sources include (SrcWrapper,
IWatchdog) compiled, then linked with the core's linker scripts and its --unresolved-symbols=report-all:

- the PlatformIO project (`--board nucleo_f446re`): its src/ as the sketch, the platformio.ini build_flags
  on every file as PlatformIO passes them, its build_src_flags and -Werror on ours (PlatformIO's STM32duino
  builder is its own script; the core, the flags of the part and the linker scripts are the same);
- the Arduino library (`--board arduino-lib`): installed as a user library, its example sketch built, ours
  with -Wall -Wextra -Werror. A library cannot pass -ffp-contract=off, so its float input conversion is
  checked for fused multiply-adds (the Cortex-M4F has them), which would round differently from the host.

What the ELF must hold: setup/loop, the app and the Arduino HAL, the HardFault handler of hal_arduino.cpp
(not the core's weak one) and only the model's cell; the core's linker script, sized from boards.txt, makes a
firmware over the part's flash or RAM a link error. The compiler is Debian's arm-none-eabi-gcc (12.2 here),
not the core's xPack GCC (14.2 for 2.12.0).
Needs arm-none-eabi-g++ and its libstdc++ (apt-get install gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib).
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from arduino_platform import Platform, SketchBuild, build_sketch
from firmware_fixtures import train_and_export

from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.firmware import build_firmware
from tinylstm.host.boards.toolchain import find_tool, run_tool

CORE = os.environ.get("TINYLSTM_STM32DUINO")
CMSIS = os.environ.get("TINYLSTM_CMSIS")
BOARD, MENUS = "Nucleo_64", {"pnum": "NUCLEO_F446RE"}
ENV = "nucleo_f446re"  # the PlatformIO environment of that board
WARNINGS = ["-Wall", "-Wextra", "-Werror"]
FUSED = re.compile(r"\bvfn?m[as]\.f", re.I)  # VFMA, VFMS, VFNMA, VFNMS: one rounding for a * b + c

pytestmark = pytest.mark.skipif(
    not CORE,
    reason="opt-in: set TINYLSTM_STM32DUINO to an Arduino_Core_STM32 checkout and TINYLSTM_CMSIS to a "
    "CMSIS_6 checkout to compile and link the PlatformIO project and the Arduino library for the "
    "Nucleo-F446RE against the real STM32duino core",
)


def _platform(sketch: Path, build: Path) -> Platform:
    assert CORE is not None
    core = Path(CORE)
    gxx = shutil.which("arm-none-eabi-g++")
    libstdcxx = gxx and Path(
        subprocess.run([gxx, "-print-file-name=libstdc++.a"], capture_output=True, text=True).stdout.strip()
    )
    missing = [
        what
        for what, ok in (
            ("arm-none-eabi-g++ (apt-get install gcc-arm-none-eabi)", gxx),
            (
                "its libstdc++ (apt-get install libstdc++-arm-none-eabi-newlib)",
                libstdcxx and libstdcxx.is_absolute(),
            ),
            (
                f"TINYLSTM_CMSIS: a CMSIS_6 checkout with CMSIS/Core/Include/core_cm4.h (now {CMSIS!r})",
                CMSIS and (Path(CMSIS) / "CMSIS/Core/Include/core_cm4.h").is_file(),
            ),
            (
                f"an STM32duino core at TINYLSTM_STM32DUINO={CORE} (platform.txt, cores/arduino/Arduino.h)",
                (core / "platform.txt").is_file() and (core / "cores/arduino/Arduino.h").is_file(),
            ),
            (
                "the core's cores/arduino/api submodule (git submodule update --init)",
                not (core / ".gitmodules").is_file() or (core / "cores/arduino/api/ArduinoAPI.h").is_file(),
            ),
        )
        if not ok
    ]
    if missing:
        pytest.fail(f"TINYLSTM_STM32DUINO is set but this machine lacks: {'; '.join(missing)}")
    assert CMSIS is not None
    # the CMSIS tool's name changes with the core's version (CMSIS-6.2.0 for 2.12.0): every one named
    names = set(re.findall(r"runtime\.tools\.(CMSIS-[\d.]+)\.path", (core / "platform.txt").read_text()))
    return Platform.load(core, "stm32", BOARD, MENUS, {n: Path(CMSIS) for n in names}, sketch, build)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_and_export(tmp_path_factory.mktemp("arduino-model"))


def disassembly(obj: Path) -> str:
    return run_tool([find_tool("objdump"), "-d", obj], f"disassembling {obj.name}")


def check_firmware(build: SketchBuild, platform: Platform) -> None:
    symbols = {}
    for line in run_tool([find_tool("nm"), build.elf], "listing the firmware's symbols").splitlines():
        parts = line.split()
        if len(parts) == 3:
            symbols[parts[2]] = parts[1]
    for name in ("setup", "loop", "tl_app_init", "tl_app_poll", "tl_hal_init", "tl_lstm_layer_step"):
        assert symbols.get(name) == "T", f"{name} is not defined in the firmware"
    # hal_arduino.cpp's handler (reports ERROR FAULT), not the core's weak default loop
    kind = symbols.get("HardFault_Handler")
    assert kind == "T", f"HardFault_Handler is {kind!r} (W: the core's weak default), not hal_arduino.cpp's"
    assert not {"tl_gru_layer_step", "tl_rnn_layer_step"} & set(symbols), "cells the model does not run"
    # the core's C recipe fuses a * b + c: the check of tl_input.c below would see a fused multiply-add
    probe = build.elf.parent / "fma_probe.c"
    probe.write_text("float tl_probe(float a, float b, float c) { return a * b + c; }\n")
    probe_obj = probe.with_suffix(".o")
    compile_probe = platform.command("recipe.c.o.pattern", source_file=str(probe), object_file=str(probe_obj))
    run_tool([*compile_probe], "compiling the fused multiply-add probe")
    assert FUSED.findall(disassembly(probe_obj)), "no fused a * b + c"
    (input_obj,) = [o for s, o in build.objects.items() if s.name == "tl_input.c"]
    fused = FUSED.findall(disassembly(input_obj))
    assert not fused, f"tl_input.c fuses its float arithmetic ({fused}): the host rounds each operation"


def platformio_flags(ini: Path, env: str) -> tuple[list[str], list[str]]:
    """(build_flags, build_src_flags) of ``env`` in a platformio.ini, ${env.*} expanded, include paths
    relative to the project made absolute (PlatformIO builds in the project's folder)."""
    cfg = configparser.ConfigParser(interpolation=configparser.ExtendedInterpolation())
    # PlatformIO's ${env.key} is the [env] section's key: configparser's ${section:key}
    text = ini.read_text().replace("${env.", "${common_env:").replace("[env]", "[common_env]")
    cfg.read_string(text)
    section = cfg[f"env:{env}"]

    def flags(key: str) -> list[str]:  # the environment's own value, else [env]'s (as PlatformIO reads it)
        words = shlex.split(section.get(key, fallback=cfg.get("common_env", key, fallback="")))
        out = []
        for k, word in enumerate(words):
            if word == "-I":  # "-I src": the path is the next word
                continue
            if k and words[k - 1] == "-I":
                word = f"-I{word}"
            if word.startswith("-I") and not Path(word[2:]).is_absolute():
                word = f"-I{ini.parent / word[2:]}"
            out.append(word)
        return out

    return flags("build_flags"), flags("build_src_flags")


def test_platformio_project_links_with_stm32duino(export_dir: Path, tmp_path: Path) -> None:
    project = build_firmware(export_dir, ENV, tmp_path / "fw").project
    build_flags, src_flags = platformio_flags(project / "platformio.ini", ENV)
    src = project / "src"
    platform = _platform(src, tmp_path / "build")
    sources = sorted(p for p in src.iterdir() if p.suffix in (".c", ".cpp"))
    build = build_sketch(platform, sources, {}, build_flags, src_flags + WARNINGS, set(sources))
    check_firmware(build, platform)


def test_arduino_library_links_with_stm32duino(export_dir: Path, tmp_path: Path) -> None:
    library = build_firmware(export_dir, "arduino-lib", tmp_path / "fw").project
    src = library / "src"
    (sketch,) = sorted((library / "examples").glob("*/*.ino"))
    platform = _platform(sketch.parent, tmp_path / "build")
    headers = {h.name: src for h in src.glob("*.h")}
    own = {p for p in src.iterdir() if p.suffix in (".c", ".cpp")}
    build = build_sketch(platform, [sketch], headers, [], WARNINGS, own)
    check_firmware(build, platform)


def test_the_library_refuses_a_receive_buffer_its_model_cannot_be_fed_through(tmp_path: Path) -> None:
    """STM32duino's serial buffer is 64 B unless the build sets SERIAL_RX_BUFFER_SIZE: one INPUT frame of 20
    int8 inputs and the control reserve do not fit, and the host refused to feed such a board at run time
    with advice to rebuild that could not help. The library now stops the compile and names the flag."""
    import numpy as np

    from tinylstm.codegen.export import ModelSource, export
    from tinylstm.trainer.data import load_dataset
    from tinylstm.trainer.train import TrainConfig, fit

    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "wide.npz", X=rng.standard_normal((24, 8, 20)).astype(np.float32), y=np.arange(24) % 2
    )
    run = fit(
        load_dataset(str(tmp_path / "wide.npz")),
        TrainConfig(hidden=4, epochs=1, progress=False),
        tmp_path / "r",
    )
    export(ModelSource(str(run.checkpoint_path)), tmp_path / "export")
    library = build_firmware(tmp_path / "export", "arduino-lib", tmp_path / "fw").project
    src = library / "src"
    (sketch,) = sorted((library / "examples").glob("*/*.ino"))
    headers = {h.name: src for h in src.glob("*.h")}
    own = {p for p in src.iterdir() if p.suffix in (".c", ".cpp")}
    with pytest.raises(TinyLSTMError, match="build with -DSERIAL_RX_BUFFER_SIZE=256"):
        build_sketch(_platform(sketch.parent, tmp_path / "b1"), [sketch], headers, [], WARNINGS, own)
    flags = ["-DSERIAL_RX_BUFFER_SIZE=256"]  # what a build_opt.h beside the sketch adds to every file
    build = build_sketch(_platform(sketch.parent, tmp_path / "b2"), [sketch], headers, flags, WARNINGS, own)
    check_firmware(build, _platform(sketch.parent, tmp_path / "b2"))
