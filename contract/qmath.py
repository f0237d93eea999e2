"""The integer arithmetic of the TinyLSTM contract, in numpy (the one Python copy).

Every function works on int64 numpy arrays (or Python ints) and mirrors, operation for
operation, ``csrc/tl_qmath.h``. docs/integer-contract.md gives the formulas.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from tinylstm.contract.constants import (
    HIDDEN_FORMATS,
    HIDDEN_FRAC,
    MULT_BITS,
    Q12,
    Q15,
    SHIFT_MAX,
    SHIFT_MIN,
    TABLE_HI,
    TABLE_LO,
    TABLE_SEGMENT_BITS,
    TABLE_SIZE,
)

__all__ = [
    "HIDDEN_FRAC",
    "Activations",
    "Q12",
    "Q15",
    "TABLE_SIZE",
    "activations",
    "cell_to_q12",
    "hidden_from_q15",
    "hidden_to_q15",
    "make_tanh_table",
    "quantize_multiplier",
    "requantize",
    "rshift_round",
    "sat",
    "sigmoid_q15",
    "stored_table",
    "tanh_q15",
]

IntArray = np.ndarray


def sat(x: IntArray, bits: int) -> IntArray:
    """Saturate to a signed ``bits``-wide integer (``np.minimum``/``np.maximum``: a third of ``np.clip``'s
    time on the golden reference's small arrays)."""
    return np.minimum(np.maximum(x, -(1 << (bits - 1))), (1 << (bits - 1)) - 1)


def rshift_round(x: IntArray, n: int) -> IntArray:
    """Arithmetic right shift by ``n >= 1`` with round-half-up: ``(x + 2^(n-1)) >> n``."""
    return (x + (1 << (n - 1))) >> n


# requantize's rounding term 2^(s-1) at index s (0..63): looked up, in half the time computing it takes on the
# golden reference's small arrays
_ROUNDING = np.concatenate([[0], np.left_shift(np.int64(1), np.arange(63, dtype=np.int64))]).astype(np.int64)


def requantize(acc: IntArray, mult: IntArray, shift: IntArray) -> IntArray:
    """The one requantization rule: ``(acc * M + 2^(s-1)) >> s`` with an int64 product."""
    acc = np.asarray(acc, dtype=np.int64)
    mult = np.asarray(mult, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    return (acc * mult + _ROUNDING[shift]) >> shift


def make_tanh_table() -> IntArray:
    """tanh sampled at x = -8 + k/16 (k = 0..TABLE_SIZE-1), in Q0.15, saturated to int16."""
    step = (1 << TABLE_SEGMENT_BITS) / (1 << Q12)  # a segment in real units: 1/16
    xs = -8.0 + np.arange(TABLE_SIZE, dtype=np.float64) * step
    return sat(np.round(np.tanh(xs) * (1 << Q15)).astype(np.int64), 16)


def stored_table(table: IntArray) -> IntArray:
    """The entries TABLE_LO..TABLE_HI + 1 of ``table`` that the C kernel stores and reads with its index
    clamped to TABLE_LO..TABLE_HI: the same tanh at every input, since the entries outside are saturated.
    ValueError for a table whose ends are not (not the contract's)."""
    t = np.asarray(table)
    if t.shape != (TABLE_SIZE,) or np.any(t[: TABLE_LO + 1] != t[0]) or np.any(t[TABLE_HI:] != t[-1]):
        raise ValueError(f"the tanh table is not saturated outside entries {TABLE_LO}..{TABLE_HI}")
    return t[TABLE_LO : TABLE_HI + 2]


def tanh_q15(x: IntArray, table: IntArray) -> IntArray:
    """tanh of a Q3.12 int16 input, Q0.15 output, by linear interpolation in ``table``."""
    u = np.asarray(x, dtype=np.int64) + 32768
    idx = u >> TABLE_SEGMENT_BITS
    frac = u & ((1 << TABLE_SEGMENT_BITS) - 1)
    t0 = table[idx]
    return t0 + (((table[idx + 1] - t0) * frac + (1 << (TABLE_SEGMENT_BITS - 1))) >> TABLE_SEGMENT_BITS)


def sigmoid_q15(x: IntArray, table: IntArray) -> IntArray:
    """sigmoid(x) = (1 + tanh(x / 2)) / 2 on the same table; output in [0, 32767]."""
    return (tanh_q15(np.asarray(x, dtype=np.int64) >> 1, table) + 32768) >> 1


@dataclass(frozen=True)
class Activations:
    """``tanh_q15`` and ``sigmoid_q15`` on one table, evaluated once at every int16 input so that each is a
    single lookup (the golden reference's hot path). Every activation input of the contract is a Q3.12 value
    saturated to int16 (docs/integer-contract.md, Activations), the domain these arrays cover."""

    tanh_all: IntArray  # int64 [65536]: tanh_q15(x) at index x + 32768
    sigmoid_all: IntArray  # int64 [65536]: sigmoid_q15(x) at index x + 32768

    def tanh(self, x: IntArray) -> IntArray:
        return self.tanh_all[x + 32768]

    def sigmoid(self, x: IntArray) -> IntArray:
        return self.sigmoid_all[x + 32768]


@functools.lru_cache(maxsize=8)
def _activations(table: bytes) -> Activations:
    xs = np.arange(-32768, 32768, dtype=np.int64)
    t = np.frombuffer(table, dtype=np.int64)
    return Activations(tanh_q15(xs, t), sigmoid_q15(xs, t))


def activations(table: IntArray) -> Activations:
    """The ``Activations`` of a tanh table (kept for the last few tables: a model's runs share one)."""
    return _activations(np.asarray(table, dtype=np.int64).tobytes())


def cell_to_q12(c: IntArray, cell_frac: int) -> IntArray:
    """Bring the cell state from Q(15-F).F to the Q3.12 tanh input."""
    if cell_frac > Q12:
        return rshift_round(c, cell_frac - Q12)
    if cell_frac < Q12:
        return sat(np.asarray(c, dtype=np.int64) << (Q12 - cell_frac), 16)
    return c


def hidden_from_q15(v: IntArray, bits: int) -> IntArray:
    """A Q0.15 value as a hidden-state word of ``bits`` bits: sat8(rsr(v, 8)) for int8 Q0.7, sat16(v) for
    int16 Q0.15."""
    frac = HIDDEN_FORMATS[bits]
    return sat(rshift_round(v, Q15 - frac) if frac < Q15 else v, bits)


def hidden_to_q15(h: IntArray, bits: int) -> IntArray:
    """A hidden-state word of ``bits`` bits in Q0.15: h * 2^(15 - frac)."""
    return np.asarray(h, dtype=np.int64) << (Q15 - HIDDEN_FORMATS[bits])


def quantize_multiplier(real: float, bits: int = MULT_BITS) -> tuple[int, int]:
    """Split a positive real multiplier into (M, s) with M in [2^(bits-1), 2^bits) and
    SHIFT_MIN <= s <= SHIFT_MAX: 31 bits by default, MULT16_BITS for the gate rows of int16-h models."""
    if not math.isfinite(real) or real <= 0.0:
        raise ValueError(f"multiplier must be finite and positive, got {real!r}")
    frac, exp = math.frexp(real)
    mult = round(frac * (1 << bits))
    shift = bits - exp
    if mult == 1 << bits:
        mult >>= 1
        shift -= 1
    if shift > SHIFT_MAX:
        mult >>= shift - SHIFT_MAX
        shift = SHIFT_MAX
    if shift < SHIFT_MIN:
        raise ValueError(f"multiplier {real:g} is too large for the int32 requantizer")
    return max(mult, 0), shift
