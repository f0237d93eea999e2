"""Bidirectional window models (docs/integer-contract.md, "Bidirectional window models"; blobs of 9 + 12L
sections, docs/model-blob.md) in the MicroPython fallback (firmware/micropython/tinylstm_mpy.py), against the
golden model: every output, the forward and backward h and c words (state()), the window buffer and its
position, both pools, the stack buffer, the phase and the step count after every sample of streams of several
windows, with a reset mid-window; under CPython and under the ``micropython`` executable (viper and plain
loops), through host/targets/mpy_runner.run_blob, and the board example's per-window predictions.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from array import array
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mpy_words import (
    BIDIR_KEYS,
    MICROPYTHON,
    assert_words,
    fallback_words,
    full_range_inputs,
    golden_words,
    needs_micropython,
    run_driver,
    sample_array,
)

from tinylstm.codegen import blob, golden
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.random_models import random_int_model, random_quantized_model
from tinylstm.contract.cells import CELLS
from tinylstm.host.targets.mpy_runner import run_blob

READOUT_NAMES = ["last", "mean", "max"]
STACKS = [1, 2, 3]


def _fallback() -> Any:
    from test_micropython import fallback_module

    return fallback_module()


def bidir_model(
    cell: str, layers: int, readout: str, stack: int, seed: int = 0, saturating: bool = False
) -> tuple[IntModel, np.ndarray, int]:
    """A full-range random bidirectional model of random sizes, full-range samples of its int8 input (four
    windows and a part one) and the sample to reset before: inside the second window. ``saturating``:
    random_int_model's shifts, which drive the gates into saturation; else larger ones, for a state that moves
    with the inputs."""
    rng = np.random.default_rng([seed, layers, stack, READOUT_NAMES.index(readout), list(CELLS).index(cell)])
    window = int(rng.integers(stack, 3 * stack + 9))
    inp, hid, out = int(rng.integers(1, 6)), int(rng.integers(2, 9)), int(rng.integers(1, 4))
    shifts = (18, 34) if saturating else (30, 40)
    m = random_int_model(
        rng, cell, layers, inp, hid, out, *shifts, readout=readout, stack=stack, window=window
    )
    assert m.bidirectional and m.window == window and m.stack == stack
    # a head that cannot saturate (random_int_model's does), so that the outputs show what the head read:
    # zeros before the window's end, [v_f ; v_b] at it
    m.head_b = rng.integers(-(1 << 10), 1 << 10, m.output_size).astype(np.int32)
    bound = m.head_width * 128 * 128 + (1 << 10)
    m.head_shift = np.array([(bound * int(M)).bit_length() - 14 for M in m.head_mult], dtype=np.int8)
    xq = full_range_inputs(rng, m, 4 * window + window // 2 + 1)
    reset_at = window + 1 + window // 2
    return m, xq, reset_at


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fallback_under_cpython_every_word(cell: str, layers: int) -> None:
    """Every readout, k = 1-3, moving and saturating models: every word after every sample."""
    mpy = _fallback()
    moved = 0
    for k, (readout, stack) in enumerate(itertools.product(READOUT_NAMES, STACKS)):
        m, xq, reset_at = bidir_model(cell, layers, readout, stack, saturating=k % 3 == 2)
        want = golden_words(m, xq, reset_at)
        model = mpy.Model(blob.to_blob(m), viper=False)
        info = model.info()
        assert (info["window"], info["stack"], info["layers"]) == (m.window, stack, layers)
        for t, x in enumerate(xq):
            if t == reset_at:
                model.reset()
            y = model.step(sample_array(x))
            assert_words(
                fallback_words(model, y), want[t], f"{cell} {layers}L {readout} k={stack} t={t}", BIDIR_KEYS
            )
        moved += len({tuple(w["y"]) for w in want}) > 1
        # run() continues the same state sample by sample; a fresh stream gives golden.run's outputs
        model.reset()
        ys = np.frombuffer(model.run(xq.tobytes()), "<i2").reshape(-1, m.output_size)
        y_ref, state, _ = golden.run(m, xq[None])
        assert np.array_equal(ys, y_ref[0])
        assert model.wpos == state.wpos == (len(xq) - 1) % m.window + 1
    assert moved >= 5, f"only {moved} of 9 models' outputs changed: the comparison proves little"


def test_fallback_float_samples_fill_the_window() -> None:
    """Float samples are quantized (tl_quantize_input) into the stack and the window alike."""
    m, _, _ = bidir_model("gru", 2, "mean", 2, seed=5)
    xf = (np.random.default_rng(8).standard_normal((3 * m.window + 1, m.input_size)) * 4).astype(np.float32)
    model = _fallback().Model(blob.to_blob(m), viper=False)
    ys = np.array([list(model.step(array("f", row.tobytes()))) for row in xf], dtype=np.int16)
    y_ref, state, _ = golden.run(m, golden.quantize_input(m, xf)[None])
    assert np.array_equal(ys, y_ref[0])
    assert list(model.win) == state.window[0].tolist() and model.wpos == state.wpos


def test_fallback_unidirectional_models_have_no_window() -> None:
    m = random_int_model(np.random.default_rng(3), "lstm", 2, 3, 4, 2)
    model = _fallback().Model(blob.to_blob(m))
    h, c = model.state()
    assert model.info()["window"] == 0 and model.window == 0 and len(model.win) == 0
    assert (len(h), len(c)) == (2 * 4, 2 * 2 * 4) and model.backward == []


MPY_CASES = [
    ("lstm", 1, "last", 1),
    ("lstm", 2, "mean", 3),
    ("lstm", 3, "max", 2),
    ("gru", 1, "max", 3),
    ("gru", 2, "last", 2),
    ("gru", 3, "mean", 1),
    ("rnn", 1, "mean", 2),
    ("rnn", 2, "max", 1),
    ("rnn", 3, "last", 3),
]


@needs_micropython
@pytest.mark.parametrize("mode", ["viper", "plain"])
@pytest.mark.parametrize("cell,layers,readout,stack", MPY_CASES)
def test_fallback_under_micropython_every_word(
    tmp_path: Path, cell: str, layers: int, readout: str, stack: int, mode: str
) -> None:
    """The viper dots and the plain loops: every output and state word (h and c of both directions, both
    pools, the stacking buffer, phase, steps, the window and its position) after every sample, a moving and a
    saturating model each."""
    for saturating in (False, True):
        m, xq, reset_at = bidir_model(cell, layers, readout, stack, seed=1, saturating=saturating)
        want = golden_words(m, xq, reset_at)
        got = run_driver(tmp_path, m, xq, reset_at, mode)
        for t, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_words(
                g, w, f"{mode} {cell} {layers}L {readout} k={stack} sat={saturating} t={t}", BIDIR_KEYS
            )


@needs_micropython
@pytest.mark.parametrize("cell", list(CELLS))
def test_mpy_runner_runs_a_calibrated_bidirectional_blob(tmp_path: Path, cell: str) -> None:
    """host/targets/mpy_runner.run_blob (what `tinylstm check` runs) on a calibrated model over 12 windows:
    every output, and the final h and c words of both directions."""
    rng = np.random.default_rng(list(CELLS).index(cell))
    t = np.arange(12 * 20)[:, None]
    x = (np.sin(t / (6 + 3 * np.arange(3))) * 1.5 + rng.standard_normal((len(t), 3)) * 0.3).reshape(12, 20, 3)
    m = random_quantized_model(4, cell, 2, 3, 10, 3, x[:6], readout="mean", stack=2, bidirectional=True)
    xq = golden.quantize_input(m, x.reshape(-1, 3).astype(np.float32))
    assert MICROPYTHON
    ys, h, c = run_blob(
        MICROPYTHON, blob.to_blob(m), xq, tmp_path, (m.output_size, m.num_layers, m.hidden_size)
    )
    y_ref, state, _ = golden.run(m, xq[None])
    assert np.array_equal(ys, y_ref[0]), "outputs differ"
    assert len(np.unique(ys[19::20], axis=0)) > 1, (
        "every window gives the same answer: the check proves little"
    )
    assert np.array_equal(h, np.concatenate([state.h[0], state.hb[0]]).ravel())
    assert np.array_equal(c, np.concatenate([state.c[0], state.cb[0]]).ravel())


@needs_micropython
def test_micropython_refuses_bad_bidirectional_blobs(tmp_path: Path) -> None:
    from test_blob import _bidir_blob, bad_bidir_blobs
    from test_micropython import MPY_DIR

    assert MICROPYTHON
    data, m = _bidir_blob()
    cases = bad_bidir_blobs(data, m.num_layers)
    for k, (bad, _, _) in enumerate(cases.values()):
        (tmp_path / f"{k}.tlm").write_bytes(bad)
    script = (
        f"import sys\nsys.path.insert(0, {str(MPY_DIR)!r})\nimport tinylstm_mpy\n"
        f"for k in range({len(cases)}):\n"
        f"    try:\n        tinylstm_mpy.Model(open({str(tmp_path)!r} + '/%d.tlm' % k, 'rb').read())\n"
        "        print('ACCEPTED')\n"
        "    except ValueError as e:\n        print('ERR', e)\n"
    )
    proc = subprocess.run([MICROPYTHON, "-c", script], capture_output=True, text=True, check=False)
    lines = proc.stdout.splitlines()
    assert len(lines) == len(cases), proc.stdout + proc.stderr
    for line, (case, (_, _, word)) in zip(lines, cases.items(), strict=True):
        assert line.startswith("ERR bad model blob") and word in line, (case, line)


@needs_micropython
def test_stream_predictions_example_answers_every_window(tmp_path: Path) -> None:
    """examples/stream_predictions.py in window mode with a bidirectional model: one PRED per window, the
    window's answer (the backward pass at its last sample)."""
    from test_micropython import MPY_DIR

    from tinylstm.host.link import protocol

    assert MICROPYTHON
    m, xq, _ = bidir_model("lstm", 2, "mean", 2, seed=3)
    W, T = m.window, 5 * m.window + 2
    xq = np.resize(xq, (T, m.input_size))
    m.meta.mode = "window"
    (tmp_path / "model.tlm").write_bytes(blob.to_blob(m))
    (tmp_path / "x.bin").write_bytes(xq.tobytes())
    proc = subprocess.run(
        [
            MICROPYTHON,
            str(MPY_DIR / "examples" / "stream_predictions.py"),
            str(tmp_path / "model.tlm"),
            str(T),
        ]
        + [str(tmp_path / "x.bin")],
        capture_output=True,
        env={**os.environ, "MICROPYPATH": str(MPY_DIR)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    dec = protocol.FrameDecoder()
    msgs = [protocol.parse_message(f) for f in dec.feed(proc.stdout)]
    assert dec.frames_bad == 0 and isinstance(msgs[0], protocol.Hello) and msgs[0].window == W
    assert msgs[0].mode == protocol.Mode.WINDOW_END  # HELLO says the answers come at each window's end
    y_ref, _, _ = golden.run(m, xq[None])
    preds = [p for p in msgs[1:] if isinstance(p, protocol.Pred)]
    assert len(preds) == len(msgs) - 1
    assert [p.step for p in preds] == list(range(W - 1, T, W))
    assert np.array_equal(np.array([p.outputs for p in preds]), y_ref[0][W - 1 :: W])
