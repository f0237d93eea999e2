"""The int8 input range export chooses (codegen/input_range.py): one of the candidates, the one whose integer
model is closest to the float model, and the range the exported model and its report carry; an asymmetric
range's zero point, folded into the first layer's bias exactly; and ``--input-bits auto``'s choice between the
int8 input and an int16 one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tinylstm.codegen import golden
from tinylstm.codegen.blob import from_blob, to_blob
from tinylstm.codegen.export import given_input_bits
from tinylstm.codegen.input_range import (
    INPUT16_TOLERANCE,
    MAX_SEQUENCES,
    MAX_STEPS,
    RANGE_FACTORS,
    ZERO_PERCENTILES,
    FloatReference,
    OutputError,
    auto_input_model,
    calibrated_model,
    candidate_ranges,
    choose_input_range,
    output_error,
    subsample,
    whole_input_range,
    zero_points,
)
from tinylstm.codegen.quantize import calibrate, quantize
from tinylstm.codegen.random_models import float_model_from_torch
from tinylstm.codegen.spec import FloatModel, ModelMeta, float_forward
from tinylstm.codegen.store import JSON, load_int_model, save_int_model
from tinylstm.contract.cells import cell_type
from tinylstm.contract.constants import MAX_INPUT16
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


def one_sided(seed: int, n: int = 40, steps: int = 60) -> list[np.ndarray]:
    """Normalised series like a power meter's: near their floor most of the time, rare spikes upwards."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.exponential(0.5, size=(steps, 2)) - 0.5
        hits = rng.random((steps, 2)) < 0.005
        x[hits] = rng.uniform(6, 10, size=int(hits.sum()))
        out.append(x)
    return out


def test_zero_points_clip_the_least_squared_error() -> None:
    """Per channel, the zero point is the one among those whose range lies inside the channel's percentile
    range that clips the least squared error (brute force agrees); a range wider than the values is
    centred."""
    values = np.concatenate(one_sided(1))
    scale = 0.02  # 255 steps span 5.1: narrower than the values' percentile range, so some clipping
    zero = zero_points(np.sort(values, axis=0), scale)
    for c, z in enumerate(zero):
        x = values[:, c]
        lo, hi = np.percentile(x, ZERO_PERCENTILES)
        options = range(round(lo / scale) + 128, round(hi / scale) - 127 + 1)
        clipped = {
            o: float(np.sum((x - np.clip(x, (o - 128) * scale, (o + 127) * scale)) ** 2)) for o in options
        }
        assert z == min(options, key=clipped.__getitem__)
        assert z * scale > lo + 128 * scale - 1e-9  # shifted up from the symmetric range's origin
    # 255 steps of 1.0 hold every value: the middle of the percentile range
    wide = zero_points(np.sort(values, axis=0), 1.0)
    lo, hi = np.percentile(values, ZERO_PERCENTILES, axis=0)
    assert wide == [round((a + b) / 2) for a, b in zip(lo, hi, strict=True)]


def test_one_sided_data_gets_an_asymmetric_range() -> None:
    """On one-sided data the candidates include asymmetric ranges (half the step of the symmetric ones at the
    same factor), the choice is still the closest candidate, and here it is an asymmetric one: closer to the
    float model than any symmetric range."""
    fm = model("lstm", 3)
    fm.head_w = fm.head_w * 40  # logits far enough apart that the decisions depend on the input
    seqs = one_sided(2)
    cal = calibrate(fm, seqs)
    candidates = candidate_ranges(cal, seqs)
    symmetric, asymmetric = candidates[: len(RANGE_FACTORS)], candidates[len(RANGE_FACTORS) :]
    assert all(c.input_zero == [] for c in symmetric) and len(asymmetric) == len(RANGE_FACTORS)
    assert all(c.input_absmax < 0.7 * s.input_absmax for c, s in zip(asymmetric, symmetric, strict=True))
    errors = [output_error(fm, quantize(fm, c, 8), seqs) for c in candidates]
    chosen = choose_input_range(fm, cal, seqs, 8)
    assert chosen == candidates[errors.index(min(errors))]  # ties: the first
    assert chosen in asymmetric and min(errors[len(RANGE_FACTORS) :]) < min(errors[: len(RANGE_FACTORS)])
    assert all(z > 0 for z in chosen.input_zero)  # the words' origin moves up, towards the spikes
    # symmetric data gains nothing from a zero point: only the symmetric candidates are tried
    assert candidate_ranges(calibrate(fm, spiky(4)), spiky(4)) == [
        replace(calibrate(fm, spiky(4)), input_absmax=calibrate(fm, spiky(4)).input_absmax * f)
        for f in RANGE_FACTORS
    ]
    # an int16 input takes the whole range, symmetric: the zero point goes, and quantize refuses one
    assert whole_input_range(chosen).input_zero == []
    with pytest.raises(ValueError, match="only for an int8 input"):
        quantize(fm, chosen, 8, 16)


@pytest.mark.parametrize(
    ("cell", "stack", "bidirectional"),
    [("lstm", 1, False), ("gru", 3, False), ("rnn", 2, False), ("gru", 1, True), ("lstm", 2, True)],
)
def test_a_zero_point_folds_into_the_first_layer_exactly(cell: str, stack: int, bidirectional: bool) -> None:
    """The word the kernel reads is the symmetric one minus the zero point, and the first layer's (each
    direction's) bias adds Σ Wq · zero back: on samples inside both ranges every output and every state word
    of every step equals the symmetric model's, for each cell, stacked and bidirectional."""
    steps = 12 * stack
    torch.manual_seed(1)
    ctor = cell_type(cell).torch_class()
    meta = ModelMeta(input_mean=[0.5, -1.0], input_std=[2.0, 0.5], window=steps if bidirectional else None)
    fm = float_model_from_torch(
        ctor(2 * stack, 8, 2, batch_first=True), torch.nn.Linear(16 if bidirectional else 8, 3), meta
    )
    if bidirectional:
        fm.backward = float_model_from_torch(
            ctor(2 * stack, 8, 2, batch_first=True), torch.nn.Linear(8, 3), meta
        ).layers
    fm.stack = stack
    cal = calibrate(fm, one_sided(3, n=8, steps=steps))
    zero = [37, -21]
    sym, shifted = quantize(fm, cal, 8), quantize(fm, replace(cal, input_zero=zero), 8)
    assert shifted.input_zero.tolist() == zero and sym.input_zero.tolist() == [0, 0]
    assert shifted.input_scale == sym.input_scale and shifted.model_hash != sym.model_hash
    rng = np.random.default_rng(2)
    words = np.stack([rng.integers(-128 + max(z, 0), 128 + min(z, 0), size=(6, steps)) for z in zero], -1)
    x = (words / sym.input_mul + sym.input_mean).astype(np.float32)  # samples on the grid, inside both ranges
    assert np.array_equal(golden.quantize_input(sym, x), words)
    assert np.array_equal(golden.quantize_input(shifted, x), words - np.array(zero))
    y0, _, t0 = golden.run(sym, golden.quantize_input(sym, x), trace=True)
    y1, _, t1 = golden.run(shifted, golden.quantize_input(shifted, x), trace=True)
    assert np.array_equal(y0, y1) and np.abs(y0).max() > 0
    assert t0.keys() == t1.keys() and all(np.array_equal(t0[k], t1[k]) for k in t0)
    pairs = zip([shifted.layers[0]] + shifted.backward[:1], [sym.layers[0]] + sym.backward[:1], strict=True)
    assert all(not np.array_equal(a.bias, b.bias) for a, b in pairs)  # each first layer's bias moved


def test_a_zero_point_survives_the_export_files_and_the_blob(tmp_path: Path) -> None:
    """The zero point is read back with the model (QAT's forward and the report read it), and one that is not
    a list of integers makes the file damaged, not a traceback."""
    fm = model("lstm", 3)
    m = quantize(fm, replace(calibrate(fm, one_sided(2)), input_zero=[12, -7]), 8)
    save_int_model(m, tmp_path)
    back, doc = load_int_model(tmp_path)
    assert back.model_hash == m.model_hash and back.input_zero.tolist() == [12, -7]
    blob = from_blob(to_blob(m))
    assert blob.model_hash == m.model_hash and blob.input_zero.tolist() == [12, -7]
    doc["calibration"]["input_zero"] = ["12", -7]
    (tmp_path / JSON).write_text(json.dumps(doc))
    with pytest.raises(TinyLSTMError, match=r"damaged \(calibration input_zero \['12', -7\], not a list of"):
        load_int_model(tmp_path)


def lognormal(seed: int, n: int = 40, steps: int = 60, sigma: float = 2.0) -> list[np.ndarray]:
    """Heavy-tailed one-sided series (a power meter's): most values near 0, a long tail to hundreds."""
    rng = np.random.default_rng(seed)
    return [rng.lognormal(0, sigma, size=(steps, 2)) - 1 for _ in range(n)]


def test_relative_error_is_the_rms_difference_over_the_float_outputs_spread() -> None:
    fm, data = model("lstm", 0), spiky(0)
    ref = FloatReference(fm, subsample(data, 1))
    last = np.stack([float_forward(fm, x[None], keep=())["y"][0, -1] for x in subsample(data, 1)])
    assert ref.spread == pytest.approx(np.sqrt(np.mean((last - last.mean(axis=0)) ** 2)))
    assert ref.relative_error(OutputError(0.0, 4 * ref.spread**2)) == pytest.approx(2.0)
    m = calibrated_model(fm, data, 8)[0]
    assert ref.relative_error(ref.error(m)) == pytest.approx(
        np.sqrt(output_error(fm, m, subsample(data, 1)).mse) / ref.spread
    )


@pytest.mark.parametrize("case", ["constant input", "one sequence"])
def test_auto_keeps_the_int8_input_where_the_float_outputs_do_not_vary(case: str) -> None:
    """A constant input (its outputs' spread float rounding, not 0) or one window (exactly 0) gives no spread
    to judge an error by: no percentage (it read 1.6e15 % and inf %, which the report wrote as Infinity),
    int8."""
    fm = model("lstm", 0)
    if case == "constant input":
        data = [np.full((60, 2), 3.0) for _ in range(20)]
    else:
        data = [np.random.default_rng(0).normal(size=(60, 2))]
    ref = FloatReference(fm, subsample(data, 1))
    assert not ref.varies
    with pytest.raises(ValueError, match="do not vary"):
        ref.relative_error(OutputError(0.0, 1.0))
    m, cal, _, why = auto_input_model(fm, data)
    int8, int8_cal, _ = calibrated_model(fm, data, 8)
    assert why.input_bits == 8 and m.model_hash == int8.model_hash and cal == int8_cal
    assert why.int8_error is None and why.int16_error is None
    assert (
        why.reason
        == "int8: the float model's outputs do not vary on the calibration data, so no error can be judged"
    )


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_auto_takes_an_int16_input_where_the_int8_one_misses_the_tolerance(cell: str) -> None:
    """On heavy-tailed data the 8-bit input's error is many times the tolerance; the int16 input (the whole
    measured range, as --input-bits 16 exports it) comes closer, and auto returns exactly that model."""
    fm, data = model(cell, 0), lognormal(0)
    m, cal, measured, why = auto_input_model(fm, data)
    ref = FloatReference(fm, subsample(data, 1))
    int8 = calibrated_model(fm, data, 8)[0]
    want = calibrated_model(fm, data, 8, 16)[0]
    assert why.input_bits == 16 and m.input16 and m.model_hash == want.model_hash
    assert cal == whole_input_range(measured) and measured == calibrate(fm, data)
    assert why.int8_error == pytest.approx(ref.relative_error(ref.error(int8)))
    assert why.int16_error == pytest.approx(ref.relative_error(ref.error(want)))
    assert why.int8_error > INPUT16_TOLERANCE and why.int16_error < why.int8_error
    assert why.reason.startswith("int16: ") and f"above {100 * INPUT16_TOLERANCE:.0f} %" in why.reason


def test_auto_keeps_the_int8_input_within_the_tolerance() -> None:
    fm, data = model("gru", 1), [np.random.default_rng(k).normal(size=(60, 2)) * 2 for k in range(20)]
    m, cal, _, why = auto_input_model(fm, data)
    int8, int8_cal, _ = calibrated_model(fm, data, 8)
    assert why.input_bits == 8 and not m.input16 and m.model_hash == int8.model_hash and cal == int8_cal
    assert why.int8_error is not None and why.int8_error <= INPUT16_TOLERANCE and why.int16_error is None
    assert why.reason.startswith("int8: ") and f"within {100 * INPUT16_TOLERANCE:.0f} %" in why.reason


def test_auto_keeps_the_int8_input_where_an_int16_one_is_not_possible_or_no_closer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no tolerance at all (every int8 error misses it): layer 0 reading more than MAX_INPUT16 values per
    step cannot take an int16 input, so auto says so and keeps int8; a model whose int16 input errs more keeps
    int8 too."""
    monkeypatch.setattr("tinylstm.codegen.input_range.INPUT16_TOLERANCE", 0.0)
    stack = MAX_INPUT16 // 2 + 1
    fm = model("gru", 2, stack=stack)
    m, _, _, why = auto_input_model(fm, lognormal(1, n=6, steps=2 * stack))
    assert why.input_bits == 8 and not m.input16 and why.int16_error is None
    assert f"not possible: layer 0 reads at most {MAX_INPUT16} int16 inputs" in why.reason
    assert "export it" not in why.reason  # the export it is part of already took the int8 input
    fm, data = model("lstm", 3), [np.random.default_rng(k).normal(size=(60, 2)) for k in range(20)]
    m, _, _, why = auto_input_model(fm, data)  # its int16 input errs more: the int8 h's error dominates
    assert why.int8_error is not None and why.int16_error is not None and why.int16_error > why.int8_error
    assert why.input_bits == 8 and not m.input16 and why.reason.endswith("no closer")


def test_auto_settles_what_a_qat_or_int16_h_model_is_for() -> None:
    assert given_input_bits(None, 8, "auto") == (None, "")
    assert given_input_bits((8, 16), 8, "auto") == (16, "int16: what the model was fine-tuned for (--qat)")
    assert given_input_bits((16, 16), 8, "auto") == (None, "")  # fine-tuned for another h: auto measures
    assert given_input_bits(None, 16, "auto") == (16, "int16: an int16-h model's input")
    assert given_input_bits((8, 8), 8, 16) == (16, "int16: --input-bits")
    assert given_input_bits(None, 8, None) == (8, "int8: the hidden state's own")
