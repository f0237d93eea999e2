"""Cortex-M4 code of the kernel, run in unicorn: the SMLAD path (__ARM_FEATURE_DSP) and the portable
path (-DTL_NO_DSP) both equal the numpy golden bit for bit, every output and every state word.

Streams are 4,000 steps (10,000 for one model per cell): unicorn runs the kernel at tens of millions
of instructions per second, so the longest case (3 layers x 33 units) takes a few seconds; the host
parity tests run the same arithmetic for 10,000 steps on more models.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from kernel_models import random_int_model
from tinylstm.codegen import golden

pytest.importorskip("unicorn")
if shutil.which("arm-none-eabi-gcc") is None:
    pytest.skip("arm-none-eabi-gcc not installed", allow_module_level=True)

from unicorn_runner import M4Target, build_target

# (cell, layers, input, hidden, output, steps): odd widths leave 1..3-element tails in the x part,
# the h part and the head; hidden 1..3 exercise the shortest rows; input 8/16 the unrolled pairs.
CASES = [
    ("lstm", 1, 6, 32, 4, 10_000),
    ("gru", 1, 6, 32, 4, 10_000),
    ("lstm", 2, 7, 19, 5, 4_000),
    ("gru", 2, 7, 19, 5, 4_000),
    ("lstm", 3, 9, 33, 3, 4_000),
    ("gru", 3, 9, 33, 3, 4_000),
    ("lstm", 1, 1, 1, 1, 2_000),
    ("gru", 2, 3, 2, 2, 2_000),
    ("lstm", 2, 16, 13, 7, 2_000),
    ("gru", 1, 5, 67, 6, 2_000),
]


@pytest.mark.parametrize("dsp", [True, False], ids=["dsp", "portable"])
@pytest.mark.parametrize("cell,layers,inp,hidden,out,steps", CASES)
def test_m4_bit_exact_with_golden(tmp_path: Path, dsp: bool, cell: str, layers: int, inp: int, hidden: int,
                                  out: int, steps: int) -> None:
    rng = np.random.default_rng(hidden * 100 + inp)
    model = random_int_model(rng, cell, layers, inp, hidden, out, 18, 40)  # shifts both sides of 32
    xq = rng.integers(-128, 128, (steps, inp)).astype(np.int8)
    xq[::97] = 127
    xq[::89] = -128
    target = M4Target(build_target(model, tmp_path, dsp=dsp), model)
    y, h, c = target.run(xq)
    y_ref, _, tr = golden.run(model, xq[None], trace=True)
    for t in range(steps):  # first differing step, for a readable failure
        if not (np.array_equal(y[t], y_ref[0, t]) and np.array_equal(h[t], tr["h"][0, t])
                and np.array_equal(c[t], tr["c"][0, t])):
            raise AssertionError(f"Cortex-M4 ({'dsp' if dsp else 'portable'}) and golden differ at step {t}:\n"
                                 f"y {y[t]} vs {y_ref[0, t]}\nh {h[t].ravel()[:16]} vs {tr['h'][0, t].ravel()[:16]}")


def test_dsp_path_is_really_used(tmp_path: Path) -> None:
    """The DSP build executes SMLAD and needs fewer instructions per step than the portable one."""
    rng = np.random.default_rng(5)
    model = random_int_model(rng, "lstm", 1, 6, 32, 4)
    counts = {}
    for dsp in (True, False):
        build = build_target(model, tmp_path / str(dsp), dsp=dsp, max_steps=8)
        target = M4Target(build, model)
        target.run(rng.integers(-128, 128, (4, 6)).astype(np.int8))
        counts[dsp], _ = target.measure_step(rng.integers(-128, 128, 6).astype(np.int8))
        dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(build.objects["tl_dot"])],
                                           capture_output=True, text=True, check=True).stdout
        assert ("smlad" in dis) == dsp
    assert counts[True] < 0.85 * counts[False], counts
