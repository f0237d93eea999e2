"""The int8 input range export chooses (codegen/input_range.py): one of the candidates, the one whose integer
model is closest to the float model, and the range the exported model and its report carry."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tinylstm.codegen import golden
from tinylstm.codegen.input_range import (
    MAX_SEQUENCES,
    MAX_STEPS,
    RANGE_FACTORS,
    calibrated_model,
    choose_input_range,
    output_error,
    subsample,
    whole_input_range,
)
from tinylstm.codegen.quantize import calibrate, quantize
from tinylstm.codegen.random_models import float_model_from_torch
from tinylstm.codegen.spec import FloatModel, ModelMeta, float_forward
from tinylstm.errors import TinyLSTMError


def model(cell: str, seed: int, mode: str = "window", stack: int = 1) -> FloatModel:
    torch.manual_seed(seed)
    rnn = getattr(torch.nn, cell.upper())(2 * stack, 8, 1, batch_first=True)
    head = torch.nn.Linear(8, 3)
    fm = float_model_from_torch(rnn, head, ModelMeta(mode=mode, input_mean=[0.5, -1.0], input_std=[2.0, 0.5]))
    fm.stack = stack
    return fm


def spiky(seed: int, n: int = 40, steps: int = 60) -> list[np.ndarray]:
    """Normalised series of mostly unit-scale values with rare spikes of 10-25 standard deviations."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.normal(size=(steps, 2))
        hits = rng.random((steps, 2)) < 0.003
        x[hits] = rng.uniform(10, 25, size=int(hits.sum())) * rng.choice([-1, 1], size=int(hits.sum()))
        out.append(x)
    return out


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_chosen_range_is_the_closest_candidate(cell: str) -> None:
    fm = model(cell, 3)
    seqs = spiky(4)
    cal = calibrate(fm, seqs)
    chosen = choose_input_range(fm, cal, seqs, 8)
    errors = {
        f: output_error(fm, quantize(fm, replace(cal, input_absmax=cal.input_absmax * f), 8), seqs)
        for f in RANGE_FACTORS
    }
    best = min(RANGE_FACTORS, key=lambda f: errors[f])  # ties: the first, the widest
    assert chosen.input_absmax == pytest.approx(cal.input_absmax * best, rel=1e-12)
    assert (chosen.cell_absmax, chosen.output_absmax, chosen.steps) == (
        cal.cell_absmax,
        cal.output_absmax,
        cal.steps,
    )
    # the spikes' tails cost the common values their resolution: a narrower range is closer here
    assert best < 1.0 and errors[best] < errors[1.0]
    assert choose_input_range(fm, cal, seqs, 8) == chosen  # deterministic


def test_calibrated_model_quantizes_with_the_chosen_range() -> None:
    fm = model("lstm", 5)
    seqs = spiky(6)
    m, chosen, measured = calibrated_model(fm, seqs, 8)
    assert measured == calibrate(fm, seqs) and chosen == choose_input_range(fm, measured, seqs, 8)
    assert m.model_hash == quantize(fm, chosen, 8).model_hash
    # an int16-h model's int16 input takes the whole range: nothing is clipped, nothing to choose
    m16, chosen16, _ = calibrated_model(fm, seqs, 16)
    assert m16.hidden_bits == 16 and chosen16.input_absmax == measured.input_max
    assert measured.input_max == max(float(np.abs(s).max()) for s in seqs) > measured.input_absmax
    assert m16.model_hash == quantize(fm, chosen16, 16).model_hash
    # ... which the int8 model's own calibration gives without calibrating again (tinylstm check's what-if)
    assert whole_input_range(m.calibration) == chosen16


def test_the_subsample_is_even_bounded_and_whole_stacked_steps() -> None:
    seqs = [np.zeros((n, 2)) for n in range(3, 3 + 3 * MAX_SEQUENCES)] + [np.zeros((MAX_STEPS + 77, 2))]
    sample = subsample(seqs, 4)
    # MAX_SEQUENCES evenly spaced, the first and the last among them; the first (3 samples) is shorter than
    # one stacked step and left out, the last cut to MAX_STEPS
    assert len(sample) == MAX_SEQUENCES - 1
    assert all(len(s) % 4 == 0 and 0 < len(s) <= MAX_STEPS for s in sample)
    assert len(sample[-1]) == MAX_STEPS and len(sample[0]) == 4  # the next (6 samples): one stacked step
    assert subsample([np.zeros((3, 2))], 4) == []  # shorter than one stacked step: nothing to compare


def test_stream_models_compare_every_step_and_stacked_models_run() -> None:
    for fm in (model("gru", 7, mode="stream"), model("lstm", 8, stack=3)):
        seqs = spiky(9, n=12, steps=48)
        m, chosen, measured = calibrated_model(fm, seqs, 8)
        assert chosen.input_absmax <= measured.input_absmax
        assert output_error(fm, m, seqs) <= output_error(fm, quantize(fm, measured, 8), seqs)


def test_a_classifier_is_judged_by_its_decisions_first() -> None:
    """output_error: the fraction of read outputs (a window's last step) whose arg max differs from the float
    model's, then the squared error; a regressor has no decisions, so the squared error alone decides."""
    fm = model("lstm", 11)
    fm.head_w = fm.head_w * 40  # logits far enough apart that the decisions depend on the input
    seqs = spiky(12, n=30)
    cal = calibrate(fm, seqs)
    clipped = replace(cal, input_absmax=cal.input_absmax * RANGE_FACTORS[-1] / 16)  # most samples saturate
    narrow = quantize(fm, clipped, 8)
    err = output_error(fm, narrow, seqs)
    x = np.stack(seqs)
    want = float_forward(fm, x)["y"][:, -1].argmax(-1)
    raw = x * np.asarray(fm.meta.input_std) + np.asarray(fm.meta.input_mean)
    y, _, _ = golden.run(narrow, golden.quantize_input(narrow, raw.astype(np.float32)))
    assert err.disagreement == pytest.approx(np.mean(y[:, -1].argmax(-1) != want)) and err.disagreement > 0
    regressor = replace(fm, meta=replace(fm.meta, task="regression"))
    assert output_error(regressor, narrow, seqs) == (0.0, err.mse)


@pytest.mark.parametrize("readout,stack", [("last", 1), ("mean", 2), ("max", 3)])
def test_a_padded_batch_of_many_lengths_scores_as_each_alone(readout: str, stack: int) -> None:
    """A unidirectional model's outputs read only the samples up to them, so output_error runs sequences of
    many lengths as one zero-padded batch: it must score them exactly as each run alone (no padding)."""
    fm = model("lstm", 5, stack=stack)
    fm.readout = readout
    rng = np.random.default_rng(5)
    seqs = [x[: int(rng.integers(3, 20)) * stack] for x in spiky(5, n=30, steps=60)]
    m = quantize(fm, calibrate(fm, seqs), 8)
    alone = [output_error(fm, m, [s]) for s in seqs]  # window mode: one decision per sequence, equal weights
    together = output_error(fm, m, seqs)
    assert len({len(s) for s in seqs}) > 5
    assert together.disagreement == pytest.approx(np.mean([e.disagreement for e in alone]), abs=1e-12)
    assert together.mse == pytest.approx(np.mean([e.mse for e in alone]), rel=1e-9)


def test_calibration_beyond_max_steps_reads_evenly_spaced_sequences() -> None:
    """calibrate reads about max_steps samples: evenly spaced sequences, the first and the last among them
    (a stream model's joined stream is the last), every one checked for NaN all the same."""
    fm = model("lstm", 5)
    seqs = [np.full((10, 2), 0.01 * k) for k in range(100)]  # sequence k's |input| is 0.01 k
    assert calibrate(fm, seqs, max_steps=1000).steps == 1000  # within the cap: all of them
    cal = calibrate(fm, seqs, max_steps=250)
    assert cal.steps == 250 and cal.input_max == pytest.approx(0.99)
    head = calibrate(fm, seqs[:1] * 99 + seqs[-1:], max_steps=250)  # the first and the last decide the max
    assert head.input_max == pytest.approx(0.99)
    seqs[1][3, 1] = np.nan  # in a sequence the measurement skips (it reads 0, 4, 8, ...)
    with pytest.raises(TinyLSTMError, match="NaN"):
        calibrate(fm, seqs, max_steps=250)
