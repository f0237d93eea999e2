"""Cortex-M4 code of the kernel, run in unicorn: the SMLAD path (__ARM_FEATURE_DSP) and the portable
path (-DTL_NO_DSP), each with the default int8 weight layout and the fast int16 one (codegen
``layout="w16"``), all equal the numpy golden bit for bit, every output and every state word. The host
bridge built from an w16-emitted model (portable path, x86/ARM host) is checked the same way. So are
int16-h models (int16 Q0.15 h and int16 input, -DTL_HIDDEN16: tl_dot_s16.c's SMLAD path and its portable one,
stepped by tl_step_s16) with every tail of the int16-activation dot products, stacked too, and int8-h models
with an int16 input (-DTL_INPUT16: layer 0's int16 step, the int8 layers above; w8 and w16).

Streams are 4,000 steps (6,000 for one model per cell): unicorn runs the kernel at tens of millions
of instructions per second, so the longest case (3 layers x 33 units) takes a few seconds; the host
parity tests run the same arithmetic for 10,000 steps on more models.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinylstm.codegen import golden
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_inputs, random_int_model, random_quantized_model
from tinylstm.contract.cells import CELLS
from tinylstm.contract.constants import input_qmax
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.csources import C_FLAGS, csrc_dir, kernel_sources

pytest.importorskip("unicorn")
if shutil.which("arm-none-eabi-gcc") is None:
    pytest.skip("arm-none-eabi-gcc not installed", allow_module_level=True)

from sanitized_harness import check_sanitized_run

from tinylstm.host.targets.unicorn_runner import Target, build_target, code_size

# (cell, layers, input, hidden, output, steps): odd widths leave 1..3-element tails in the x part,
# the h part and the head; hidden 1..3 exercise the shortest rows; input 8/16 the unrolled pairs.
CASES = [
    ("lstm", 1, 6, 32, 4, 6_000),
    ("gru", 1, 6, 32, 4, 6_000),
    ("lstm", 2, 7, 19, 5, 4_000),
    ("gru", 2, 7, 19, 5, 4_000),
    ("lstm", 3, 9, 33, 3, 4_000),
    ("gru", 3, 9, 33, 3, 4_000),
    ("lstm", 1, 1, 1, 1, 2_000),
    ("gru", 2, 3, 2, 2, 2_000),
    ("lstm", 2, 16, 13, 7, 2_000),
    ("gru", 1, 5, 67, 6, 2_000),
    ("rnn", 2, 7, 19, 5, 4_000),
    ("rnn", 3, 16, 33, 3, 2_000),
]


SHORT_STEPS = 2_000  # the portable and w16 builds' share of a case's stream


@functools.cache
def _golden_case(
    cell: str, layers: int, inp: int, hidden: int, out: int, steps: int
) -> tuple[IntModel, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A case's random model (shifts both sides of 32), its input (rails every 97th and 89th sample) and the
    golden outputs, h and c of every step: computed once for the four builds that must equal them."""
    rng = np.random.default_rng(hidden * 100 + inp)
    model = random_int_model(rng, cell, layers, inp, hidden, out, 18, 40)
    xq = rng.integers(-128, 128, (steps, inp)).astype(np.int8)
    xq[::97] = 127
    xq[::89] = -128
    y_ref, _, tr = golden.run(model, xq[None], trace=True)
    return model, xq, y_ref[0], tr["h"][0], tr["c"][0]


@pytest.mark.parametrize("layout", ["w8", "w16"])
@pytest.mark.parametrize("dsp", [True, False], ids=["dsp", "portable"])
@pytest.mark.parametrize("cell,layers,inp,hidden,out,steps", CASES)
def test_m4_bit_exact_with_golden(
    tmp_path: Path,
    dsp: bool,
    layout: str,
    cell: str,
    layers: int,
    inp: int,
    hidden: int,
    out: int,
    steps: int,
) -> None:
    model, xq, y_ref, h_ref, c_ref = _golden_case(cell, layers, inp, hidden, out, steps)
    if not dsp or layout != "w8":  # the firmware's default path runs the whole stream; the others its start
        steps = min(steps, SHORT_STEPS)
        xq, y_ref, h_ref, c_ref = xq[:steps], y_ref[:steps], h_ref[:steps], c_ref[:steps]
    target = Target(build_target(model, tmp_path, dsp=dsp, layout=layout), model)
    y, h, c = target.run(xq)
    if np.array_equal(y, y_ref) and np.array_equal(h, h_ref) and np.array_equal(c, c_ref):
        return
    for t in range(steps):  # the first differing step, for a readable failure
        if not (
            np.array_equal(y[t], y_ref[t])
            and np.array_equal(h[t], h_ref[t])
            and np.array_equal(c[t], c_ref[t])
        ):
            raise AssertionError(
                f"Cortex-M4 ({'dsp' if dsp else 'portable'}, {layout}) and golden differ at step {t}:\n"
                f"y {y[t]} vs {y_ref[t]}\nh {h[t].ravel()[:16]} vs {h_ref[t].ravel()[:16]}"
            )
    raise AssertionError(f"shapes differ: {y.shape} {h.shape} {c.shape} vs {y_ref.shape} {h_ref.shape}")


@pytest.mark.parametrize("cell,layers,inp,hidden,out,steps", [CASES[2], CASES[3]])
def test_m4_link_time_optimised_bit_exact(
    tmp_path: Path, cell: str, layers: int, inp: int, hidden: int, out: int, steps: int
) -> None:
    """The firmware's build is link-time optimised (host/boards/toolchain.py): the kernel inlined into its
    caller at -Os computes the same outputs and states, DSP path, 2 layers with tails."""
    model, xq, y_ref, h_ref, c_ref = _golden_case(cell, layers, inp, hidden, out, steps)
    build = build_target(model, tmp_path, opt="-Os", lto=True)
    y, h, c = Target(build, model).run(xq)
    assert np.array_equal(y, y_ref) and np.array_equal(h, h_ref) and np.array_equal(c, c_ref)
    with pytest.raises(ValueError, match="without lto"):
        code_size(build)


# (hidden bits, hidden size, the object with the dot products, the DSP instructions it must hold, the largest
# DSP / portable instruction ratio): int8 h, and int16 h (LSTM 6 x 64: about 0.72x)
DSP_USE = [
    (8, 32, "tl_dot", ("smlad",), 0.85),
    (16, 64, "tl_dot_s16", ("smlad", "pkhbt", "pkhtb", "sxtb16"), 0.8),
]


@pytest.mark.parametrize(("hidden_bits", "hidden", "obj", "ops", "ratio"), DSP_USE)
def test_dsp_path_is_really_used(
    tmp_path: Path, hidden_bits: int, hidden: int, obj: str, ops: tuple[str, ...], ratio: float
) -> None:
    """The DSP build executes the SMLAD code (the portable one has none of its instructions) and needs
    clearly fewer instructions per step, with either hidden state."""
    rng = np.random.default_rng(5)
    model = random_int_model(rng, "lstm", 1, 6, hidden, 4, hidden_bits=hidden_bits)
    counts = {}
    for dsp in (True, False):
        build = build_target(model, tmp_path / str(dsp), dsp=dsp, max_steps=8)
        target = Target(build, model)
        target.run(random_inputs(rng, model, 4))
        counts[dsp], _ = target.measure_step(random_inputs(rng, model))
        dis = subprocess.run(
            ["arm-none-eabi-objdump", "-d", str(build.objects[obj])],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert all((op in dis) == dsp for op in ops), dis[:2000]
    assert counts[True] < ratio * counts[False], counts


# Every tail length (I % 4, H % 4 in 0..3, odd G*n for GRU's padding), hidden 8/16 for the 2- and 4-group
# passes, and shifts on both sides of 32; w16 against the golden on the DSP path, 3,000 steps each.
W16_SHAPES = [
    (cell, layers, inp, hidden)
    for cell in CELLS
    for layers, inp, hidden in ((1, 4, 8), (2, 1, 17), (1, 2, 18), (2, 3, 23), (1, 11, 16), (1, 40, 4))
]


@pytest.mark.parametrize("cell,layers,inp,hidden", W16_SHAPES)
def test_m4_w16_tails_bit_exact(tmp_path: Path, cell: str, layers: int, inp: int, hidden: int) -> None:
    rng = np.random.default_rng(inp * 1000 + hidden)
    model = random_int_model(rng, cell, layers, inp, hidden, 3, 18, 40)
    xq = rng.integers(-128, 128, (3_000, inp)).astype(np.int8)
    target = Target(build_target(model, tmp_path, layout="w16"), model)
    y, h, c = target.run(xq)
    y_ref, _, tr = golden.run(model, xq[None], trace=True)
    assert np.array_equal(y, y_ref[0]) and np.array_equal(h, tr["h"][0]) and np.array_equal(c, tr["c"][0])


def test_w16_layout_is_the_same_model(tmp_path: Path) -> None:
    """Same hash and the same int8 values (times the alignment factors) in the emitted w16 source; no int8
    gate weights emitted; the w16 DSP step needs fewer instructions than the w8 one."""
    rng = np.random.default_rng(9)
    model = random_int_model(rng, "lstm", 1, 6, 32, 4)
    counts = {}
    for layout in ("w8", "w16"):
        build = build_target(model, tmp_path / layout, layout=layout, max_steps=8)
        src = (tmp_path / layout / "tl_model.c").read_text()
        assert f"0x{model.model_hash:08x}u" in src
        assert ("l0_weights16" in src) == (layout == "w16") and ("l0_weights[" in src) == (layout == "w8")
        target = Target(build, model)
        target.run(rng.integers(-128, 128, (4, 6)).astype(np.int8))
        counts[layout], _ = target.measure_step(rng.integers(-128, 128, 6).astype(np.int8))
    assert counts["w16"] < 0.8 * counts["w8"], counts


@pytest.mark.parametrize("cell", list(CELLS))
def test_host_bridge_w16_bit_exact(tmp_path: Path, cell: str) -> None:
    """The cffi bridge built from an w16-emitted model (portable C on the host) equals the golden."""
    from tinylstm.host.targets.bridge import CModel

    rng = np.random.default_rng(21)
    model = random_int_model(rng, cell, 2, 7, 19, 5, 18, 40)
    xq = rng.integers(-128, 128, (5_000, 7)).astype(np.int8)
    cm = CModel.from_int_model(model, cache_dir=tmp_path, layout="w16")
    y = cm.run(xq)
    y_ref, _, tr = golden.run(model, xq[None], trace=True)
    assert np.array_equal(y, y_ref[0])
    assert np.array_equal(cm.h.reshape(2, 19), tr["h"][0, -1])
    if cell == "lstm":
        assert np.array_equal(cm.c.reshape(2, 19), tr["c"][0, -1])


@pytest.mark.slow
def test_w16_sanitized_host_build(tmp_path: Path) -> None:
    """The w16 portable path under -fsanitize=address,undefined, every cell, 3 layers, 5,000 steps."""
    for cell in CELLS:
        model = random_int_model(rng := np.random.default_rng(4), cell, 3, 9, 33, 5, 10, 40)
        check_sanitized_run(model, tmp_path / cell, 5_000, rng, layout="w16")


@pytest.mark.parametrize("opt", ["-O0", "-Og", "-Os", "-O2", "-O3"])
def test_kernel_builds_for_m4_at_every_optimization_level(tmp_path: Path, opt: str) -> None:
    """Debug builds (-O0) take the portable path: the SMLAD inline asm needs an optimizing build."""
    gcc = shutil.which("arm-none-eabi-gcc")
    assert gcc, "arm-none-eabi-gcc is required (scripts/setup.sh installs it)"
    for layout in ([], ["-DTL_LAYOUT_W16"], ["-DTL_HIDDEN16"]):
        for src in kernel_sources():
            cmd = [
                gcc,
                "-mcpu=cortex-m4",
                "-mthumb",
                "-mfloat-abi=hard",
                "-mfpu=fpv4-sp-d16",
                opt,
                *layout,
                *C_FLAGS,
                "-I",
                str(csrc_dir()),
                "-c",
                str(src),
                "-o",
                str(tmp_path / f"{src.stem}.o"),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"


# ---- int16 hidden state (-DTL_HIDDEN16): the s16 dot products of tl_dot_s16.c ----------------------------

# (cell, layers, input, hidden, output, shift_lo, shift_hi). The hidden size is n for the h part, for the x
# part of layers >= 1 and for the head: n % 4 = 0..3 after one or two 8-groups (the unrolled loop), with and
# without the 4-group, and hidden 3 (the tail only). The input is layer 0's int16 model input (tl_dot_s16.c
# too), n % 4 = 0..3 too. Outputs 1..7 leave the head 1, 2 or 3 rows after its 4-row passes (single rows,
# tl_dot3_s8s16).
# Shifts: random_int_model's default (gates mostly saturated, h words at their extremes), or 30..44 (most
# gates off their rails). Odd hidden sizes leave layer 1's h words 2 mod 4 bytes from a word.
H16_SHAPES = [
    (cell, *shape)
    for cell in CELLS
    for shape in (
        (1, 4, 8, 4, 18, 34),
        (2, 1, 17, 5, 30, 44),
        (1, 2, 18, 6, 18, 34),
        (2, 3, 23, 7, 30, 44),
        (3, 6, 12, 1, 18, 34),
        (2, 5, 3, 2, 30, 44),
        (1, 9, 4, 3, 30, 44),
        (2, 7, 29, 3, 18, 34),
    )
]


def _assert_m4_runs_golden(tmp_path: Path, model: IntModel, xq: np.ndarray, layout: str = "w8") -> None:
    """The DSP and the portable (-DTL_NO_DSP) builds of an int16-h or int16-input model both equal the golden:
    every output and every h and c word of every step (the first differing step, for a readable failure)."""
    y_ref, _, tr = golden.run(model, xq[None], trace=True)
    ref = (y_ref[0], tr["h"][0], tr["c"][0])
    for dsp in (True, False):
        path = "dsp" if dsp else "portable"
        target = Target(build_target(model, tmp_path / path, dsp=dsp, layout=layout), model)
        got = target.run(xq)
        assert got[1].dtype == model.hidden_dtype
        for t in range(len(xq)):
            if not all(np.array_equal(g[t], r[t]) for g, r in zip(got, ref, strict=True)):
                raise AssertionError(
                    f"Cortex-M4 ({path}, {model.label}) and golden differ at step {t}:\n"
                    f"y {got[0][t]} vs {ref[0][t]}\nh {got[1][t].ravel()[:16]} vs {ref[1][t].ravel()[:16]}"
                )


@pytest.mark.parametrize("cell,layers,inp,hidden,out,shift_lo,shift_hi", H16_SHAPES)
def test_m4_hidden16_bit_exact(
    tmp_path: Path, cell: str, layers: int, inp: int, hidden: int, out: int, shift_lo: int, shift_hi: int
) -> None:
    """Saturating int16-h random models (full-range weights, biases at the bound), int16 input over its whole
    range with runs of full-scale input, on both M4 paths: the 3-layer shape over 3,000 steps, the others
    (their x- and h-part tails) over 1,000."""
    rng = np.random.default_rng(inp * 1000 + hidden * 10 + layers)
    model = random_int_model(rng, cell, layers, inp, hidden, out, shift_lo, shift_hi, hidden_bits=16)
    steps = 3_000 if layers == 3 else 1_000
    _assert_m4_runs_golden(tmp_path, model, _rails(random_inputs(rng, model, steps), model))


def _rails(xq: np.ndarray, model: IntModel) -> np.ndarray:
    """``xq`` with every 97th sample at the input type's top and every 89th at its bottom (in place)."""
    top = input_qmax(model.input_bits)
    xq[::97] = top
    xq[::89] = -top - 1
    return xq


@pytest.mark.parametrize("cell,stack,readout", [("lstm", 3, "last"), ("gru", 2, "mean")])
def test_m4_hidden16_stacked_bit_exact(tmp_path: Path, cell: str, stack: int, readout: str) -> None:
    """A stacked int16-h model (tl_step_s16 buffers k int16 samples in tl_state_t.stack16; layer 0 reads
    k * C of them per step, x-part tails 3 and 2), 2 layers, 3,000 samples (not a whole number of steps), both
    M4 paths; the runner refuses int8 samples for it."""
    rng = np.random.default_rng(40 + stack)
    model = random_int_model(rng, cell, 2, 5, 13, 3, 30, 44, hidden_bits=16, readout=readout, stack=stack)
    xq = _rails(random_inputs(rng, model, 3_000), model)
    _assert_m4_runs_golden(tmp_path, model, xq)
    target = Target(build_target(model, tmp_path / "refused", max_steps=8), model)
    with pytest.raises(TinyLSTMError, match="int16 input, got int8"):
        target.run(xq[:8].astype(np.int8))


@pytest.mark.parametrize("cell", list(CELLS))
def test_m4_hidden16_calibrated_bit_exact(tmp_path: Path, cell: str) -> None:
    """A PyTorch-initialised int16-h model quantized through the real calibration path (2 layers, hidden 27),
    4,000 steps of a signal with bursts past the calibrated range: outputs that move."""
    rng = np.random.default_rng(8)
    t = np.arange(4_000)[:, None]
    x = np.sin(t / (11 + 4 * np.arange(5))) * 2 + rng.standard_normal((4_000, 5)) * 0.3
    x[rng.integers(0, 4_000, 40)] *= 6
    model = random_quantized_model(4, cell, 2, 5, 27, 3, x[None, :1000], hidden_bits=16)
    assert model.hidden_bits == 16
    xq = golden.quantize_input(model, x.astype(np.float32))
    y_ref, _, _ = golden.run(model, xq[None])
    assert len(np.unique(y_ref)) > 100
    _assert_m4_runs_golden(tmp_path, model, xq)


# ---- int16 input on an int8 h (-DTL_INPUT16): layer 0's int16 step, the int8 layers above ------------------

# (cell, layers, input, hidden, output): layer 0's int16 x part with tails of 0..3 after 8-groups, its int8 h
# part and the int8 layers above with theirs.
X16_SHAPES = [
    (cell, *shape) for cell in CELLS for shape in ((1, 8, 8, 4), (2, 5, 17, 5), (3, 6, 12, 1), (2, 11, 23, 3))
]


@pytest.mark.parametrize("layout", ["w8", "w16"])
@pytest.mark.parametrize("cell,layers,inp,hidden,out", X16_SHAPES)
def test_m4_input16_bit_exact(
    tmp_path: Path, layout: str, cell: str, layers: int, inp: int, hidden: int, out: int
) -> None:
    """Saturating int8-h random models with an int16 input (layer 0's multipliers of MULT16_BITS, its biases
    at the bound), int16 samples over their whole range with runs at both rails, both M4 paths, w8 and w16
    (which keeps layer 0 in int8 rows): the 3-layer shapes over 2,000 steps, the others over 1,000."""
    rng = np.random.default_rng(inp * 1000 + hidden * 10 + layers)
    model = random_int_model(rng, cell, layers, inp, hidden, out, 30, 44, input_bits=16)
    steps = 2_000 if layers == 3 else 1_000
    _assert_m4_runs_golden(tmp_path, model, _rails(random_inputs(rng, model, steps), model), layout)


@pytest.mark.parametrize("cell,stack,readout", [("lstm", 3, "max"), ("gru", 2, "mean"), ("rnn", 4, "last")])
def test_m4_input16_stacked_calibrated_bit_exact(tmp_path: Path, cell: str, stack: int, readout: str) -> None:
    """A PyTorch-initialised model quantized with an int16 input through the real calibration path (2 layers,
    stacked, pooled), 3,000 samples of a spiky signal; the runner refuses int8 samples for it."""
    rng = np.random.default_rng(9)
    t = np.arange(3_000)[:, None]
    x = np.sin(t / (11 + 4 * np.arange(4))) * 0.5 + rng.standard_normal((3_000, 4)) * 0.05
    x[rng.integers(0, 3_000, 60)] *= 30
    model = random_quantized_model(
        4, cell, 2, 4, 21, 3, x[None, :1200], readout=readout, stack=stack, input_bits=16
    )
    assert model.input16
    xq = golden.quantize_input(model, x.astype(np.float32))
    _assert_m4_runs_golden(tmp_path, model, xq)
    target = Target(build_target(model, tmp_path / "refused", max_steps=8), model)
    with pytest.raises(TinyLSTMError, match="int16 input, got int8"):
        target.run(xq[:8].astype(np.int8))
