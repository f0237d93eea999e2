"""Cross-compile firmware for a board with its GNU toolchain (arm-none-eabi-, riscv64-unknown-elf-):
gcc -> ELF (+ link map) -> raw .bin."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import csrc_dir, firmware_dir
from tinylstm.host.boards.registry import ARM_GCC, Board, Toolchain
from tinylstm.host.boards.source_key import source_key, split_flags

HAL_DIR = firmware_dir() / "hal"
COMMON_PORT_DIR = firmware_dir() / "ports" / "common"  # what every bare-metal port shares

COMMON_CFLAGS = (
    "-std=c99",
    "-Os",
    "-g",
    "-ffunction-sections",
    "-fdata-sections",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-Wall",
    "-Wextra",
    "-Werror",
)
# Link-time optimisation for the firmware (build_elf): objects carry GCC's intermediate code and the link
# compiles kernel, model, app and port as one program, so calls across files inline and the model's
# constants reach the kernel (benchmarks/results/firmware_size.md: about 9 % less flash). The link gets the
# same COMMON_CFLAGS, so its code generation and warnings (-Werror) are the compile's. A function that only
# assembly calls needs __attribute__((used)), as do memcpy/memset (ports/common/libc_min.c), which the
# compiler calls for code it generates after the link has resolved symbols.
LTO_FLAGS = ("-flto",)


@dataclass(frozen=True)
class BuildResult:
    elf: Path
    bin: Path
    map: Path
    objects: tuple[Path, ...]
    log: str  # everything the compiler and linker printed (empty for a clean build)


def find_tool(tool: str, toolchain: Toolchain = ARM_GCC) -> Path:
    """Path of <prefix><tool> (e.g. arm-none-eabi-gcc), or a TinyLSTMError that says how to install it."""
    exe = f"{toolchain.prefix}{tool}"
    found = shutil.which(exe)
    if found is None:
        raise TinyLSTMError(f"{exe} not found on PATH. Install the toolchain, {toolchain.install_hint()}")
    return Path(found)


def find_compiler() -> str:
    """The host's C compiler ($CC, else the one Python was built with, else cc)."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    exe = cc.split()[0]
    if shutil.which(exe) is None:
        raise TinyLSTMError(
            f"no C compiler found (looked for {exe!r}): the host bridge compiles the C kernel. "
            "Install one (Debian/Ubuntu: apt-get install gcc; macOS: xcode-select --install) or set CC"
        )
    return exe


def run_tool(cmd: list[str | Path], what: str) -> str:
    """Run a compiler, linker or binutils command ``cmd``; its output, or TinyLSTMError naming ``what`` with
    the command and its output when it fails."""
    proc = subprocess.run([str(c) for c in cmd], check=False, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise TinyLSTMError(f"{what} failed:\n{' '.join(map(str, cmd))}\n{output}")
    return output


# Objects this process compiled, by what decides their bytes (``compile_object``): a kernel source is
# compiled once per compiler, code-generation flags and preprocessed text, however many firmware or unicorn
# builds (a search pricing every architecture, a test suite) use it. Only the package's own sources are kept:
# a generated model file is new in every build, and keeping it would only grow the process.
_OBJECTS: dict[str, tuple[bytes, str]] = {}
# The preprocessed text's key by source_key.py's digest of what may change that text (the source, the files it
# includes and the command-line macros they name): the preprocessor runs once per such digest, not per build.
_TEXT_KEYS: dict[str, str] = {}


def _shipped(src: Path) -> bool:
    """Whether ``src`` is one of the package's C sources (csrc/, firmware/), not a generated file."""
    path = src.resolve()
    return any(path.is_relative_to(d.resolve()) for d in (csrc_dir(), firmware_dir()))


def _text_key(gcc: str, flags: list[str], src: Path) -> str | None:
    """Digest of the compiler, the code-generation flags and the preprocessed text (-I and -D act through
    it; build directories differ), None when the source does not preprocess."""
    pre = subprocess.run([gcc, *flags, "-E", str(src)], capture_output=True, check=False)
    if pre.returncode != 0:
        return None
    stat = Path(shutil.which(gcc) or gcc).stat()
    h = hashlib.sha256(f"{gcc}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    h.update("\0".join(split_flags(flags)[0]).encode())
    h.update(pre.stdout)
    return h.hexdigest()


def compile_object(gcc: Path | str, flags: list[str], src: Path, obj: Path, what: str) -> str:
    """``gcc flags -c src -o obj``; returns what the compiler printed. Reuses the object an earlier call in
    this process compiled from the same preprocessed text with the same compiler and code-generation flags
    (-g objects then name the first build's directory in their debug information, nothing else); the text is
    known without the preprocessor when source_key.py's digest was seen before. Generated files and a source
    that fails to preprocess are compiled as given (the error is then the compiler's)."""
    gcc = str(gcc)
    key = None
    if _shipped(src):
        digest = source_key(gcc, flags, src)
        key = _TEXT_KEYS.get(digest) if digest is not None else None
        if key is None:
            key = _text_key(gcc, flags, src)
            if key is not None and digest is not None:
                _TEXT_KEYS[digest] = key
    if key is not None and key in _OBJECTS:
        data, log = _OBJECTS[key]
        obj.write_bytes(data)
        return log
    log = run_tool([gcc, *flags, "-c", src, "-o", obj], what)
    if key is not None:
        _OBJECTS[key] = (obj.read_bytes(), log)
    return log


def build_elf(
    sources: list[Path],
    include_dirs: list[Path],
    defines: dict[str, str],
    out_dir: Path,
    name: str,
    board: Board,
) -> BuildResult:
    """Compile `sources` plus the board's port (and firmware/ports/common) into out_dir/<name>.elf and .bin.

    `defines` are added to (and override) the board's own. Each source becomes
    out_dir/obj/<its folder>/<stem>.o, so size reports can group by folder.
    """
    gcc, objcopy = find_tool("gcc", board.toolchain), find_tool("objcopy", board.toolchain)
    all_defines = {**board.defines, **defines}
    codegen = [*board.cpu_flags, *COMMON_CFLAGS, *LTO_FLAGS]  # the compile's and the link's
    if not board.toolchain.has_libc:
        codegen.append("-ffreestanding")
    cflags = [
        *codegen,
        *([] if board.toolchain.has_libc else [f"-I{COMMON_PORT_DIR / 'freestanding'}"]),
        *(f"-I{d}" for d in (*include_dirs, HAL_DIR, board.port_dir, COMMON_PORT_DIR)),
        *(f"-D{k}={v}" for k, v in all_defines.items()),
    ]
    log: list[str] = []
    objects: list[Path] = []
    port = [*(board.port_dir / f for f in board.port_sources), *sorted(COMMON_PORT_DIR.glob("*.c"))]
    for src in (*sources, *port):
        obj = out_dir / "obj" / src.parent.name / f"{src.stem}.o"
        if obj in objects:
            raise TinyLSTMError(f"two sources would build {obj}: rename {src}")
        obj.parent.mkdir(parents=True, exist_ok=True)
        log.append(compile_object(gcc, cflags, src, obj, f"compiling {src.name} for {board.name}"))
        objects.append(obj)

    elf, bin_, map_ = (out_dir / f"{name}{ext}" for ext in (".elf", ".bin", ".map"))
    link: list[str | Path] = [
        gcc, *codegen, "-nostdlib", "-T", board.port_dir / str(board.linker_script),
        "-Wl,--gc-sections", "-Wl,--fatal-warnings", f"-Wl,-Map={map_}",
        *objects, "-lgcc", "-o", elf,
    ]  # fmt: skip
    try:
        log.append(run_tool(link, f"linking {name} for {board.name}"))
    except TinyLSTMError as exc:
        overflows = re.findall(r"region `(\w+)' overflowed by (\d+) bytes", str(exc))
        if overflows:
            what = ", ".join(f"{region} overflowed by {n} bytes" for region, n in overflows)
            raise TinyLSTMError(
                f"the firmware does not fit {board.name}: {what}. Export a smaller model (fewer hidden units "
                "or "
                "layers; weights take 4*H*(I+H) bytes per LSTM layer) or pick a board with more memory"
            ) from None
        raise
    log.append(run_tool([objcopy, "-O", "binary", elf, bin_], f"objcopy {elf.name}"))
    return BuildResult(elf=elf, bin=bin_, map=map_, objects=tuple(objects), log="".join(log))
