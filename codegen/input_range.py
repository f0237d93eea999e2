"""The int8 input range: chosen by what the integer model then computes, not by the data's tails alone.

(An int16 input, an int16-h model's or an int8-h model's with ``--input-bits 16``, has 32768 levels: they
take the whole measured range, the largest |input|, and leave nothing to choose. The rest of this docstring is
about the int8 input.)

``calibrate`` measures the input range as the 99.99th percentile of |normalised input|. On heavy-tailed
series (a power meter's spikes, a rare jolt of an IMU) that range spends most of the 256 int8 levels on
values the data seldom takes, and the common ones get a handful: ACSF1's series (z-normalised, spikes up to
12 standard deviations) then see steps of 0.077 std, and a stacked first layer sums 22 such rounding errors
per step. Clipping the rare tails buys resolution for everything else; how much is worth it depends on the
model, so ``choose_input_range`` tries the calibrated range and a few narrower ones (``RANGE_FACTORS``),
quantizes the model with each, runs the integer golden on a fixed subsample of the calibration data and
keeps the range whose outputs stay closest to the float model's at the outputs the task reads (a window's
last step, every step of a stream): for a classifier first the fewest decisions (arg max) that differ from the
float model's, then the mean squared error, which alone decides for a regressor and breaks ties. Measured on
ACSF1 (LSTM 32, max readout, seeds 0-3): int8 accuracy 71.5 % (median) at the percentile range against 80 %
at half of it, float 82 %; with the decisions compared first (the default recipe's models, seeds 0-2) 85, 78
and 82 % against 81, 77 and 82 % by the squared error alone, float 84, 81 and 83 %. On ACSF1's hidden 8 and 16
models (benchmarks/results/accuracy.md, seed 0) it moved both ways: 65, 71, 69, 74 % against 65, 72, 68, 77 %
(LSTM 8, LSTM 16, GRU 8, GRU 16). One test series is 1 pp here and the decisions are counted on at most 128
training series, so this is a small, noisy gain, not a cure for the 8-bit input: that is the int16 input.

One-sided data wastes half of a symmetric range: ACSF1's normalised samples lie in -1.35 .. 10.4 (the
0.005th and 99.995th percentiles), so words below -18 of a +-127 range never occur. The candidates therefore
include asymmetric ranges too (``zero_points``): the words of channel c cover (z_c - 128 .. z_c + 127) x the
scale, the scale set by the widest channel's percentile range times the same factors, and each channel's zero
point z_c the one that clips the least squared error of its values. They compete with the symmetric ones by
the same rule; ties keep the symmetric range. Measured on the accuracy benchmark's models (host, 2026-12-07,
seeds 0-2, held-out accuracy, float / symmetric / with the asymmetric candidates): ACSF1 LSTM 16 74/71/74,
69/68/71, 69/65/69 %; PickupGestureWiimoteZ LSTM 16 72/70/72, 66/64/64, 72/72/72 %.

Everything else of the contract is unchanged: the chosen range is a scale per model and a zero point per
channel, carried as the input multiplier and mean the kernel already has (``input_mul``, ``input_mean``) and,
for the zero point, in the first layer's bias (codegen/quantize.py ``_fold_zero``).

Where no int8 range is close enough, the input's width is what is wrong. ``tinylstm export`` (``--input-bits
auto``, the default for an int8 h: ``auto_input_model``) measures the chosen int8 model's output error on the
same subsample as a fraction of the float outputs' spread (``relative_error``) and, above
``INPUT16_TOLERANCE``, quantizes the model with an int16 input too (int8 h and weights:
docs/integer-contract.md, "int16 input") and keeps whichever comes closer. Measured on the default recipe's
models of the quality panel's sets (host, 2026-12-07, seeds 0-2; watch windowed as bench_accuracy.py windows
it): 0.25-1.6 % on watch, BasicMotions, JapaneseVowels, PickupGestureWiimoteZ and UnitTest, 1.0-3.9 % on
Covid3Month and CardanoSentiment, and 9.9, 15.9 and 16.4 % on ACSF1, whose int16 input gives 8.8, 3.5 and
1.2 %.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from tinylstm.codegen import golden
from tinylstm.codegen.quantize import (
    Calibration,
    IntModel,
    calibrate,
    check_input_bits,
    evenly_spaced,
    input16_unfit,
    quantize,
)
from tinylstm.codegen.spec import FloatModel, by_length, float_forward
from tinylstm.contract.constants import HIDDEN_BITS, INPUT16_BITS, INPUT_BITS

# the calibrated range times 2^(-j/4), j = 0..7: from the percentile range down to 0.30 of it
RANGE_FACTORS = tuple(2.0 ** (-j / 4) for j in range(8))
# the subsample the golden runs per candidate: evenly spaced sequences, each cut to a whole number of
# stacked steps of at most MAX_STEPS samples (golden is batched across sequences of one length)
MAX_SEQUENCES = 128
MAX_STEPS = 2048
# an asymmetric candidate spans each channel's values between these percentiles (at the factor 1), measured
# on at most MAX_VALUES evenly spaced samples of the calibration data
ZERO_PERCENTILES = (0.005, 99.995)
MAX_VALUES = 200_000
ZERO_MIN_GAIN = 0.9  # tried where their step is at most this x the symmetric range's (10 % finer or more)
# --input-bits auto: an int8 model whose outputs differ from the float model's by more than this fraction of
# the float outputs' spread (``relative_error``) is quantized with an int16 input too, and the closer one kept
AUTO_INPUT_BITS = "auto"
INPUT16_TOLERANCE = 0.05
# float outputs whose spread is at most this fraction of their RMS do not vary (``FloatReference.varies``)
VARIES = 1e-6


def subsample(sequences: list[np.ndarray], stack: int, whole: bool = False) -> list[np.ndarray]:
    """Up to MAX_SEQUENCES evenly spaced sequences, each at most MAX_STEPS samples (whole stacked steps), or
    ``whole`` (a bidirectional model, which answers only at its window's last sample) uncut."""
    n = len(sequences)
    idx = np.unique(np.linspace(0, n - 1, min(n, MAX_SEQUENCES)).round().astype(int))
    out = []
    for k in idx:
        s = sequences[k]
        keep = len(s) if whole else min(len(s), MAX_STEPS) // stack * stack
        if keep:
            out.append(s[:keep])
    return out


class OutputError(NamedTuple):
    """How far the integer model's outputs are from the float model's, compared in this order: a classifier's
    decisions first, then the outputs' values."""

    disagreement: float  # classification: the fraction of read outputs whose arg max differs; regression: 0
    mse: float  # mean squared difference (dequantized, normalised units)


def _batches(sequences: list[np.ndarray], causal: bool) -> list[tuple[np.ndarray, list[int]]]:
    """The sequences as batches [B, T, C] with each one's length: a causal model's (every output reads the
    samples up to it only: unidirectional, whatever its readout or stacking) in one batch, zero-padded at
    the end, which none of a sequence's own outputs sees; a bidirectional model's one batch per length."""
    if causal and sequences:
        lengths = [len(s) for s in sequences]
        x = np.zeros((len(sequences), max(lengths), sequences[0].shape[1]))
        for b, s in enumerate(sequences):
            x[b, : len(s)] = s
        return [(x, lengths)]
    return [
        (np.stack([sequences[k] for k in idx]), [n] * len(idx)) for n, idx in by_length(sequences).items()
    ]


class FloatReference:
    """The float model's outputs on ``sequences`` (normalised), computed once for the integer models compared
    with it (``choose_input_range`` compares one per candidate range)."""

    def __init__(self, fm: FloatModel, sequences: list[np.ndarray]) -> None:
        self.fm = fm
        mean, std = np.asarray(fm.meta.input_mean), np.asarray(fm.meta.input_std)
        self.batches = [  # (the samples as the board gets them, float32; the lengths; the float outputs)
            ((x * std + mean).astype(np.float32), lengths, float_forward(fm, x, keep=())["y"])
            for x, lengths in _batches(sequences, not fm.bidirectional)
        ]
        read = [
            want[b, self._first(n) : n] for _, lengths, want in self.batches for b, n in enumerate(lengths)
        ]
        outputs = np.concatenate(read) if read else np.zeros((1, 1))
        # the float outputs' spread: the RMS of each output about its mean, over the outputs the task reads
        self.spread = float(np.sqrt(np.mean((outputs - outputs.mean(axis=0)) ** 2)))
        # a spread below VARIES of the outputs' RMS is float rounding (a constant input, one sequence): no
        # scale to judge an error by
        self.varies = self.spread > VARIES * float(np.sqrt(np.mean(outputs**2)))

    def _first(self, n: int) -> int:
        """The first output the task reads of a sequence of ``n`` samples: a window's at its last sample."""
        return n - 1 if self.fm.meta.mode == "window" else 0

    def relative_error(self, err: OutputError) -> float:
        """``err``'s root mean squared difference as a fraction of the float outputs' spread (where they
        ``varies``)."""
        if not self.varies:
            raise ValueError("the float outputs do not vary: there is no spread to measure an error against")
        return float(np.sqrt(err.mse)) / self.spread

    def error(self, m: IntModel) -> OutputError:
        """The integer model's outputs against the float model's, at the outputs the task reads."""
        classify = self.fm.meta.task == "classification"
        total, count, differ, read = 0.0, 0, 0, 0
        for raw, lengths, want_all in self.batches:
            y, _, _ = golden.run(m, golden.quantize_input(m, raw))
            got_all = np.asarray(y, dtype=np.float64) * m.output_scale
            for b, n in enumerate(lengths):
                first = self._first(n)
                want, got = want_all[b, first:n], got_all[b, first:n]
                total += float(np.sum((got - want) ** 2))
                count += want.size
                if classify:
                    differ += int(np.sum(np.argmax(got, -1) != np.argmax(want, -1)))
                    read += want.size // want.shape[-1]
        return OutputError(differ / max(read, 1), total / max(count, 1))


def output_error(fm: FloatModel, m: IntModel, sequences: list[np.ndarray]) -> OutputError:
    """The integer model's outputs against the float model's on ``sequences``, where the task reads them."""
    return FloatReference(fm, sequences).error(m)


def channel_values(sequences: list[np.ndarray]) -> np.ndarray:
    """Up to MAX_VALUES evenly spaced samples [N, C] of ``sequences`` (normalised), read from evenly spaced
    sequences as ``calibrate`` reads them (a long stream is not copied whole)."""
    values = np.concatenate(evenly_spaced(sequences, MAX_VALUES))
    if len(values) > MAX_VALUES:
        values = values[np.linspace(0, len(values) - 1, MAX_VALUES).round().astype(int)]
    return values


def zero_points(ordered: np.ndarray, scale: float) -> list[int]:
    """Per channel of ``ordered`` [N, C] (values, each column sorted: ``np.sort(values, axis=0)``, once for
    every scale tried) the zero point z whose words, (z - 128 .. z + 127) x ``scale``, clip the least squared
    error, among those whose range lies inside the channel's ``ZERO_PERCENTILES`` (the middle one where the
    range is wider than that)."""
    zero = []
    for x in ordered.T:
        lo, hi = np.percentile(x, ZERO_PERCENTILES)
        z = np.arange(round(lo / scale) + 128, round(hi / scale) - 127 + 1)
        if not len(z):
            zero.append(int(round((lo + hi) / 2 / scale)))
            continue
        below, above = (z - 128) * scale, (z + 127) * scale  # the range's two ends
        s1, s2 = np.concatenate([[0.0], np.cumsum(x)]), np.concatenate([[0.0], np.cumsum(x * x)])
        n_lo, n_hi = np.searchsorted(x, below), np.searchsorted(x, above, side="right")
        clip_lo = n_lo * below**2 - 2 * below * s1[n_lo] + s2[n_lo]  # sum of (below - x)^2 over x < below
        n_up = len(x) - n_hi
        clip_hi = n_up * above**2 - 2 * above * (s1[-1] - s1[n_hi]) + (s2[-1] - s2[n_hi])
        zero.append(int(z[np.argmin(clip_lo + clip_hi)]))
    return zero


def candidate_ranges(cal: Calibration, sequences: list[np.ndarray]) -> list[Calibration]:
    """The input ranges ``choose_input_range`` tries, in its order of preference on a tie: the symmetric
    ``RANGE_FACTORS`` x the calibrated one, then, where the channels' percentile ranges give a step
    ``ZERO_MIN_GAIN`` x as fine or finer, the asymmetric ones (``zero_points``) at the same factors of the
    widest channel's."""
    out = [dataclasses.replace(cal, input_absmax=cal.input_absmax * f, input_zero=[]) for f in RANGE_FACTORS]
    values = channel_values(sequences)
    lo, hi = np.percentile(values, ZERO_PERCENTILES, axis=0)
    width = float(np.max(hi - lo))
    if 0 < width / 255 <= ZERO_MIN_GAIN * cal.input_absmax / 127:
        ordered = np.sort(values, axis=0)
        for factor in RANGE_FACTORS:
            scale = factor * width / 255
            out.append(
                dataclasses.replace(cal, input_absmax=scale * 127, input_zero=zero_points(ordered, scale))
            )
    return out


def reference_for(fm: FloatModel, sequences: list[np.ndarray]) -> FloatReference | None:
    """The float model's outputs on the subsample of ``sequences`` (normalised) that input choices are judged
    on; None where no whole stacked step is left."""
    sample = subsample(sequences, fm.stack, whole=fm.bidirectional)
    return FloatReference(fm, sample) if sample else None


def closest_range(
    fm: FloatModel, cal: Calibration, sequences: list[np.ndarray], hidden_bits: int, reference: FloatReference
) -> tuple[Calibration, OutputError]:
    """The input range among ``candidate_ranges`` of ``cal`` whose integer model is closest to the float
    model's outputs in ``reference``, and its error; ties keep the earlier candidate."""
    best, best_err = cal, OutputError(np.inf, np.inf)
    for candidate in candidate_ranges(cal, sequences):
        err = reference.error(quantize(fm, candidate, hidden_bits))
        if err < best_err:
            best, best_err = candidate, err
    return best, best_err


def choose_input_range(
    fm: FloatModel, cal: Calibration, sequences: list[np.ndarray], hidden_bits: int
) -> Calibration:
    """``cal`` with the input range among ``candidate_ranges`` whose integer model is closest to the float
    model on a subsample of ``sequences`` (normalised); ties keep the earlier candidate."""
    reference = reference_for(fm, sequences)
    return cal if reference is None else closest_range(fm, cal, sequences, hidden_bits, reference)[0]


def whole_input_range(cal: Calibration) -> Calibration:
    """``cal`` with the range an int16 input takes: the largest |input| seen (32768 levels, nothing clipped).
    Only the input range differs between an int8 model's calibration and this, so an int8 export's
    ``IntModel.calibration`` gives the int16-h model of the same float model without calibrating again."""
    return dataclasses.replace(cal, input_absmax=max(cal.input_max, cal.input_absmax), input_zero=[])


def calibrated_model(
    fm: FloatModel, sequences: list[np.ndarray], hidden_bits: int, input_bits: int | None = None
) -> tuple[IntModel, Calibration, Calibration]:
    """The integer model ``tinylstm export`` writes: calibrated on ``sequences`` (normalised), its input
    range chosen by ``choose_input_range`` (int8 input) or the largest |input| (an int16 input: an int16-h
    model's, or ``input_bits`` 16). Returns (model, the calibration it was quantized with, the calibration as
    measured)."""
    bits = check_input_bits(hidden_bits, input_bits)
    measured = calibrate(fm, sequences)
    if bits == INPUT16_BITS:
        chosen = whole_input_range(measured)
    else:
        chosen = choose_input_range(fm, measured, sequences, hidden_bits)
    return quantize(fm, chosen, hidden_bits, bits), chosen, measured


class InputChoice(NamedTuple):
    """Why an ``auto`` export's input has its width (``export-report.json`` ``input_choice``): the output
    errors as fractions of the float outputs' spread on the calibration subsample (``relative_error``)."""

    input_bits: int
    int8_error: float | None  # the chosen int8 range's; None: no data, or float outputs that do not vary
    int16_error: float | None  # measured where int8_error exceeds INPUT16_TOLERANCE and an int16 input can be
    reason: str  # one line: the rule and the numbers that decided


def auto_input_model(
    fm: FloatModel, sequences: list[np.ndarray]
) -> tuple[IntModel, Calibration, Calibration, InputChoice]:
    """The int8-h model ``tinylstm export --input-bits auto`` writes: ``calibrated_model``'s with an int8
    input, unless its outputs differ from the float model's by more than ``INPUT16_TOLERANCE`` of their spread
    on the calibration subsample and the same model with an int16 input (the whole measured range) comes
    closer. Returns (model, the calibration it was quantized with, the calibration as measured, why)."""
    measured = calibrate(fm, sequences)
    reference = reference_for(fm, sequences)
    if reference is None:
        m = quantize(fm, measured, HIDDEN_BITS, INPUT_BITS)
        return (
            m,
            measured,
            measured,
            InputChoice(INPUT_BITS, None, None, "int8: no calibration data to judge by"),
        )
    cal8, err8 = closest_range(fm, measured, sequences, HIDDEN_BITS, reference)
    m8 = quantize(fm, cal8, HIDDEN_BITS, INPUT_BITS)
    if not reference.varies:
        why = "int8: the float model's outputs do not vary on the calibration data, so no error can be judged"
        return m8, cal8, measured, InputChoice(INPUT_BITS, None, None, why)
    rel8 = reference.relative_error(err8)
    said = (
        f"on the calibration data the int8 input's outputs differ from float by {100 * rel8:.1f} % of their "
        "spread"
    )
    if rel8 <= INPUT16_TOLERANCE:
        why = f"int8: {said}, within {100 * INPUT16_TOLERANCE:.0f} %"
        return m8, cal8, measured, InputChoice(INPUT_BITS, rel8, None, why)
    unfit = input16_unfit(fm)
    if unfit:
        why = f"int8: {said}, above {100 * INPUT16_TOLERANCE:.0f} %, but an int16 input is not possible: "
        why += unfit
        return m8, cal8, measured, InputChoice(INPUT_BITS, rel8, None, why)
    wide = whole_input_range(measured)
    m16 = quantize(fm, wide, HIDDEN_BITS, INPUT16_BITS)
    rel16 = reference.relative_error(reference.error(m16))
    said = f"{said}, above {100 * INPUT16_TOLERANCE:.0f} %; an int16 input's by {100 * rel16:.1f} %"
    if rel16 < rel8:
        why = f"int16: {said} (2 B per input value; --input-bits 8 keeps int8)"
        return m16, wide, measured, InputChoice(INPUT16_BITS, rel8, rel16, why)
    return m8, cal8, measured, InputChoice(INPUT_BITS, rel8, rel16, f"int8: {said}, no closer")
