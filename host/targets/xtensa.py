"""The C kernel on Xtensa: an ESP32/ESP8266 compile gate and bit-exact kernel runs in QEMU.

No ESP32 emulator exists, so two things are proven apart (firmware/tests/xtensa/README.md):

- Compile gate (``compile_gate``): every kernel source (csrc/tl_sources.txt), the firmware app
  (firmware/app/tl_proto.c, tl_app.c), a generated model and its replay data compile without a
  single warning for the ESP32 (clang-22 -> llc-22 -mcpu=esp32 -> llvm-mc-22, windowed ABI) and
  for the ESP8266 core (xtensa-lx106-elf-gcc, call0 ABI), with -Wall -Wextra -Werror.
- Kernel runs (``run_kernel``, ``check_records``): firmware/tests/xtensa/run_main.c steps a
  generated model over samples of its input type (int8; an int16-h model's int16, with tl_step_s16)
  embedded in the ELF on a generic Xtensa core in QEMU
  ``-M sim`` (dc233c: windowed ABI, clang/llc; lx106: call0 ABI, gcc) and writes every step's
  outputs, hidden and cell state through semihosting, which are compared word for word with
  codegen/golden.py. int16-h models (-DTL_HIDDEN16) write their h words as int16 (``record_dtype``).

Every build of a model's files takes the model's flags, ``codegen.emit_c.build_defines`` (the weight
layout's -DTL_LAYOUT_W16, an int16-h model's -DTL_HIDDEN16): the compile gate and the run ELF get them
from the model; the model-independent kernel objects (``compile_kernel``) are built for a layout and a
hidden state, and a run refuses a model that needs other flags.

Workarounds for LLVM 22's Xtensa backend (measured, see the README):

- clang refuses ``-mcpu=esp32``: clang emits IR (``--target=xtensa -S -emit-llvm``), llc selects
  the CPU or the features.
- llc's object writer puts a function's literal pool unaligned after the previous function
  ("fixup value must be 4-byte aligned", or ld's "misaligned literal target"): llc writes
  assembly instead, whose ``.literal`` directives llvm-mc collects into ``.literal.*`` sections
  of whole words, which the linker scripts place first, together.
- llc crashes selecting tl_input.c's float constant pool with +fp (ESP32): that one file is
  built with ``-mattr=-fp`` (soft float) in the gate.
- No lld for Xtensa and no windowed libgcc: GNU ld of binutils-xtensa-lx106 links the LLVM
  objects (``--no-relax``: it cannot decode windowed instructions), firmware/tests/xtensa/xt_rt.c
  provides ``__muldi3``, the two float comparisons LLVM calls and, for lx106 (no divide instruction),
  ``__divsi3``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tinylstm.codegen import golden
from tinylstm.codegen.emit_c import (
    HIDDEN_DEFINES,
    INPUT16_DEFINES,
    LAYOUT_DEFINES,
    Layout,
    build_defines,
    emit_c,
)
from tinylstm.codegen.emit_replay import emit_replay
from tinylstm.codegen.quantize import IntModel
from tinylstm.contract.constants import HIDDEN_BITS
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import C_FLAGS, csrc_dir, firmware_dir, kernel_sources
from tinylstm.host.boards.firmware import app_sources
from tinylstm.host.boards.toolchain import COMMON_PORT_DIR

CLANG = "clang-22"
LLC = "llc-22"
LLVM_MC = "llvm-mc-22"
GCC = "xtensa-lx106-elf-gcc"
LD = "xtensa-lx106-elf-ld"  # GNU ld also links the LLVM objects (no Xtensa lld)
NM = "xtensa-lx106-elf-nm"
QEMU = "qemu-system-xtensa"

Toolchain = Literal["esp32", "lx106"]
Core = Literal["dc233c", "lx106"]
TOOLCHAINS: tuple[Toolchain, ...] = ("esp32", "lx106")
CORES: tuple[Core, ...] = ("dc233c", "lx106")

# The tools each gate and each run needs (all from scripts/setup.sh: clang-22, llvm-22,
# gcc-xtensa-lx106 with binutils-xtensa-lx106, qemu-system-misc).
GATE_TOOLS: dict[Toolchain, tuple[str, ...]] = {"esp32": (CLANG, LLC, LLVM_MC), "lx106": (GCC,)}
RUN_TOOLS: dict[Core, tuple[str, ...]] = {
    "dc233c": (CLANG, LLC, LLVM_MC, LD, NM, QEMU),
    "lx106": (GCC, NM, QEMU),
}

# -std=c99 -Wall -Wextra -Werror -ffp-contract=off -fno-math-errno, for size, one section per function.
XTENSA_C_FLAGS = [*C_FLAGS, "-Os", "-ffunction-sections", "-fdata-sections"]
# tl_app.c as `tinylstm build` compiles it (host/boards/firmware.py): replay data in, host source at boot.
APP_DEFINES = {"TL_APP_HAS_REPLAY": "1", "TL_APP_BOOT_SOURCE": "0"}

# dc233c (QEMU's Linux-capable core): register windows, zero-overhead loops, MIN/MAX, SEXT,
# 32-bit divide, MAC16, MUL16 and MUL32, but no MUL32HIGH (MULSH/MULUH), no FPU, no booleans.
DC233C_FEATURES = tuple("+windowed +density +loop +minmax +sext +div32 +mac16 +mul16 +mul32".split())
DC233C_START_FEATURES = (*DC233C_FEATURES, "+exception")  # RSR EXCCAUSE in the fault vectors
# The dc233c run builds omit the frame pointer: with one, LLVM 22 moves SP with MOVSP around every call
# that passes arguments on the stack (the int16-h layer step's 7th, tl_layer_step16_fn), and MOVSP raises
# the alloca exception when the caller's frame has been spilled, for which start_windowed.s has no handler
# (ESP-IDF's vectors have one, so the ESP32 gate keeps clang's default). ``_compile_dc233c`` checks that
# no MOVSP is left.
DC233C_CFLAGS = ("-fomit-frame-pointer",)
# llc -mcpu=esp32: every ESP32 option (windowed, FPU, MUL32HIGH, MAC16, ...). LLVM 22 crashes
# selecting tl_input.c's float constant pool with +fp; that file builds soft-float.
ESP32_NO_FP_FILES = frozenset({"tl_input.c"})

# Left out of the runs: tl_input.c does float arithmetic (no soft-float add/sub/mul for either build:
# no windowed libgcc; the Debian lx106 libgcc lacks __addsf3/__subsf3/__mulsf3); tl_blob.c is not used.
RUN_EXCLUDED = frozenset({"tl_input.c", "tl_blob.c"})

QEMU_CPU: dict[Core, str] = {"dc233c": "dc233c", "lx106": "lx106"}
RUN_TIMEOUT_S = 60.0
EXIT_MEANINGS = {
    2: "tl_state_init refused the model",
    3: "tl_step (tl_step_s16 for an int16-h model) failed",
    4: "a semihosting write failed",
    125: "debug exception or NMI",
    126: "double exception",
}
# 128 + EXCCAUSE after a user/kernel exception (Xtensa ISA exception causes)
EXCCAUSES = {
    0: "illegal instruction",
    2: "instruction fetch error",
    3: "load/store error",
    6: "integer divide by zero",
    9: "unaligned load/store",
    20: "instruction fetch prohibited",
    28: "load prohibited",
    29: "store prohibited",
}


class XtensaError(TinyLSTMError):
    """A build, run or comparison on Xtensa failed; the message carries the command and its output."""


def xtensa_dir() -> Path:
    """firmware/tests/xtensa: the run harness, startup files, linker scripts, runtime helpers."""
    return firmware_dir() / "tests" / "xtensa"


# neither toolchain has a C library here: the bare-metal ports' string.h and memcpy/memset/strlen
FREESTANDING_INCLUDE = COMMON_PORT_DIR / "freestanding"
LIBC_MIN = COMMON_PORT_DIR / "libc_min.c"


def missing_tools(tools: Sequence[str]) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def _run(cmd: Sequence[str | Path], what: str) -> subprocess.CompletedProcess[bytes]:
    """Run a build step; any non-zero exit or any output on stderr (a warning) is an error."""
    args = [str(c) for c in cmd]
    try:
        proc = subprocess.run(args, capture_output=True, check=False)
    except FileNotFoundError:
        raise XtensaError(f"{what}: {args[0]} not found (scripts/setup.sh installs it)") from None
    err = proc.stderr.decode(errors="replace").strip()
    if proc.returncode != 0 or err:
        status = f"exit status {proc.returncode}" if proc.returncode else "warnings"
        raise XtensaError(f"{what} failed ({status}):\n$ {' '.join(args)}\n{err[-6000:]}")
    return proc


def _define_flags(defines: dict[str, str]) -> list[str]:
    return [f"-D{k}={v}" for k, v in sorted(defines.items())]


def _include_flags(includes: Sequence[Path]) -> list[str]:
    return [f"-I{d}" for d in includes]


def compile_llvm(
    src: Path,
    out_dir: Path,
    includes: Sequence[Path],
    defines: dict[str, str],
    cpu: str,
    features: Sequence[str] = (),
    build: tuple[str, ...] = (),
    extra: Sequence[str] = (),
) -> Path:
    """One C file -> Xtensa object with clang-22 (IR) -> llc-22 (assembly) -> llvm-mc-22; no
    libc headers (``-nostdlibinc``: clang's own stdint.h/stddef.h, string.h from FREESTANDING_INCLUDE).
    ``build``: the model's -D flags (``build_defines``), given to the kernel and model sources; ``extra``:
    more C flags."""
    stem = out_dir / src.name.removesuffix(".c")
    ll, asm, obj = stem.with_suffix(".ll"), stem.with_suffix(".s"), stem.with_suffix(".o")
    cflags = [*XTENSA_C_FLAGS, *build, *extra, "-nostdlibinc", *_include_flags(includes)]
    _run(
        [CLANG, "--target=xtensa", *cflags, *_define_flags(defines), "-S", "-emit-llvm", src, "-o", ll],
        f"clang-22 {src.name}",
    )
    target = [f"-mcpu={cpu}"] + ([f"-mattr={','.join(features)}"] if features else [])
    _run(
        [LLC, "-march=xtensa", *target, "-function-sections", "-data-sections", ll, "-o", asm],
        f"llc-22 {src.name}",
    )
    _run([LLVM_MC, "-triple=xtensa", *target, "-filetype=obj", asm, "-o", obj], f"llvm-mc-22 {src.name}")
    return obj


def compile_esp32(
    src: Path, out_dir: Path, includes: Sequence[Path], defines: dict[str, str], build: tuple[str, ...] = ()
) -> Path:
    """One C file -> ESP32 object (``compile_llvm`` with -mcpu=esp32; ESP32_NO_FP_FILES soft-float)."""
    features = ("-fp",) if src.name in ESP32_NO_FP_FILES else ()
    return compile_llvm(src, out_dir, includes, defines, "esp32", features, build)


def _compile_dc233c(
    src: Path, out_dir: Path, includes: Sequence[Path], defines: dict[str, str], build: tuple[str, ...] = ()
) -> Path:
    """One C file -> object for the dc233c runs (DC233C_FEATURES, DC233C_CFLAGS), checked for MOVSP."""
    obj = compile_llvm(src, out_dir, includes, defines, "generic", DC233C_FEATURES, build, DC233C_CFLAGS)
    if re.search(r"^\s*movsp\b", obj.with_suffix(".s").read_text(), re.MULTILINE):
        raise XtensaError(f"{src.name}: llc-22 emitted MOVSP (an alloca exception: see DC233C_CFLAGS)")
    return obj


def compile_gcc(
    src: Path, out_dir: Path, includes: Sequence[Path], defines: dict[str, str], build: tuple[str, ...] = ()
) -> Path:
    """One C (or .S) file -> lx106 object with xtensa-lx106-elf-gcc, freestanding (no C library)."""
    obj = out_dir / (src.name + ".o")
    cflags = [*XTENSA_C_FLAGS, *build, "-ffreestanding", *_include_flags(includes)]
    _run([GCC, *cflags, *_define_flags(defines), "-c", src, "-o", obj], f"xtensa-lx106-elf-gcc {src.name}")
    return obj


# ---- generated model + samples ---------------------------------------------------------------------------


def write_model(model: IntModel, gen: Path, xq: np.ndarray, layout: Layout = "w8") -> None:
    """gen/tl_model.h/.c (codegen/emit_c.py) and gen/tl_replay.h/.c holding the samples ``xq`` [steps, input]
    of the model's input type, int8 or an int16-h model's int16 (codegen/emit_replay.py, the firmware's
    replay data)."""
    xq = np.asarray(xq)
    if xq.dtype != np.dtype(f"int{model.input_bits}"):
        raise XtensaError(
            f"the model takes int{model.input_bits} samples, got {xq.dtype}: draw them with "
            "random_models.random_inputs or quantize them with golden.quantize_input"
        )
    emit_c(model, gen, layout=layout)
    emit_replay(xq, model.model_hash, gen, f"{len(xq)} samples of the Xtensa run.")


# ---- compile gate ---------------------------------------------------------------------------------------


def gate_sources(gen: Path) -> list[Path]:
    """Every kernel source, the board-independent app and the generated model and replay data."""
    return [*kernel_sources(), *app_sources(), gen / "tl_model.c", gen / "tl_replay.c"]


def gate_includes(gen: Path) -> list[Path]:
    fw = firmware_dir()
    return [FREESTANDING_INCLUDE, csrc_dir(), fw / "app", fw / "hal", gen]


def compile_gate(toolchain: Toolchain, gen: Path, out_dir: Path, build: tuple[str, ...] = ()) -> list[Path]:
    """Compile ``gate_sources(gen)`` for ``toolchain`` ("esp32": clang/llc -mcpu=esp32, windowed ABI;
    "lx106": xtensa-lx106-elf-gcc, call0 ABI) into ``out_dir``; raises XtensaError with the compiler's
    output on any error or warning. ``gen`` must hold tl_model.* and tl_replay.* (``write_model``) and
    ``build`` be that model's flags, ``build_defines(model, layout)``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    includes = gate_includes(gen)
    objs = []
    for src in gate_sources(gen):
        if toolchain == "esp32":
            objs.append(compile_esp32(src, out_dir, includes, APP_DEFINES, build))
        elif toolchain == "lx106":
            objs.append(compile_gcc(src, out_dir, includes, APP_DEFINES, build))
        else:
            raise XtensaError(f"unknown Xtensa toolchain {toolchain!r}: choose one of {list(TOOLCHAINS)}")
    return objs


# ---- kernel run -----------------------------------------------------------------------------------------


def kernel_build(
    layout: Layout = "w8", hidden_bits: int = HIDDEN_BITS, input16: bool = False
) -> tuple[str, ...]:
    """The -D flags of kernel objects for the models of ``layout`` and ``hidden_bits`` (``input16``: with an
    int16 input on an int8 h): what ``build_defines`` gives such a model."""
    if hidden_bits not in HIDDEN_DEFINES:
        raise XtensaError(f"a hidden state of {hidden_bits} bits: choose one of {sorted(HIDDEN_DEFINES)}")
    return LAYOUT_DEFINES[layout] + HIDDEN_DEFINES[hidden_bits] + (INPUT16_DEFINES if input16 else ())


@dataclass(frozen=True)
class KernelObjects:
    """The model-independent part of a run ELF: kernel, runtime and startup objects for one core, built
    for the models of one weight layout and hidden state (int8 Q0.7: 8, int16 Q0.15: 16), with an int16
    input on an int8 h or not (``input16``)."""

    core: Core
    layout: Layout
    objects: tuple[Path, ...]
    hidden_bits: int = HIDDEN_BITS
    input16: bool = False

    @property
    def build(self) -> tuple[str, ...]:
        """The -D flags of the kernel objects: ``build_defines`` of the models they run."""
        return kernel_build(self.layout, self.hidden_bits, self.input16)


def _run_includes(gen: Path | None) -> list[Path]:
    return [FREESTANDING_INCLUDE, xtensa_dir(), csrc_dir(), *([gen] if gen else [])]


def _rt_defines(core: Core) -> dict[str, str]:
    # __muldi3 for both (see xt_rt.c); the float comparisons only where no libgcc exists; __divsi3 on the
    # core without a divide instruction (lx106; dc233c has DIV32)
    extra = {"XT_RT_SFCMP": "1"} if core == "dc233c" else {"XT_RT_DIVSI3": "1"}
    return {"XT_RT_MULDI3": "1", **extra}


def _check_no_calls(obj: Path) -> None:
    """The runtime helpers (xt_rt.o, libc_min.o) must call nothing: a compiler that turned a helper
    back into a libcall (memcpy into memcpy, the 32-bit products of __muldi3 into __muldi3) would
    recurse forever."""
    undefined = _run([NM, "-u", obj], f"nm {obj.name}").stdout.decode().split()
    if [s for s in undefined if s != "U"]:
        raise XtensaError(f"{obj.name} calls {undefined}: the runtime helpers must not call anything")


def compile_kernel(
    core: Core, out_dir: Path, layout: Layout = "w8", hidden_bits: int = HIDDEN_BITS, input16: bool = False
) -> KernelObjects:
    """Compile the kernel (minus RUN_EXCLUDED), xt_rt.c, libc_min.c and the startup for ``core``
    into ``out_dir``, for models of weight layout ``layout`` and a ``hidden_bits`` hidden state (``input16``:
    with an int16 input on an int8 h)."""
    if core not in CORES:
        raise XtensaError(f"unknown Xtensa core {core!r}: choose one of {list(CORES)}")
    build = kernel_build(layout, hidden_bits, input16)
    out_dir.mkdir(parents=True, exist_ok=True)
    xt = xtensa_dir()
    includes = _run_includes(None)
    sources = [s for s in kernel_sources() if s.name not in RUN_EXCLUDED]
    objs: list[Path] = []
    if core == "dc233c":
        for src in sources:
            objs.append(_compile_dc233c(src, out_dir, includes, {}, build))
        rt = [_compile_dc233c(s, out_dir, includes, _rt_defines(core)) for s in (xt / "xt_rt.c", LIBC_MIN)]
        start = out_dir / "start_windowed.o"
        mattr = f"-mattr={','.join(DC233C_START_FEATURES)}"
        _run(
            [LLVM_MC, "-triple=xtensa", mattr, "-filetype=obj", xt / "start_windowed.s", "-o", start],
            "llvm-mc-22 start_windowed.s",
        )
    else:
        for src in sources:
            objs.append(compile_gcc(src, out_dir, includes, {}, build))
        rt = [compile_gcc(src, out_dir, includes, _rt_defines(core)) for src in (xt / "xt_rt.c", LIBC_MIN)]
        start = compile_gcc(xt / "start_call0.S", out_dir, includes, {})
    for obj in rt:
        _check_no_calls(obj)
    return KernelObjects(core, layout, (start, *rt, *objs), hidden_bits, input16)


def link_elf(kernel: KernelObjects, sources: Sequence[Path], includes: Sequence[Path], elf: Path) -> Path:
    """Compile ``sources`` for ``kernel``'s core and link them with its objects into ``elf``, an image
    for QEMU ``-M sim -cpu <core>`` (linker script and map next to it: <elf>.map)."""
    out_dir = elf.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    # LLVM objects carry no .note.GNU-stack; the ELF is one RWX image by design
    ld_flags = ["--gc-sections", "-z", "noexecstack", "--no-warn-rwx-segments", "-Map", f"{elf}.map"]
    if kernel.core == "dc233c":
        objs = [_compile_dc233c(s, out_dir, includes, {}, kernel.build) for s in sources]
        cmd: list[str | Path] = [LD, "--no-relax", *ld_flags, "-T", xtensa_dir() / "dc233c.ld"]
        cmd += [*kernel.objects, *objs, "-o", elf]
    else:
        objs = [compile_gcc(s, out_dir, includes, {}, kernel.build) for s in sources]
        cmd = [GCC, "-nostdlib", "-Wl," + ",".join(ld_flags), "-T", xtensa_dir() / "lx106.ld"]
        cmd += [*kernel.objects, *objs, "-lgcc", "-o", elf]
    _run(cmd, f"link {elf.name}")
    return elf


def link_run_elf(kernel: KernelObjects, gen: Path, out_dir: Path) -> Path:
    """The run ELF of the model in ``gen`` (``write_model``): gen/tl_model.c, gen/tl_replay.c and
    run_main.c linked with ``kernel`` into ``out_dir``/run.elf."""
    sources = [gen / "tl_model.c", gen / "tl_replay.c", xtensa_dir() / "run_main.c"]
    return link_elf(kernel, sources, _run_includes(gen), out_dir / "run.elf")


def run_elf(core: Core, elf: Path, timeout: float = RUN_TIMEOUT_S) -> bytes:
    """Run ``elf`` in QEMU ``-M sim -cpu <core>`` with semihosting; returns what it wrote to stdout."""
    cmd = [QEMU, "-M", "sim", "-cpu", QEMU_CPU[core], "-semihosting", "-nographic", "-monitor", "none"]
    cmd += ["-kernel", str(elf)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise XtensaError(f"{QEMU} not found (Debian qemu-system-misc; scripts/setup.sh)") from None
    except subprocess.TimeoutExpired:
        raise XtensaError(f"{' '.join(cmd)} did not exit within {timeout:.0f} s") from None
    if proc.returncode != 0:
        code = proc.returncode
        cause = code - 128
        meaning = EXIT_MEANINGS.get(code) or (
            f"exception: EXCCAUSE {cause}, {EXCCAUSES.get(cause, 'see the Xtensa ISA')}"
            if code >= 128
            else "?"
        )
        raise XtensaError(
            f"{' '.join(cmd)} exited with status {code} ({meaning}) after {len(proc.stdout)} bytes of "
            f"records:\n{proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return proc.stdout


def record_dtype(model: IntModel) -> np.dtype:
    """One step's record, as run_main.c writes it: outputs, h (int8, or int16 for an int16-h model), c
    (little-endian); a bidirectional model's backward layers' h and c after the forward ones'."""
    cells = (model.num_layers + len(model.backward)) * model.hidden_size
    h = model.hidden_dtype.newbyteorder("<")
    return np.dtype([("y", "<i2", model.output_size), ("h", h, cells), ("c", "<i2", cells)])


def parse_records(model: IntModel, data: bytes) -> np.ndarray:
    rec = record_dtype(model)
    if len(data) % rec.itemsize:
        raise XtensaError(f"{len(data)} bytes of records are not a whole number of {rec.itemsize}-byte steps")
    return np.frombuffer(data, dtype=rec)


def check_records(model: IntModel, xq: np.ndarray, got: np.ndarray) -> None:
    """Every output and state word of every step equals codegen/golden.py, else XtensaError naming
    the first step and word that differ (the check of tests/sanitized_harness.py)."""
    steps = len(xq)
    if len(got) != steps:
        raise XtensaError(f"the run wrote {len(got)} steps, expected {steps}")
    y_ref, _, tr = golden.run(model, np.asarray(xq)[None], trace=True)
    h, c = golden.state_trace(tr)
    want = {"y": y_ref[0], "h": h[0].reshape(steps, -1), "c": c[0].reshape(steps, -1)}
    for field, ref in want.items():
        bad = np.argwhere(got[field] != ref)
        if len(bad):
            t, k = (int(v) for v in bad[0])
            raise XtensaError(
                f"Xtensa and golden differ in {field}[{k}] at step {t} ({len(bad)} words in all): "
                f"got {got[field][t].tolist()}, want {ref[t].tolist()}"
            )


def run_kernel(kernel: KernelObjects, model: IntModel, xq: np.ndarray, out_dir: Path) -> np.ndarray:
    """Build the run ELF of ``model`` over the samples ``xq`` [steps, input] (its input type: ``write_model``)
    on ``kernel``'s core in ``out_dir``, run it in QEMU and return its records (``record_dtype``)."""
    if build_defines(model, kernel.layout) != kernel.build:
        raise XtensaError(
            f"the model needs a kernel built with {list(build_defines(model, kernel.layout))}, these objects "
            f"were built with {list(kernel.build)}: compile_kernel(..., hidden_bits={model.hidden_bits}, "
            f"input16={model.input16})"
        )
    gen = out_dir / "gen"
    write_model(model, gen, xq, kernel.layout)
    elf = link_run_elf(kernel, gen, out_dir)
    return parse_records(model, run_elf(kernel.core, elf))


def verify_kernel(kernel: KernelObjects, model: IntModel, xq: np.ndarray, out_dir: Path) -> np.ndarray:
    """``run_kernel`` + ``check_records``: the records, bit-exact with the golden reference."""
    got = run_kernel(kernel, model, xq, out_dir)
    check_records(model, xq, got)
    return got
