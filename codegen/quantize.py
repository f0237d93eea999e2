"""Float model -> integer model, following docs/integer-contract.md.

Calibration runs the float model on real (normalised) sequences and records the input
range, the cell-state range and the head's output range; the integer model is then fully
determined by the weights and those three ranges.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from tinylstm.codegen.spec import Cell, FloatModel, ModelMeta, by_length, float_forward
from tinylstm.contract import qmath
from tinylstm.contract.cells import cell_type
from tinylstm.contract.constants import (
    BIAS_LIMIT,
    CELL_FRAC_MAX,
    HIDDEN16_BITS,
    HIDDEN_BITS,
    HIDDEN_FORMATS,
    INPUT16_BITS,
    INPUT_BITS,
    KERNEL_VERSION,
    MAX_INPUT16,
    MAX_SCALE_EXP,
    MULT16_BITS,
    MULT_BITS,
    input_bits,
    input_qmax,
    stack_bytes,
    state_words,
)
from tinylstm.contract.readouts import readout
from tinylstm.errors import TinyLSTMError

CELL_MARGIN = 1.25  # headroom over the largest calibrated |cell state|
OUTPUT_MARGIN = 1.25  # headroom over the largest calibrated |output|


@dataclass
class Calibration:
    """Ranges measured by running the float model on real data."""

    input_absmax: float  # the input range quantize() uses (calibrate: the 99.99th percentile of |input|)
    cell_absmax: list[float]  # per layer (LSTM; a bidirectional model's backward layers after); empty for GRU
    output_absmax: float
    steps: int
    input_max: float = 0.0  # the largest |input| seen (an int16 input's range: codegen/input_range.py)
    sequences: int = 0  # the sequences read (evenly spaced ones beyond calibrate's max_steps)
    # an int8 input's zero point per channel, in input LSBs (codegen/input_range.py; empty: 0): the channel's
    # words cover (zero - 128 .. zero + 127) x the input scale, an asymmetric range for one-sided data
    input_zero: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        """A zero point read back from a file (an export's JSON, a blob's metadata) must be integers: a
        ValueError names the field, which the readers report as a damaged file."""
        zero = self.input_zero
        if not isinstance(zero, list) or not all(
            isinstance(z, int) and not isinstance(z, bool) for z in zero
        ):
            raise ValueError(f"calibration input_zero {zero!r}, not a list of integers")

    def zero_point(self, channels: int) -> np.ndarray:
        """The int8 input's zero point per channel (int64 [channels]; 0 where the range is symmetric)."""
        return np.asarray(self.input_zero or [0] * channels, dtype=np.int64)


@dataclass
class IntLayer:
    input_size: int
    hidden_size: int
    weights: np.ndarray  # int8 [G*H, I+H]: each row covers the concatenated [x ; h]
    bias: np.ndarray  # int32 [G*H] (cells with bias_hn: the last gate's input-side bias b_in)
    bias_hn: np.ndarray | None  # int32 [H], cells with bias_hn (GRU): recurrent bias of the last gate
    mult: np.ndarray  # int32 [G*H]
    shift: np.ndarray  # int8 [G*H]
    cell_frac: int  # fractional bits of the cell state (cells with one: LSTM); 0 otherwise
    # int8 [G*H] in [-4, 4], the scale exponent e between the x part and the h part of each row:
    # acc = acc_x * 2^max(e,0) + acc_h * 2^max(-e,0)
    scale_exp: np.ndarray
    # 8: int8 Q0.7 h and an int8 model input; 16: int16 Q0.15 h and an int16 model input (int16x8,
    # docs/integer-contract.md)
    hidden_bits: int = HIDDEN_BITS

    @property
    def hidden_frac(self) -> int:
        return HIDDEN_FORMATS[self.hidden_bits]


@dataclass
class IntModel:
    cell: Cell
    layers: list[IntLayer]
    head_w: np.ndarray  # int8 [O, H]
    head_b: np.ndarray  # int32 [O]
    head_mult: np.ndarray  # int32 [O]
    head_shift: np.ndarray  # int8 [O]
    output_scale: float  # real value of one output LSB (normalised target units for regression)
    input_mean: np.ndarray  # float32 [C]
    input_mul: np.ndarray  # float32 [C]: q = round((x - mean) * mul)
    input_scale: float  # real value of one input LSB (normalised units), int8 or int16 (input_bits)
    act_table: np.ndarray  # int16 [257] tanh table
    meta: ModelMeta
    calibration: Calibration
    readout: str = "last"  # what the head reads (contract/readouts.py)
    stack: int = 1  # samples per recurrent step (contract/stacking.py)
    # a bidirectional window model's backward layers (one per forward layer; spec.py FloatModel.backward)
    backward: list[IntLayer] = field(default_factory=list)
    # an int8-h model with an int16 input (quantize's input_bits 16; docs/integer-contract.md, "int16 input")
    input16: bool = False

    @property
    def bidirectional(self) -> bool:
        return bool(self.backward)

    @property
    def window(self) -> int:
        """W, the samples of a bidirectional model's window (0 for a unidirectional model)."""
        return int(self.meta.window or 0) if self.backward else 0

    @property
    def head_width(self) -> int:
        """What the head reads: H, or [v_f ; v_b] (2H) for a bidirectional model."""
        return self.hidden_size * (2 if self.backward else 1)

    @property
    def input_size(self) -> int:
        """C, the channels of one sample (layer 0 reads ``stack`` samples at once)."""
        return self.layers[0].input_size // self.stack

    @property
    def hidden_size(self) -> int:
        return self.layers[0].hidden_size

    @property
    def output_size(self) -> int:
        return int(self.head_w.shape[0])

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def gates(self) -> int:
        return cell_type(self.cell).gates

    @property
    def hidden_bits(self) -> int:
        return self.layers[0].hidden_bits

    @property
    def input_zero(self) -> np.ndarray:
        """The int8 input's zero point per channel (int64 [C], in input LSBs): folded into ``input_mean`` and
        the first layer's bias by ``quantize``, so the kernel never sees it."""
        return self.calibration.zero_point(self.input_size)

    @property
    def input_bits(self) -> int:
        """The model input's word: 8 (tl_step) or 16 (tl_step_s16: an int16-h model's, or an int16 input)."""
        return input_bits(self.hidden_bits, self.input16)

    @property
    def input_dtype(self) -> np.dtype:
        """The numpy type of the model's input words: int8, or int16 (``input_bits``)."""
        return np.dtype(f"int{self.input_bits}")

    @property
    def hidden_dtype(self) -> np.dtype:
        """The numpy type of the hidden-state words: int8, or int16 for an int16-h model."""
        return np.dtype(f"int{self.hidden_bits}")

    @property
    def label(self) -> str:
        """What reports call the integer model: "int8", "int8-x16" (an int16 input) or "int16-h" (an int16
        hidden state and input)."""
        if self.hidden_bits != HIDDEN_BITS:
            return "int16-h"
        return "int8-x16" if self.input16 else "int8"

    @property
    def hidden_format(self) -> str:
        """The hidden state's type and format, as reports name it: "int8 Q0.7", "int16 Q0.15"."""
        return f"int{self.hidden_bits} Q0.{HIDDEN_FORMATS[self.hidden_bits]}"

    @property
    def state_words(self) -> int:
        """int16 words of state buffer the kernel needs for this model (tl_state_words): the layers', a pooled
        readout's, a stacked model's input buffer and a bidirectional model's backward stack and window."""
        return state_words(
            self.num_layers,
            self.hidden_size,
            self.hidden_bits,
            readout(self.readout).pooled,
            stack_bytes(self.stack, self.input_size, self.input_bits),
            self.window * self.input_size,
        )

    def canonical_bytes(self) -> bytes:
        """Every value that decides the model's integer behaviour, in a fixed order."""
        parts = [
            np.array(
                [
                    KERNEL_VERSION,
                    cell_type(self.cell).code,
                    self.num_layers,
                    self.input_size,
                    self.hidden_size,
                    self.output_size,
                ],
                dtype="<i4",
            ).tobytes()
        ]
        for L in self.layers + self.backward:
            parts += [
                L.weights.astype("<i1").tobytes(),
                L.bias.astype("<i4").tobytes(),
                L.mult.astype("<i4").tobytes(),
                L.shift.astype("<i1").tobytes(),
                L.scale_exp.astype("<i1").tobytes(),
                np.array([L.cell_frac], dtype="<i4").tobytes(),
            ]
            if L.bias_hn is not None:
                parts.append(L.bias_hn.astype("<i4").tobytes())
        parts += [
            self.head_w.astype("<i1").tobytes(),
            self.head_b.astype("<i4").tobytes(),
            self.head_mult.astype("<i4").tobytes(),
            self.head_shift.astype("<i1").tobytes(),
            self.act_table.astype("<i2").tobytes(),
            self.input_mean.astype("<f4").tobytes(),
            self.input_mul.astype("<f4").tobytes(),
        ]
        if self.hidden_bits != HIDDEN_BITS:  # int8-h models keep the hashes they had before the field
            parts.append(np.array([self.hidden_bits], dtype="<i4").tobytes())
        if self.readout != "last":  # last-readout models keep the hashes they had before the field
            parts.append(np.array([0x52440000 | readout(self.readout).code], dtype="<i4").tobytes())
        if self.stack > 1:  # unstacked models keep the hashes they had before the field
            parts.append(np.array([0x53540000 | self.stack], dtype="<i4").tobytes())
        if self.backward:  # its layers follow the forward ones above; the window decides when they run
            parts.append(np.array([0x42440000 | self.window], dtype="<i4").tobytes())
        if self.input16:  # int8-input models keep the hashes they had before the field
            parts.append(np.array([0x58310000 | INPUT16_BITS], dtype="<i4").tobytes())
        return b"".join(parts)

    @property
    def model_hash(self) -> int:
        """32-bit identity of the integer model (first 4 bytes of its SHA-256, little-endian)."""
        return int.from_bytes(hashlib.sha256(self.canonical_bytes()).digest()[:4], "little")


# sequences per float reference call in ``calibrate``: bounds the memory of its traces (every gate of every
# step, float64), which for thousands of long windows at once ran to gigabytes
CALIBRATION_CHUNK = 512


def calibrate(model: FloatModel, sequences: list[np.ndarray], max_steps: int = 200_000) -> Calibration:
    """Measure ranges on real normalised sequences (each [T, C]); long streams are welcome. Data of more than
    ``max_steps`` samples is measured on evenly spaced sequences (the first and the last among them, so a
    stream model's joined stream: codegen/export.py), as many as hold about that many samples on average:
    whole sequences, so a few long ones can make it more (one or two sequences are always read whole)."""
    cell = cell_type(model.cell)
    if not sequences:
        raise TinyLSTMError("calibration needs real data: no sequences were given")
    if not all(np.all(np.isfinite(s)) for s in sequences):
        raise TinyLSTMError("calibration data contains NaN or infinite values: clean the dataset first")
    sequences = evenly_spaced(sequences, max_steps)
    stacks = model.num_layers + len(model.backward)
    cell_max, out_max, steps = [0.0] * stacks, 0.0, 0
    seen: list[np.ndarray] = []
    for idx in by_length(sequences).values():
        batch = np.stack([np.asarray(sequences[k], dtype=np.float64) for k in idx])
        for lo in range(0, len(batch), CALIBRATION_CHUNK):
            out = float_forward(model, batch[lo : lo + CALIBRATION_CHUNK], keep=("c",))
            out_max = max(out_max, float(np.max(np.abs(out["y"]))))
            for n in range(stacks):
                if f"c{n}" in out:
                    cell_max[n] = max(cell_max[n], float(np.max(np.abs(out[f"c{n}"]))))
        seen.append(np.abs(batch).ravel())
        steps += batch.shape[0] * batch.shape[1]
    return Calibration(
        input_absmax=max(float(np.percentile(np.concatenate(seen), 99.99)), 1e-3),
        cell_absmax=cell_max if cell.cell_state else [],
        output_absmax=max(out_max, 1e-3),
        steps=steps,
        input_max=max(float(max(np.max(a) for a in seen)), 1e-3),
        sequences=len(sequences),
    )


def evenly_spaced(sequences: list[np.ndarray], max_steps: int) -> list[np.ndarray]:
    """All of ``sequences`` if they hold at most ``max_steps`` samples, else evenly spaced ones holding about
    that many, the first and the last among them."""
    n, total = len(sequences), sum(len(s) for s in sequences)
    if total <= max_steps or n <= 2:
        return sequences
    k = min(n, max(2, n * max_steps // total))
    return [sequences[i] for i in np.unique(np.linspace(0, n - 1, k).round().astype(int))]


def _quantize_gate_rows(wx: np.ndarray, wh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int8 rows over [x ; h] with one scale per part, the two scales a power of two apart.

    Returns (weights [R, I+H], common scale s_c per row, scale exponent e per row): the part with the
    larger weights gets scale s_c * 2^|e|, so acc = acc_x * 2^max(e,0) + acc_h * 2^max(-e,0)
    is at scale s_c. Each part keeps (nearly) its own int8 resolution; |e| <= MAX_SCALE_EXP keeps the
    aligned accumulator inside int32.
    """
    ax, ah = np.max(np.abs(wx), axis=1), np.max(np.abs(wh), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((ax > 0) & (ah > 0), np.log2(ax / ah), 0.0)
    scale_exp = np.clip(np.ceil(ratio), -MAX_SCALE_EXP, MAX_SCALE_EXP).astype(np.int64)
    sx_rel, sh_rel = 2.0 ** np.maximum(scale_exp, 0), 2.0 ** np.maximum(-scale_exp, 0)  # part scale / s_c
    absmax = np.maximum(ax / sx_rel, ah / sh_rel)
    s_c = np.where(absmax > 0, absmax / 127.0, 1.0)
    qx = np.clip(np.round(wx / (s_c * sx_rel)[:, None]), -127, 127)
    qh = np.clip(np.round(wh / (s_c * sh_rel)[:, None]), -127, 127)
    return np.concatenate([qx, qh], axis=1).astype(np.int8), s_c, scale_exp.astype(np.int8)


def _quantize_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: returns (int8 weights, float scale per row)."""
    absmax = np.max(np.abs(rows), axis=1)
    scale = np.where(absmax > 0, absmax / 127.0, 1.0)
    q = np.clip(np.round(rows / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def _bias(b: np.ndarray, scale: np.ndarray, what: str) -> np.ndarray:
    q = np.round(b / scale)
    if np.any(np.abs(q) > BIAS_LIMIT):
        raise TinyLSTMError(
            f"{what}: a bias is more than {BIAS_LIMIT} (2^30) accumulator steps: the weights of that row are "
            "tiny "
            "compared to its bias; retrain with weight decay or check the model"
        )
    return q.astype(np.int32)


def _fold_zero(
    bias: np.ndarray, wx: np.ndarray, scale_exp: np.ndarray, zero: np.ndarray, what: str
) -> np.ndarray:
    """A first layer's int32 bias with the input's zero point folded in: the word the kernel reads is the
    input on the scale's grid minus ``zero`` (per input column), so each row's accumulator gets back
    Σ Wq[r, k] · zero[k] · 2^max(a_r, 0), exactly (docs/integer-contract.md, Input)."""
    if not np.any(zero):
        return bias
    folded = bias.astype(np.int64) + (
        (wx.astype(np.int64) @ zero) << np.maximum(scale_exp.astype(np.int64), 0)
    )
    if np.any(np.abs(folded) > BIAS_LIMIT):
        raise TinyLSTMError(
            f"{what}: the input's zero point takes a bias past {BIAS_LIMIT} (2^30) accumulator steps: export "
            "with --input-bits 16, whose range is symmetric"
        )
    return folded.astype(np.int32)


def _multipliers(real: np.ndarray, what: str, bits: int = MULT_BITS) -> tuple[np.ndarray, np.ndarray]:
    try:
        pairs = [qmath.quantize_multiplier(float(r), bits) for r in real]
    except ValueError as exc:
        raise TinyLSTMError(f"{what}: {exc}; the weights are out of the representable range") from exc
    return np.array([p[0] for p in pairs], dtype=np.int32), np.array([p[1] for p in pairs], dtype=np.int8)


def cell_frac_for(absmax: float) -> int:
    """Largest number of fractional bits that keeps ``absmax * CELL_MARGIN`` inside int16."""
    if absmax <= 0:
        return CELL_FRAC_MAX
    bits = math.floor(math.log2(32767.0 / (absmax * CELL_MARGIN)))
    return int(min(max(bits, 0), CELL_FRAC_MAX))


def check_input_bits(hidden_bits: int, bits: int | None) -> int:
    """The model input's bits for ``--hidden-bits``/``--input-bits`` (None: the hidden state's own), or a
    one-line error naming the fix."""
    if hidden_bits not in HIDDEN_FORMATS:
        raise TinyLSTMError(
            f"hidden state of {hidden_bits} bits: choose one of {', '.join(map(str, HIDDEN_FORMATS))}"
        )
    if bits is None:
        return input_bits(hidden_bits)
    if bits not in (INPUT_BITS, INPUT16_BITS):
        raise TinyLSTMError(f"an input of {bits} bits: choose --input-bits 8 or 16")
    if hidden_bits == HIDDEN16_BITS and bits != INPUT16_BITS:
        raise TinyLSTMError(
            "an int16-h model's input is int16: export it with --input-bits 16 (or leave the option out)"
        )
    return bits


def input16_unfit(model: FloatModel) -> str | None:
    """Why ``model`` cannot take an int16 input (with either hidden state), or None when it can."""
    if model.backward:
        return "a bidirectional model keeps an int8 hidden state and input (the int16 ones are for streams)"
    width = model.stack * model.input_size
    if width > MAX_INPUT16:
        return (
            f"layer 0 reads at most {MAX_INPUT16} int16 inputs per step (its int32 sums), this model "
            f"{width} ({model.stack} x {model.input_size})"
        )
    return None


def quantize(
    model: FloatModel, cal: Calibration, hidden_bits: int = HIDDEN_BITS, input_bits: int | None = None
) -> IntModel:
    """Quantize ``model`` with calibration ``cal`` into the integer model the kernel runs, with an int8 Q0.7
    (``hidden_bits`` 8) or int16 Q0.15 (16) hidden state, and an input of ``input_bits`` (None: the hidden
    state's own; 16 with an int8 h: an int16 input, docs/integer-contract.md)."""
    model.validate()
    bits = check_input_bits(hidden_bits, input_bits)
    wide = hidden_bits == HIDDEN16_BITS
    unfit = input16_unfit(model) if bits == INPUT16_BITS else None
    if unfit:
        fix = "" if model.backward else ", or train it with fewer stacked samples"
        raise TinyLSTMError(f"{unfit}: export it with an int8 input (--hidden-bits 8 --input-bits 8){fix}")
    zero = cal.zero_point(model.input_size)
    if len(zero) != model.input_size or (bits == INPUT16_BITS and np.any(zero)):
        raise ValueError(f"input zero point {cal.input_zero}: one per channel, and only for an int8 input")
    cell = cell_type(model.cell)
    s_h = 2.0 ** -HIDDEN_FORMATS[hidden_bits]
    s_x = cal.input_absmax / input_qmax(bits)  # the model input: int8, or int16
    H = model.hidden_size
    layers: list[IntLayer] = []
    for n, L in enumerate(model.layers + model.backward):
        s_in = s_x if n % model.num_layers == 0 else s_h
        wq, s_c, scale_exp = _quantize_gate_rows(L.w_ih * (s_in / s_h), L.w_hh)
        acc_scale = s_c * s_h  # real value of one (aligned) accumulator step, per row
        what = f"layer {n}" if n < model.num_layers else f"backward layer {n - model.num_layers}"
        b = L.b_ih + L.b_hh  # both biases fold into one, except a last gate that keeps b_hh apart (GRU's n)
        bias_hn = None
        if cell.bias_hn:
            last = cell.gate_rows(H, cell.gates - 1)
            b[last] = L.b_ih[last]  # b_hn stays inside r * (W_hn h + b_hn)
            bias_hn = _bias(L.b_hh[last], acc_scale[last], what)
        cell_frac = cell_frac_for(cal.cell_absmax[n]) if cell.cell_state else 0
        # the int64 row sums (an int16 h, or layer 0's int16 input) take MULT16_BITS multipliers
        sum64 = wide or (bits == INPUT16_BITS and n == 0)
        mult, shift = _multipliers(acc_scale * (1 << qmath.Q12), what, MULT16_BITS if sum64 else MULT_BITS)
        bias_q = _bias(b, acc_scale, what)
        if n % model.num_layers == 0:  # a layer that reads the model input
            bias_q = _fold_zero(bias_q, wq[:, : L.w_ih.shape[1]], scale_exp, np.tile(zero, model.stack), what)
        layers.append(
            IntLayer(
                L.w_ih.shape[1],
                H,
                wq,
                bias_q,
                bias_hn,
                mult,
                shift,
                cell_frac,
                scale_exp,
                hidden_bits,
            )
        )
    hw, s_w = _quantize_rows(model.head_w)
    s_out = cal.output_absmax * OUTPUT_MARGIN / 32767.0
    head_mult, head_shift = _multipliers(s_w * s_h / s_out, "head")
    std = np.asarray(model.meta.input_std, dtype=np.float64)
    # the zero point moves the words' origin, q = round((x - mean) * mul) - zero; layer 0's bias adds it back
    mean = (np.asarray(model.meta.input_mean, dtype=np.float64) + zero * s_x * std).astype(np.float32)
    return IntModel(
        cell=model.cell,
        layers=layers[: model.num_layers],
        head_w=hw,
        head_b=_bias(model.head_b, s_w * s_h, "head"),
        head_mult=head_mult,
        head_shift=head_shift,
        output_scale=s_out,
        input_mean=mean,
        input_mul=(1.0 / (std * s_x)).astype(np.float32),
        input_scale=s_x,
        act_table=qmath.make_tanh_table().astype(np.int16),
        meta=model.meta,
        calibration=cal,
        readout=model.readout,
        stack=model.stack,
        backward=layers[model.num_layers :],
        input16=bits == INPUT16_BITS and not wide,
    )
