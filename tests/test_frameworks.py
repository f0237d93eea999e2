"""The ESP-IDF project `tinylstm build --board esp-idf` writes, configured by the real ESP-IDF build system
and compiled with its own flags. Opt-in: TINYLSTM_ESP_IDF = an ESP-IDF checkout (5.5 or later: from there
its toolchain files keep the CPU flags in response files, which this test replaces; with its submodules:
`git clone --recursive`); never run in CI, nothing downloaded.

ESP-IDF's CMake configures the generated project for each target (the sdkconfig from its Kconfig, the
component graph from every idf_component_register, the compile flags of tools/cmake), with
IDF_COMPONENT_MANAGER=0 and IDF_SKIP_CHECK_SUBMODULES=1 (ESP-IDF would otherwise run `git submodule
update` for a submodule it finds missing). Its compiler names point at clang, so no Espressif GCC is
needed, and every TinyLSTM source in compile_commands.json (the component and the example's main.c) is
compiled with exactly that command line, -fsyntax-only, for the target's architecture: RISC-V (esp32c3)
and Xtensa (esp32). What differs from an Espressif GCC build: the compiler (clang checks the same C with
the same warnings and -Werror; CMake takes it for clang, so ESP-IDF's few `CMAKE_C_COMPILER_ID MATCHES
"Clang"` branches apply), the CPU name (Espressif's -mcpu/-mtune/-mlongcalls/-specs give way to clang's
target) and the C library headers (picolibc, ESP-IDF 6's default C library, from Debian's
picolibc-xtensa-lx106-elf). This is how the component's `REQUIRES driver` was found not to bring
driver/uart.h from ESP-IDF 6.0 on.

Needs cmake, ninja, clang (22: `clang-22`, or TINYLSTM_CLANG), picolibc-xtensa-lx106-elf and the Python
package esp-idf-kconfig (ESP-IDF's kconfgen); a missing one fails the opted-in test with what to install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from firmware_fixtures import Trained, trained_firmware

from tinylstm.host.boards.firmware import build_firmware

IDF = os.environ.get("TINYLSTM_ESP_IDF")
PICOLIBC = Path("/usr/lib/xtensa-lx106-elf/include")
# the toolchain prefixes ESP-IDF 5.0-6.x look for (tools/cmake/toolchain-<target>.cmake)
PREFIXES = ("riscv32-esp-elf-", "xtensa-esp32-elf-", "xtensa-esp-elf-")
# clang's flags for the target's architecture, in place of the Espressif compiler's CPU flags
TARGETS = {
    "esp32c3": ["--target=riscv32-unknown-elf", "-march=rv32imc_zicsr_zifencei", "-mabi=ilp32"],
    "esp32": ["--target=xtensa"],
}
ESPRESSIF_ONLY = ("-specs=", "-mtune=", "-mcpu=", "-mlongcalls", "-march=")

pytestmark = pytest.mark.skipif(
    not IDF,
    reason="opt-in: set TINYLSTM_ESP_IDF to an ESP-IDF checkout (with submodules) to configure the generated "
    "ESP-IDF project with its CMake and compile every TinyLSTM source with its flags",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return trained_firmware(tmp_path_factory.getbasetemp())


def _clang() -> str:
    clang = os.environ.get("TINYLSTM_CLANG") or shutil.which("clang-22")
    missing = [
        what
        for what, ok in (
            ("cmake (apt-get install cmake)", shutil.which("cmake")),
            ("ninja (apt-get install ninja-build)", shutil.which("ninja")),
            ("clang 22 (apt-get install clang-22, or TINYLSTM_CLANG=/path/to/clang)", clang),
            (
                "picolibc headers (apt-get install picolibc-xtensa-lx106-elf)",
                (PICOLIBC / "string.h").is_file(),
            ),
            ("kconfgen (pip install esp-idf-kconfig)", importlib.util.find_spec("kconfgen")),
        )
        if not ok
    ]
    if missing:
        pytest.fail(f"TINYLSTM_ESP_IDF is set but this machine lacks: {'; '.join(missing)}")
    assert clang is not None
    return clang


def _compiler_names(bin_dir: Path, clang: str) -> None:
    """ESP-IDF's compiler names (gcc, g++, gcc-ar, gcc-ranlib of every prefix) as scripts that run clang and
    LLVM's tools (the archivers are never run: only the configure step and the compile commands are used)."""
    bin_dir.mkdir()
    version = Path(clang).name.removeprefix("clang")  # "-22" for clang-22
    tools = {
        "gcc": clang,
        "g++": shutil.which(f"clang++{version}") or clang,
        "gcc-ar": shutil.which(f"llvm-ar{version}") or "false",
        "gcc-ranlib": shutil.which(f"llvm-ranlib{version}") or "false",
    }
    for prefix in PREFIXES:
        for name, tool in tools.items():
            script = bin_dir / f"{prefix}{name}"
            script.write_text(f'#!/bin/sh\nexec {shlex.quote(tool)} "$@"\n')
            script.chmod(0o755)


def _configure(project: Path, build: Path, target: str, bin_dir: Path) -> list[dict[str, str]]:
    env = os.environ | {
        "IDF_PATH": str(IDF),
        "IDF_TARGET": target,
        "IDF_COMPONENT_MANAGER": "0",  # nothing downloaded: no component manager,
        "IDF_SKIP_CHECK_SUBMODULES": "1",  # and no `git submodule update` for a missing submodule
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("IDF_TOOLCHAIN", None)  # the default (GCC) build: its flags, its C library (picolibc)
    cmd = ["cmake", "-G", "Ninja", "-S", str(project), "-B", str(build), "-DPYTHON_DEPS_CHECKED=1"]
    cmd += [f"-DPYTHON={sys.executable}", "-DCOMPONENTS=main"]  # main and what it requires
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (
        f"ESP-IDF's CMake failed for {target}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    )
    commands: list[dict[str, str]] = json.loads((build / "compile_commands.json").read_text())
    return commands


def _syntax_check(entry: dict[str, str], target: str, clang: str) -> subprocess.CompletedProcess[str]:
    """The entry's command line with clang, the target's architecture and -fsyntax-only."""
    args = shlex.split(entry["command"])
    out = [clang]
    skip = False
    for arg in args[1:]:
        if skip:
            skip = False
        elif arg in ("-o", "-MF", "-MT"):
            skip = True
        elif arg in ("-c", "-MD"):
            pass
        elif arg.startswith("@"):  # the toolchain's response files (cflags: the CPU flags)
            lines = Path(entry["directory"], arg[1:]).read_text().split()
            out += [flag for flag in lines if not flag.startswith(ESPRESSIF_ONLY)]
        else:
            out.append(arg)
    out += [*TARGETS[target], "-fsyntax-only", "-fno-color-diagnostics", "-isystem", str(PICOLIBC)]
    return subprocess.run(out, cwd=entry["directory"], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("target", list(TARGETS))
def test_esp_idf_project_compiles_with_the_frameworks_flags(
    trained: Trained, tmp_path: Path, target: str
) -> None:
    clang = _clang()
    project = build_firmware(trained.export_dir, "esp-idf", tmp_path / "out", source="replay").project
    assert project is not None
    _compiler_names(tmp_path / "bin", clang)
    commands = _configure(project, tmp_path / "build", target, tmp_path / "bin")
    ours = [e for e in commands if Path(e["file"]).resolve().is_relative_to(project.resolve())]
    sources = {p.name for p in project.rglob("*.c")}
    assert {Path(e["file"]).name for e in ours} == sources, "every generated C source is in the build"
    failed = []
    for entry in ours:
        res = _syntax_check(entry, target, clang)
        if res.returncode != 0:
            failed.append(f"{Path(entry['file']).name}:\n{res.stderr[-2000:]}")
    assert not failed, f"{target}: " + "\n".join(failed)
