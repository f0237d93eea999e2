"""The readouts: what the dense head reads at each step. One entry per readout, read by all that differs.

``last``: the last layer's hidden state h_t (the head at every step, as before).
``mean``: the mean of h over the steps since the last reset, ``mean_t = round_half_up(S_t / n)`` with
``S_t = sat32(S_{t-1} + h_t)`` (int32 per unit) and ``n`` the steps since the reset (this one included).
``max``: the elementwise maximum of h over the steps since the last reset.

A pooled readout is for window models: the board resets the state at every window start, so the output
at a window's last step is the head applied to the pooled window, and the outputs before it are the head
of the window so far. Pooling keeps one int32 word per unit (``POOL_WORDS`` int16 words per unit after the
recurrent state); the pooled vector has the hidden state's format (int8 Q0.7 or int16 Q0.15), so the head
and its calibration are unchanged. docs/integer-contract.md, "Readout", states the rule; C has
csrc/tl_pool.c and MicroPython one function per readout in tinylstm_mpy.py.

Adding a readout: one ``Readout`` here (code, its float, torch and integer pooling), one case in
csrc/tl_pool.c and in the MicroPython fallback, one in codegen/qat.py; then regenerate the contract files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinylstm.errors import TinyLSTMError

POOL_WORDS = 2  # int16 words of pooling state per hidden unit (one int32)
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def div_round_half_up(s: np.ndarray, n: int) -> np.ndarray:
    """floor(s / n + 1/2) for int64 arrays ``s`` and a count n >= 1 (tl_pool.c computes it in int32)."""
    s = np.asarray(s, dtype=np.int64)
    q = np.floor_divide(s, n)
    r = s - q * n  # 0 <= r < n
    return q + (2 * r >= n)


def _mean_update(pool: np.ndarray, h: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    pool = h.astype(np.int64) if n == 1 else np.clip(pool + h, INT32_MIN, INT32_MAX)
    return pool, div_round_half_up(pool, n)


def _max_update(pool: np.ndarray, h: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    pool = h.astype(np.int64) if n == 1 else np.maximum(pool, h)
    return pool, pool


def _mean_float(h: np.ndarray) -> np.ndarray:
    """Running mean over axis 1 of [B, T, H]."""
    return np.cumsum(h, axis=1) / np.arange(1, h.shape[1] + 1)[None, :, None]


def _max_float(h: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(h, axis=1)


# int_update(pool int64 [B, H], h int64 [B, H], n) -> (the new pool, the pooled h the head reads [B, H]);
# n: the steps since the last reset, this one included (>= 1); the pool is ignored when n == 1
IntUpdate = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Readout:
    name: str  # CLI, checkpoints, reports
    code: int  # TL_READOUT_<NAME> in C, the blob header, the model hash
    pooled: bool  # keeps a pool (window models only)
    float_pool: Callable[[np.ndarray], np.ndarray]  # [B, T, H] -> what the head reads at each step
    int_update: IntUpdate | None
    torch_op: str  # how trainer/models.py pools: "none", "cummean" or "cummax"
    doc: str  # one line for generated headers and reports


LAST = Readout("last", 0, False, lambda h: h, None, "none", "the last layer's hidden state at this step")
MEAN = Readout(
    "mean",
    1,
    True,
    _mean_float,
    _mean_update,
    "cummean",
    "the mean of the last layer's h since the last reset",
)
MAX = Readout(
    "max",
    2,
    True,
    _max_float,
    _max_update,
    "cummax",
    "the maximum of the last layer's h since the last reset",
)
READOUTS: dict[str, Readout] = {r.name: r for r in (LAST, MEAN, MAX)}
NAMES: tuple[str, ...] = tuple(READOUTS)


def readout(name: str) -> Readout:
    try:
        return READOUTS[name]
    except KeyError:
        raise TinyLSTMError(f"unknown readout {name!r}; supported: {', '.join(READOUTS)}") from None


def by_code(code: int) -> Readout | None:
    return next((r for r in READOUTS.values() if r.code == code), None)
