"""The C kernel on Xtensa (host/targets/xtensa.py, firmware/tests/xtensa/README.md).

- Compile gate: every kernel source, the firmware app (tl_proto.c, tl_app.c), a generated model and
  its replay data build without a warning for the ESP32 (clang-22/llc-22 -mcpu=esp32, windowed ABI)
  and the ESP8266 core (xtensa-lx106-elf-gcc, call0 ABI), in both weight layouts and with an int16
  hidden state (-DTL_HIDDEN16, the flags of ``build_defines``).
- Kernel runs: LSTM and GRU models with 1, 2 and 3 layers stepped over 2,000 int8 samples in QEMU
  ``-M sim`` on dc233c (clang/llc, windowed ABI) and lx106 (gcc, call0 ABI): every output, hidden and
  cell state word of every step equals codegen/golden.py; the same for int16-h models (2 layers, int16
  samples over their whole range, tl_step_s16) and bidirectional window models (both directions' words).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tinylstm.codegen import golden
from tinylstm.codegen.emit_c import Layout, build_defines
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_inputs, random_int_model, random_quantized_model
from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import input_qmax
from tinylstm.host.targets import xtensa
from tinylstm.host.targets.xtensa import Core, KernelObjects, Toolchain, XtensaError

STEPS = 2000
INPUT, HIDDEN, OUTPUT = 7, 21, 5  # not multiples of 4: every dot-product tail runs


def need(tools: tuple[str, ...]) -> None:
    missing = xtensa.missing_tools(tools)
    if missing:
        pytest.skip(
            f"missing {', '.join(missing)}: scripts/setup.sh installs clang-22, llvm-22, gcc-xtensa-lx106 "
            "and qemu-system-misc"
        )


def samples(rng: np.random.Generator, model: IntModel, steps: int = STEPS) -> np.ndarray:
    """``steps`` samples over the whole range of the model's input type (int8, an int16-h model's int16)."""
    xq = random_inputs(rng, model, steps)
    top = input_qmax(model.input_bits)
    xq[::97] = top  # runs of full-scale input
    xq[::89] = -top - 1
    return xq


def saturating_model(cell: str, layers: int, hidden_bits: int = 8) -> tuple[IntModel, np.ndarray]:
    """Full-range int8 weights, multipliers that saturate some gates, shifts on both sides of 32 (both
    routes of tl_requantize_fast; int16-h models: the default shifts, +2, of random_int_model)."""
    rng = np.random.default_rng(1000 + 10 * layers + CELLS[cell].code)
    if hidden_bits == 16:
        model = random_int_model(rng, cell, layers, INPUT, HIDDEN, OUTPUT, hidden_bits=16)
    else:
        model = random_int_model(rng, cell, layers, INPUT, HIDDEN, OUTPUT, 18, 40)
    return model, samples(rng, model)


KernelFactory = Callable[..., KernelObjects]  # (core, layout="w8", hidden_bits=8, input16=False)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> KernelFactory:
    """The kernel objects of a core, layout and hidden state, compiled once per module."""
    built: dict[tuple[Core, Layout, int, bool], KernelObjects] = {}

    def get(core: Core, layout: Layout = "w8", hidden_bits: int = 8, input16: bool = False) -> KernelObjects:
        need(xtensa.RUN_TOOLS[core])
        key = (core, layout, hidden_bits, input16)
        if key not in built:
            out = tmp_path_factory.mktemp(f"{core}-{layout}-h{hidden_bits}{'-x16' if input16 else ''}")
            built[key] = xtensa.compile_kernel(core, out, layout, hidden_bits, input16)
        return built[key]

    return get


@pytest.mark.parametrize("layout,hidden_bits", [("w8", 8), ("w16", 8), ("w8", 16)], ids=["w8", "w16", "h16"])
@pytest.mark.parametrize("toolchain", xtensa.TOOLCHAINS)
def test_compile_gate(toolchain: Toolchain, layout: Layout, hidden_bits: int, tmp_path: Path) -> None:
    need(xtensa.GATE_TOOLS[toolchain])
    model, xq = saturating_model("lstm", 2, hidden_bits)
    gen = tmp_path / "gen"
    xtensa.write_model(model, gen, xq[:64], layout)
    build = build_defines(model, layout)
    assert ("-DTL_HIDDEN16" in build) == (hidden_bits == 16)
    objs = xtensa.compile_gate(toolchain, gen, tmp_path / "obj", build)
    assert [o.name.split(".")[0] for o in objs] == [s.name.split(".")[0] for s in xtensa.gate_sources(gen)]
    assert all(o.stat().st_size > 0 for o in objs)


@pytest.mark.parametrize("toolchain", xtensa.TOOLCHAINS)
def test_compile_gate_fails_on_a_warning(toolchain: Toolchain, tmp_path: Path) -> None:
    need(xtensa.GATE_TOOLS[toolchain])
    src = tmp_path / "warns.c"
    src.write_text("int warns(int x);\nint warns(int x)\n{\n    int unused;\n    return x;\n}\n")
    with pytest.raises(XtensaError, match="unused") as err:
        if toolchain == "esp32":
            xtensa.compile_llvm(src, tmp_path, [], {}, "esp32")
        else:
            xtensa.compile_gcc(src, tmp_path, [], {})
    assert "warns.c" in str(err.value)  # the failing command is in the message


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("core", xtensa.CORES)
def test_kernel_bit_exact(kernel: KernelFactory, core: Core, cell: str, layers: int, tmp_path: Path) -> None:
    model, xq = saturating_model(cell, layers)
    got = xtensa.verify_kernel(kernel(core, "w8"), model, xq, tmp_path)
    assert len(got) == STEPS


@pytest.mark.parametrize("readout,hidden_bits", [("mean", 8), ("max", 8), ("mean", 16)])
@pytest.mark.parametrize("core", xtensa.CORES)
def test_pooled_readout_bit_exact(
    kernel: KernelFactory, core: Core, readout: str, hidden_bits: int, tmp_path: Path
) -> None:
    """The pooled readouts (csrc/tl_pool.c): the mean's int32 division (DIV32 on dc233c, __divsi3 on lx106)
    and the running maximum, every output and state word."""
    model, xq = saturating_model("lstm", 2, hidden_bits)
    model = dataclasses.replace(model, readout=readout)
    xtensa.verify_kernel(kernel(core, "w8", hidden_bits), model, xq, tmp_path)


@pytest.mark.parametrize("cell,readout,stack", [("lstm", "mean", 1), ("gru", "max", 3), ("rnn", "last", 2)])
@pytest.mark.parametrize("core", xtensa.CORES)
def test_bidirectional_bit_exact(
    kernel: KernelFactory, core: Core, cell: str, readout: str, stack: int, tmp_path: Path
) -> None:
    """Bidirectional window models (csrc/tl_bidir.c): 2 layers each way, windows of 61 samples (not a whole
    number of stacked steps), the backward pass at every window's last sample; every output and both
    directions' h and c words."""
    rng = np.random.default_rng(77 + stack)
    model = random_int_model(
        rng, cell, 2, INPUT, HIDDEN, OUTPUT, 18, 40, readout=readout, stack=stack, window=61
    )
    xtensa.verify_kernel(kernel(core, "w8"), model, samples(rng, model, 61 * 8 + 5), tmp_path)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("core", xtensa.CORES)
def test_kernel_bit_exact_w16(kernel: KernelFactory, core: Core, cell: str, tmp_path: Path) -> None:
    """The w16 weight layout (portable C path of tl_dot.c, built with -DTL_LAYOUT_W16)."""
    model, xq = saturating_model(cell, 2)
    xtensa.verify_kernel(kernel(core, "w16"), model, xq, tmp_path)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("core", xtensa.CORES)
def test_kernel_bit_exact_hidden16(kernel: KernelFactory, core: Core, cell: str, tmp_path: Path) -> None:
    """An int16-h model (-DTL_HIDDEN16: int16 input and h words, tl_step_s16, tl_dot_s16.c, the int64
    requantization), 2 layers, h words that reach their extremes; the int8-h kernel objects refuse it before
    building anything, and so does the run for int8 samples."""
    model, xq = saturating_model(cell, 2, hidden_bits=16)
    assert xq.dtype == np.int16
    got = xtensa.verify_kernel(kernel(core, "w8", 16), model, xq, tmp_path)
    assert got["h"].dtype == np.int16 and np.abs(got["h"]).max() >= 32000
    with pytest.raises(XtensaError, match="TL_HIDDEN16"):
        xtensa.run_kernel(kernel(core, "w8"), model, xq, tmp_path / "refused")
    with pytest.raises(XtensaError, match="takes int16 samples, got int8"):
        xtensa.run_kernel(kernel(core, "w8", 16), model, xq.astype(np.int8), tmp_path / "int8")


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("core", xtensa.CORES)
def test_kernel_bit_exact_input16(kernel: KernelFactory, core: Core, cell: str, tmp_path: Path) -> None:
    """An int16 input on an int8 h (-DTL_INPUT16: layer 0's int16 step over int16 samples, the int64 row sums,
    the int8 layers above), 2 layers, full-range samples; kernel objects built without TL_INPUT16 refuse it
    before building anything."""
    rng = np.random.default_rng(2000 + CELLS[cell].code)
    model = random_int_model(rng, cell, 2, INPUT, HIDDEN, OUTPUT, 30, 44, input_bits=16)
    xq = samples(rng, model)
    assert xq.dtype == np.int16
    objects = kernel(core, "w8", 8, True)
    assert "-DTL_INPUT16" in objects.build
    got = xtensa.verify_kernel(objects, model, xq, tmp_path)
    assert got["h"].dtype == np.int8
    with pytest.raises(XtensaError, match="input16=True"):
        xtensa.run_kernel(kernel(core, "w8"), model, xq, tmp_path / "refused")


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("core", xtensa.CORES)
def test_calibrated_model_bit_exact(kernel: KernelFactory, core: Core, cell: str, tmp_path: Path) -> None:
    """A PyTorch-initialised model quantized by the real calibration path: outputs mostly unsaturated."""
    rng = np.random.default_rng(5)
    t = np.arange(STEPS)[:, None]
    x = np.sin(t / (9 + 5 * np.arange(INPUT))) * 2 + rng.standard_normal((STEPS, INPUT)) * 0.3
    model = random_quantized_model(3, cell, 2, INPUT, HIDDEN, OUTPUT, x[None, :500])
    xq = golden.quantize_input(model, x.astype(np.float32))
    got = xtensa.verify_kernel(kernel(core, "w8"), model, xq, tmp_path)
    assert len(np.unique(got["y"])) > 100  # the outputs move: not a saturated head


def test_a_corrupted_record_is_caught(kernel: KernelFactory, tmp_path: Path) -> None:
    """The comparison itself: one flipped bit of one cell-state word on one step is reported."""
    model, xq = saturating_model("lstm", 2)
    got = xtensa.run_kernel(kernel("dc233c", "w8"), model, xq[:300], tmp_path).copy()
    xtensa.check_records(model, xq[:300], got)
    got["c"][257, 30] ^= 1
    with pytest.raises(XtensaError, match=r"c\[30\] at step 257"):
        xtensa.check_records(model, xq[:300], got)


@pytest.mark.parametrize("core", xtensa.CORES)
def test_a_fault_ends_the_run_with_its_cause(kernel: KernelFactory, core: Core, tmp_path: Path) -> None:
    """An illegal instruction reaches the startup's exception vector and exits 128 + EXCCAUSE: a
    broken build fails fast instead of hanging QEMU."""
    src = tmp_path / "trap.c"
    src.write_text(
        "#include <stdint.h>\nint main(void);\nvolatile int32_t zero;\n"
        'int main(void)\n{\n    if (zero == 0) __asm__ volatile("ill");\n    return 0;\n}\n'
    )
    elf = xtensa.link_elf(kernel(core, "w8"), [src], [], tmp_path / "trap.elf")
    with pytest.raises(XtensaError, match="status 128 .exception: EXCCAUSE 0, illegal instruction"):
        xtensa.run_elf(core, elf, timeout=20)
