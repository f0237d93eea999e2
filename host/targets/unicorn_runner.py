"""Run the C kernel in unicorn on a microcontroller core (Cortex-M4F, RV32IMC): bit-exactness on the
target ISA, instruction counts, stack high-water mark and code size.

``build_target(model, dir, dsp=True, core=...)`` compiles csrc/ (without the blob reader) + the model
emitted by ``codegen.emit_c`` + a tiny driver for the core (its flags from the board registry, -nostdlib)
with a generated linker script: code and const data in "flash" at 0x08000000, .data/.bss in "RAM" at
0x20000000. There is no startup code: ``Target`` plays the reset handler — it loads the ELF's segments
at their addresses, enables the FPU (Cortex-M4F: CPACR), sets SP and calls C functions with a return
address that stops the emulator. ``dsp=False`` adds ``-DTL_NO_DSP`` so a Cortex-M4 runs the portable C
path (the only path on RISC-V); ``layout="w16"`` emits the model in the fast int16 weight layout
(tl_layer_t.weights16) instead of int8. Everything is compiled as a firmware of the model is, with its
``build_settings`` (codegen/emit_c.py: -DTL_HIDDEN16 for an int16-h model, whose h words the driver records
as int16, and only the cell, hidden state, readout and stacking paths the model runs). The driver steps the
model with the step function of its input type (``step_function``): tl_step over int8 samples, or an int16-h
model's tl_step_s16 over int16 ones.
"""

from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from unicorn import (
    UC_ARCH_ARM,
    UC_ARCH_RISCV,
    UC_HOOK_CODE,
    UC_MODE_MCLASS,
    UC_MODE_RISCV32,
    UC_MODE_THUMB,
    Uc,
)
from unicorn import arm_const as arm
from unicorn import riscv_const as rv

from tinylstm.codegen.emit_c import Layout, build_settings, emit_c
from tinylstm.codegen.quantize import IntModel
from tinylstm.contract.cells import CELLS
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import C_FLAGS, csrc_dir, kernel_sources
from tinylstm.host.boards.registry import CORE_CORTEX_M4F, CORE_RV32IMC, Core
from tinylstm.host.boards.sizes import input_sections
from tinylstm.host.boards.toolchain import COMMON_PORT_DIR, LTO_FLAGS, compile_object, find_tool

CORES = {c.name: c for c in (CORE_CORTEX_M4F, CORE_RV32IMC)}  # what unicorn runs here
FLASH, FLASH_SIZE = 0x0800_0000, 16 << 20
RAM, RAM_SIZE = 0x2000_0000, 16 << 20
STACK_SIZE = 16 << 10
STACK_TOP = RAM + RAM_SIZE
STOP = 0x0000_1000  # return address of every call: a mapped page outside the image
PAINT = 0xA5
ROOTS = (
    "drv_init",
    "drv_run",
    "drv_state",
    "drv_x",
    "drv_y",
    "drv_h",
    "drv_c",
)  # kept by --gc-sections, with the model's step function (``step_function``: measure_step calls it)
# the step path (tl_dot_s16: the int16-h dot products, empty in int8-h builds) and every cell's tl_<name>.c
KERNEL_FILES = (
    "tl_api",
    "tl_bidir",
    "tl_cells",
    "tl_dot",
    "tl_dot_s16",
    "tl_dense",
    "tl_pool",
    *(f"tl_{c}" for c in CELLS),
)

LINKER_SCRIPT = f"""
MEMORY {{
  FLASH (rx) : ORIGIN = 0x{FLASH:08x}, LENGTH = {FLASH_SIZE}
  RAM (rwx)  : ORIGIN = 0x{RAM:08x}, LENGTH = {RAM_SIZE - STACK_SIZE}
}}
ENTRY(drv_init)
SECTIONS {{
  .text : {{ *(.text*) *(.rodata*) }} > FLASH
  .data : {{ *(.data*) }} > RAM
  .bss (NOLOAD) : {{ *(.bss*) *(COMMON) }} > RAM
}}
"""

DRIVER = r"""
/* Driver for the unicorn runs: the state and I/O buffers the host reads and writes directly. */
#include <string.h>
#include "tl_model.h"

#define CELLS (TL_MODEL_NUM_LAYERS * TL_MODEL_HIDDEN_SIZE)
/* the state words recorded per step: the forward layers', then a bidirectional model's backward layers' */
#define ALL_CELLS (CELLS * (1 + TL_MODEL_BIDIRECTIONAL))
static int16_t drv_buf[TL_MODEL_STATE_WORDS];
tl_state_t drv_state;
/* the model input: int16 for an int16-h model (tl_step_s16), else int8 (tl_step) */
#if TL_MODEL_INPUT_BITS == 16
#define DRV_STEP tl_step_s16
int16_t drv_x[DRV_MAX_STEPS * TL_MODEL_INPUT_SIZE];
#else
#define DRV_STEP tl_step
int8_t drv_x[DRV_MAX_STEPS * TL_MODEL_INPUT_SIZE];
#endif
int16_t drv_y[DRV_MAX_STEPS * TL_MODEL_OUTPUT_SIZE];
/* the hidden state as the model holds it: int16 Q0.15 (int16-h models, tl_state_t.h16) or int8 Q0.7 */
#if TL_MODEL_HIDDEN_BITS == 16
#define DRV_H drv_state.h16
int16_t drv_h[DRV_MAX_STEPS * ALL_CELLS];
#else
#define DRV_H drv_state.h
int8_t drv_h[DRV_MAX_STEPS * ALL_CELLS];
#endif
int16_t drv_c[DRV_MAX_STEPS * ALL_CELLS];

/* -nostdlib: gcc may turn copy loops into calls to these. */
void *memcpy(void *d, const void *s, size_t n)
{
    unsigned char *dd = d;
    const unsigned char *ss = s;
    while (n--) *dd++ = *ss++;
    return d;
}
void *memset(void *d, int v, size_t n)
{
    unsigned char *dd = d;
    while (n--) *dd++ = (unsigned char)v;
    return d;
}

int drv_init(void) { return tl_state_init(&drv_state, &tl_model, drv_buf, TL_MODEL_STATE_WORDS); }

/* `steps` steps over drv_x, recording outputs and every state word after each step. */
int drv_run(uint32_t steps)
{
    for (uint32_t t = 0; t < steps; ++t) {
        int st = DRV_STEP(&drv_state, drv_x + t * TL_MODEL_INPUT_SIZE, drv_y + t * TL_MODEL_OUTPUT_SIZE);
        if (st != TL_OK) return st;
        for (int k = 0; k < CELLS; ++k) {
            drv_h[t * ALL_CELLS + k] = DRV_H[k];
            drv_c[t * ALL_CELLS + k] = drv_state.c[k];
        }
#if TL_MODEL_BIDIRECTIONAL
        for (int k = 0; k < CELLS; ++k) {
            drv_h[t * ALL_CELLS + CELLS + k] = drv_state.hb[k];
            drv_c[t * ALL_CELLS + CELLS + k] = drv_state.cb[k];
        }
#endif
    }
    return TL_OK;
}
"""


def step_function(model: IntModel) -> str:
    """The C function that steps ``model``: tl_step (int8 input), or tl_step_s16 for an int16-h model's int16
    input (IntModel.input_bits)."""
    return "tl_step_s16" if model.input_bits == 16 else "tl_step"


@dataclass
class TargetBuild:
    elf: Path
    objects: dict[str, Path]  # kernel file stem -> object file
    dsp: bool
    max_steps: int
    layout: Layout = "w8"
    core: Core = CORE_CORTEX_M4F
    lto: bool = False


def build_target(
    model: IntModel,
    out_dir: Path,
    dsp: bool = True,
    opt: str = "-O2",
    max_steps: int = 2000,
    layout: Layout = "w8",
    core: Core = CORE_CORTEX_M4F,
    lto: bool = False,
) -> TargetBuild:
    """Cross-compile kernel + model + driver for ``core`` into ``out_dir/target.elf``; with ``lto`` link-time
    optimised as the firmware is (host/boards/toolchain.py, LTO_FLAGS), else every file compiled alone (the
    kernel benchmark's and the search's counts)."""
    if core.name not in CORES or core.toolchain is None:
        raise ValueError(f"unicorn runs {sorted(CORES)} here, not {core.name}")
    toolchain = core.toolchain
    gcc = str(find_tool("gcc", toolchain))
    out_dir.mkdir(parents=True, exist_ok=True)
    emit_c(model, out_dir, layout=layout)
    (out_dir / "driver.c").write_text(DRIVER)
    (out_dir / "target.ld").write_text(LINKER_SCRIPT)
    flags = [
        *core.cpu_flags,
        *([] if toolchain.has_libc else ["-ffreestanding", f"-I{COMMON_PORT_DIR / 'freestanding'}"]),
        *C_FLAGS,
        opt,
        "-ffunction-sections",
        "-fdata-sections",
        *(LTO_FLAGS if lto else ()),
        f"-DDRV_MAX_STEPS={max_steps}",
        "-I",
        str(csrc_dir()),
        "-I",
        str(out_dir),
    ]
    if not dsp:
        flags.append("-DTL_NO_DSP")
    # as a firmware of this model is built: only what it runs (codegen/emit_c.py build_settings)
    flags += [f"-D{k}={v}" for k, v in build_settings(model, layout).items()]
    sources = [s for s in kernel_sources() if s.stem != "tl_blob"]
    objects: dict[str, Path] = {}
    for src in [*sources, out_dir / "tl_model.c", out_dir / "driver.c"]:
        obj = out_dir / f"{src.stem}.o"
        extra = ["-fno-tree-loop-distribute-patterns"] if src.stem == "driver" else []
        compile_object(gcc, [*flags, *extra], src, obj, f"compiling {src.name} for {core.name}")
        objects[src.stem] = obj
    elf = out_dir / "target.elf"
    subprocess.run(
        [
            gcc,
            *(flags if lto else core.cpu_flags),  # link-time optimised: the link compiles the program
            "-nostdlib",
            "-T",
            str(out_dir / "target.ld"),
            "-Wl,--gc-sections",
            f"-Wl,-Map={out_dir / 'target.map'}",
            *(f"-Wl,-u,{s}" for s in (*ROOTS, step_function(model))),
            *map(str, objects.values()),
            "-lgcc",
            "-o",
            str(elf),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return TargetBuild(elf, objects, dsp, max_steps, layout, core, lto)


def code_size(build: TargetBuild, stems: tuple[str, ...] = KERNEL_FILES) -> int:
    """Bytes of code the given kernel object files contribute to the linked target: their .text input
    sections that --gc-sections kept, from the linker map (what a firmware of this model carries). Not for a
    link-time optimised build: its map names one object for the whole program."""
    if build.lto:
        raise ValueError("code_size reads per-file sections: build the target without lto")
    wanted = {build.objects[s].name for s in stems}
    return sum(
        size
        for output, sec, obj, _, size in input_sections(build.elf.parent / "target.map")
        if output != "/DISCARD/" and sec.startswith(".text") and Path(obj).name in wanted
    )


def read_elf(path: Path) -> tuple[list[tuple[int, bytes]], dict[str, tuple[int, int]]]:
    """Loadable segments (address, bytes) and function/object symbols (address, size) of an ELF32 LE file."""
    raw = path.read_bytes()
    assert raw[:6] == b"\x7fELF\x01\x01", "not a little-endian ELF32 file"
    phoff, shoff = struct.unpack_from("<II", raw, 28)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", raw, 42)
    image = []
    for k in range(phnum):
        p_type, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIIII", raw, phoff + k * phentsize)
        if p_type == 1 and p_filesz:  # PT_LOAD
            image.append((p_vaddr, raw[p_offset : p_offset + p_filesz]))
    sections = [struct.unpack_from("<IIIIIIIIII", raw, shoff + k * shentsize) for k in range(shnum)]
    sym: dict[str, tuple[int, int]] = {}
    for sh in sections:
        if sh[1] != 2:  # SHT_SYMTAB
            continue
        strtab = sections[sh[6]]
        for off in range(sh[4], sh[4] + sh[5], 16):
            name, value, size, info = struct.unpack_from("<IIIB", raw, off)
            if info & 0xF in (1, 2):  # STT_OBJECT, STT_FUNC
                end = raw.index(b"\0", strtab[4] + name)
                sym[raw[strtab[4] + name : end].decode()] = (value, size)
    return image, sym


@dataclass(frozen=True)
class _Abi:
    """How unicorn calls a C function on a core: argument, stack and return-address registers."""

    args: tuple[int, ...]
    sp: int
    ra: int
    result: int
    thumb: int  # the low bit of code addresses (Thumb on Cortex-M)


_ABIS = {
    "cortex-m4f": _Abi(tuple(arm.UC_ARM_REG_R0 + k for k in range(4)), arm.UC_ARM_REG_SP, arm.UC_ARM_REG_LR,
                       arm.UC_ARM_REG_R0, 1),
    "rv32imc": _Abi((rv.UC_RISCV_REG_A0, rv.UC_RISCV_REG_A1, rv.UC_RISCV_REG_A2, rv.UC_RISCV_REG_A3),
                    rv.UC_RISCV_REG_SP, rv.UC_RISCV_REG_RA, rv.UC_RISCV_REG_A0, 0),
}  # fmt: skip


class Target:
    """One core in unicorn with the image of a TargetBuild loaded and tl_state_init done."""

    def __init__(self, build: TargetBuild, model: IntModel):
        self.model, self.build = model, build
        self.abi = _ABIS[build.core.name]
        if build.core.name == "cortex-m4f":
            self.uc = uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
            uc.ctl_set_cpu_model(arm.UC_CPU_ARM_CORTEX_M4)
        else:
            self.uc = uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
        uc.mem_map(0, 0x10000)
        uc.mem_map(FLASH, FLASH_SIZE)
        uc.mem_map(RAM, RAM_SIZE)
        image, self.sym = read_elf(build.elf)
        for vaddr, data in image:
            uc.mem_write(vaddr, data)
        if build.core.name == "cortex-m4f":
            # FPU on: CPACR CP10/CP11 full access (the reset handler's job on a real board).
            uc.reg_write(arm.UC_ARM_REG_C1_C0_2, uc.reg_read(arm.UC_ARM_REG_C1_C0_2) | (0xF << 20))
            uc.reg_write(arm.UC_ARM_REG_FPEXC, 0x4000_0000)
        self.layers = model.num_layers + len(model.backward)  # the state words drv_run records per step
        self.cells = self.layers * model.hidden_size
        if (st := self.call("drv_init")) != 0:
            raise RuntimeError(f"tl_state_init returned {st}")

    def addr(self, name: str) -> int:
        return self.sym[name][0]

    def call(self, fn: str, *args: int, count: bool = False) -> int:
        """Call a C function (up to 4 int args) and return its result; with ``count`` the instruction count
        is kept in ``self.instructions``."""
        uc, abi = self.uc, self.abi
        for reg, v in zip(abi.args, args, strict=False):
            uc.reg_write(reg, v & 0xFFFF_FFFF)
        uc.reg_write(abi.sp, STACK_TOP)
        uc.reg_write(abi.ra, STOP | abi.thumb)
        hook = None
        self.instructions = 0
        if count:

            def on_code(_uc: Uc, _addr: int, _size: int, _data: object) -> None:
                self.instructions += 1

            hook = uc.hook_add(UC_HOOK_CODE, on_code)
            uc.ctl_flush_tb()  # type: ignore[attr-defined]  # blocks translated before the hook would not call it
        try:
            uc.emu_start(self.addr(fn) | abi.thumb, STOP)
        finally:
            if hook is not None:
                uc.hook_del(hook)
                uc.ctl_flush_tb()  # type: ignore[attr-defined]
        return uc.reg_read(abi.result)

    def _input(self, xq: np.ndarray) -> np.ndarray:
        """``xq`` as the model's input type, refused (TinyLSTMError) if it is another: an int16-h model steps
        over int16 samples, every other model over int8 ones."""
        xq, want = np.asarray(xq), np.dtype(f"int{self.model.input_bits}")
        if xq.dtype != want:
            raise TinyLSTMError(
                f"the model takes {want} input, got {xq.dtype}: draw it with random_models.random_inputs or "
                "quantize it with golden.quantize_input"
            )
        return np.ascontiguousarray(xq)

    def run(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step through ``xq`` [T, I] (the model's input: int8, int16 for an int16-h model) in chunks; returns
        y [T, O], h and c [T, L, H] after every step (h int8, or int16 for an int16-h model; a bidirectional
        model's [T, 2L, H], as golden.state_trace)."""
        m = self.model
        h_type = m.hidden_dtype
        xq = self._input(xq)
        ys, hs, cs = [], [], []
        for t0 in range(0, len(xq), self.build.max_steps):
            chunk = xq[t0 : t0 + self.build.max_steps]
            n = len(chunk)
            self.uc.mem_write(self.addr("drv_x"), chunk.tobytes())
            if (st := self.call("drv_run", n)) != 0:
                raise RuntimeError(f"{step_function(m)} returned {st}")
            ys.append(self._read("drv_y", np.int16, n * m.output_size).reshape(n, m.output_size))
            hs.append(self._read("drv_h", h_type, n * self.cells).reshape(n, self.layers, m.hidden_size))
            cs.append(self._read("drv_c", np.int16, n * self.cells).reshape(n, self.layers, m.hidden_size))
        return np.concatenate(ys), np.concatenate(hs), np.concatenate(cs)

    def _read(self, name: str, dtype: type | np.dtype, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        return np.frombuffer(bytes(self.uc.mem_read(self.addr(name), size)), dtype=dtype).copy()

    def measure_step(self, x: np.ndarray) -> tuple[int, int]:
        """(instructions, stack bytes) of exactly one call of the model's step function (tl_step, an int16-h
        model's tl_step_s16) with input ``x`` [I] of its input type, from the current state. The stack is
        painted with 0xA5 first; the high-water mark is the deepest changed byte."""
        uc, step = self.uc, step_function(self.model)
        uc.mem_write(self.addr("drv_x"), self._input(x).tobytes())
        uc.mem_write(STACK_TOP - STACK_SIZE, bytes([PAINT]) * STACK_SIZE)
        st = self.call(step, self.addr("drv_state"), self.addr("drv_x"), self.addr("drv_y"), count=True)
        if st != 0:
            raise RuntimeError(f"{step} returned {st}")
        stack = bytes(uc.mem_read(STACK_TOP - STACK_SIZE, STACK_SIZE))
        used = next((STACK_SIZE - k for k, b in enumerate(stack) if b != PAINT), 0)
        return self.instructions, used
