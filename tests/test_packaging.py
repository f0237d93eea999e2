"""The projects `tinylstm build` writes for other build systems, checked against their documented formats:
PlatformIO (platformio.ini, `pio project config` offline), an ESP-IDF component (CMakeLists.txt with
idf_component_register, idf_component.yml) and an Arduino library (library.properties 1.5 format, src/,
examples/). Their portable C (kernel, model, app) is compiled for the board's core with -Werror; of the
framework HALs, the ESP-IDF one by the opt-in tests/test_frameworks.py, the Arduino one against STM32duino by
the opt-in tests/test_arduino_stm32.py, against arduino-esp32 not here (docs/boards.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from firmware_fixtures import Trained, trained_firmware

from tinylstm.host.boards import BOARDS, get_board
from tinylstm.host.boards.firmware import build_firmware
from tinylstm.host.boards.registry import CORE_RV32IMC, Core
from tinylstm.host.boards.toolchain import COMMON_PORT_DIR, find_tool
from tinylstm.host.targets import xtensa

PIO_BOARDS = [b.name for b in BOARDS.values() if b.kind == "platformio"]
FRAMEWORK_HALS = {"hal_arduino.cpp", "main_arduino.cpp", "tl_hal_espidf.c"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return trained_firmware(tmp_path_factory.getbasetemp())


def compile_portable_c(src: Path, include: Path, core: Core, out: Path, defines: list[str] = []) -> int:  # noqa: B006
    """Compile every .c of ``src`` but the framework HALs for ``core`` with -Wall -Wextra -Werror."""
    assert core.toolchain is not None
    freestanding = (
        [] if core.toolchain.has_libc else ["-ffreestanding", f"-I{COMMON_PORT_DIR / 'freestanding'}"]
    )
    gcc = str(find_tool("gcc", core.toolchain))
    flags = [*core.cpu_flags, "-std=c99", "-Os", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]
    out.mkdir(parents=True, exist_ok=True)
    sources = [c for c in sorted(src.glob("*.c")) if c.name not in FRAMEWORK_HALS]
    for c in sources:
        cmd = [
            gcc,
            *flags,
            *freestanding,
            f"-I{include}",
            *defines,
            "-c",
            str(c),
            "-o",
            str(out / f"{c.stem}.o"),
        ]
        res = subprocess.run(cmd, check=False, capture_output=True, text=True)
        assert res.returncode == 0, f"{c.name}: {res.stderr}"
    return len(sources)


def compile_esp32_c(src: Path, defines: list[str], out: Path) -> int:
    """``compile_portable_c`` for the ESP32 (no GCC for the LX6 here: the Xtensa gate's clang/llc)."""
    missing = xtensa.missing_tools(xtensa.GATE_TOOLS["esp32"])
    assert not missing, f"missing {missing}: scripts/setup.sh installs clang-22 and llvm-22"
    out.mkdir(parents=True, exist_ok=True)
    flags = dict(d.removeprefix("-D").split("=", 1) for d in defines)
    sources = [c for c in sorted(src.glob("*.c")) if c.name not in FRAMEWORK_HALS]
    for c in sources:
        xtensa.compile_esp32(c, out, [xtensa.FREESTANDING_INCLUDE, src], flags)
    return len(sources)


@pytest.mark.parametrize("board", PIO_BOARDS)
def test_platformio_project(trained: Trained, tmp_path: Path, board: str) -> None:
    project = build_firmware(trained.export_dir, board, tmp_path).project
    assert project is not None
    if shutil.which("pio"):  # offline: only reads the project
        out = subprocess.run(
            ["pio", "project", "config", "-d", str(project)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert f"env:{board}" in out.stdout and "framework        =  arduino" in out.stdout
    ini = (project / "platformio.ini").read_text()
    assert f"default_envs = {board}" in ini and f"'-DTL_BOARD_NAME=\"{board}\"'" in ini
    for b in PIO_BOARDS:  # one environment per PlatformIO board in the registry
        spec = get_board(b)
        assert f"[env:{b}]\nplatform = {spec.pio_platform}\nboard = {spec.pio_board}\n" in ini
    src = project / "src"
    assert {"hal_arduino.cpp", "main_arduino.cpp", "tl_model.c", "tl_app.c", "tinylstm.h"} <= {
        f.name for f in src.iterdir()
    }
    core = get_board(board).core
    assert core is not None
    defines = re.findall(r"-DTL_APP\S+", ini)
    if core.toolchain is None:  # the ESP32's Xtensa LX6: clang/llc -mcpu=esp32 (host/targets/xtensa.py)
        assert compile_esp32_c(src, defines, tmp_path / "obj") >= 10
    else:
        assert compile_portable_c(src, src, core, tmp_path / "obj", defines) >= 10


def test_esp_idf_component(trained: Trained, tmp_path: Path) -> None:
    project = build_firmware(trained.export_dir, "esp-idf", tmp_path, source="replay").project
    assert project is not None
    top = (project / "CMakeLists.txt").read_text()
    assert "include($ENV{IDF_PATH}/tools/cmake/project.cmake)" in top and re.search(
        r"^project\(\w+\)$", top, re.M
    )
    component = project / "components" / "tinylstm"
    cmake = (component / "CMakeLists.txt").read_text()
    reg = re.search(r"idf_component_register\((.*?)\)", cmake, re.S)
    assert reg is not None
    srcs = re.findall(r'"(src/[^"]+)"', reg.group(1))
    assert srcs and all((component / s).is_file() for s in srcs)
    assert {Path(s).name for s in srcs} == {
        f.name for f in (component / "src").glob("*.c")
    }  # nothing left out
    assert (
        re.search(r'INCLUDE_DIRS "include"', reg.group(1))
        and (component / "include" / "tinylstm.h").is_file()
    )
    # the UART driver the HAL uses, by the IDF version the component is configured under: CMake evaluates
    # the component's own file with idf_component_register stubbed to print what it requires
    stub = tmp_path / "eval.cmake"
    for version, uart in (
        ("5.0", "driver"),
        ("5.2", "driver"),
        ("5.3", "esp_driver_uart"),
        ("6.0", "esp_driver_uart"),
    ):
        major, minor = version.split(".")
        stub.write_text(
            "function(idf_component_register)\n"
            '  cmake_parse_arguments(A "" "" "SRCS;INCLUDE_DIRS;REQUIRES" ${ARGN})\n'
            '  message(STATUS "REQUIRES=${A_REQUIRES}")\n'
            "endfunction()\n"
            "function(target_compile_options)\nendfunction()\n"
            f"set(IDF_VERSION_MAJOR {major})\nset(IDF_VERSION_MINOR {minor})\nset(COMPONENT_LIB tl)\n"
            f"include({component / 'CMakeLists.txt'})\n"
        )
        out = subprocess.run(["cmake", "-P", str(stub)], capture_output=True, text=True, check=True).stdout
        assert f"REQUIRES={uart};esp_timer;esp_system" in out, (version, out)
    manifest = yaml.safe_load((component / "idf_component.yml").read_text())
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"]) and "0x" in manifest["description"]
    assert manifest["dependencies"]["idf"].startswith(">=5")
    main_cmake = (project / "main" / "CMakeLists.txt").read_text()
    assert 'idf_component_register(SRCS "main.c" REQUIRES tinylstm)' in main_cmake
    assert "void app_main(void)" in (project / "main" / "main.c").read_text()
    config = (component / "include" / "tl_config.h").read_text()
    assert "#define TL_APP_BOOT_SOURCE 1" in config  # --source replay reaches the app without -D flags
    assert "CONFIG_ESP_TASK_WDT_CHECK_IDLE_TASK_CPU0=n" in (project / "sdkconfig.defaults").read_text()
    assert compile_portable_c(component / "src", component / "include", CORE_RV32IMC, tmp_path / "obj") >= 10
    probe = subprocess.run(  # the app reads the settings from tl_config.h
        [str(find_tool("gcc", CORE_RV32IMC.toolchain)), *CORE_RV32IMC.cpu_flags, "-ffreestanding",  # type: ignore[arg-type]
         f"-I{component / 'include'}", "-E", "-dM", str(component / "src" / "tl_app.c")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "#define TL_RX_CAPACITY 1024" in probe and "#define TL_APP_BOOT_SOURCE 1" in probe


ARDUINO_CATEGORIES = {
    "Display", "Communication", "Signal Input/Output", "Sensors", "Device Control", "Timing",
    "Data Storage", "Data Processing", "Other",
}  # fmt: skip
ARDUINO_REQUIRED = ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
                    "architectures")  # fmt: skip


def test_arduino_library(trained: Trained, tmp_path: Path) -> None:
    lib = build_firmware(trained.export_dir, "arduino-lib", tmp_path).project
    assert lib is not None
    props = dict(
        line.split("=", 1) for line in (lib / "library.properties").read_text().splitlines() if "=" in line
    )
    assert all(props.get(k) for k in ARDUINO_REQUIRED), props
    assert re.fullmatch(r"\d+\.\d+\.\d+", props["version"]) and props["category"] in ARDUINO_CATEGORIES
    assert set(props["architectures"].split(",")) == {"esp32", "stm32"}
    for header in props["includes"].split(","):
        assert (lib / "src" / header).is_file()
    example = (
        lib / "examples" / "StreamPredictions" / "StreamPredictions.ino"
    )  # folder and sketch names match
    sketch = example.read_text()
    assert "#include <TinyLSTMArduino.h>" in sketch and "void setup()" in sketch and "void loop()" in sketch
    # no two files differ only in case: on Windows and macOS file systems one would overwrite the other
    files = [p.relative_to(lib).as_posix() for p in lib.rglob("*") if p.is_file()]
    assert len({f.lower() for f in files}) == len(files), sorted(files)
    assert not (lib / "src" / "main_arduino.cpp").exists()  # setup()/loop() are the sketch's
    assert compile_portable_c(lib / "src", lib / "src", CORE_RV32IMC, tmp_path / "obj") >= 10


def test_a_project_written_over_a_bare_metal_build_leaves_no_image(trained: Trained, tmp_path: Path) -> None:
    """Was: tinylstm.elf/.bin and size-report.md of the earlier bare-metal build (another board, perhaps
    another model) stayed beside the new project and its build.json."""
    build_firmware(trained.export_dir, "qemu-stm32f405", tmp_path)
    assert (tmp_path / "tinylstm.elf").is_file() and (tmp_path / "size-report.md").is_file()
    build_firmware(trained.export_dir, "esp-idf", tmp_path)
    left = {p.name for p in tmp_path.iterdir()}
    assert not left & {
        "tinylstm.elf",
        "tinylstm.bin",
        "tinylstm.map",
        "size-report.md",
        "size-report.json",
        "obj",
    }
    assert json.loads((tmp_path / "build.json").read_text())["board"] == "esp-idf"
