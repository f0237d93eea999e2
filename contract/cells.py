"""The recurrent cells: one entry per cell type, read by everything that differs between cells.

A ``CellType`` says how many gate rows a unit has, whether the cell carries an int16 cell state (with
calibrated fractional bits) and whether its last gate keeps its recurrent bias apart (GRU's
n = tanh(W_in x + b_in + r * (W_hn h + b_hn))), which PyTorch module it corresponds to, and how one step
runs in float (``float_step``: the reference and calibration) and in integers (``int_step``: the golden
reference of the C kernel). The spec, quantizer, golden reference, blob, emitters, model loader and
trainer all read this table; C has its own one-line-per-cell table (csrc/tl_cells.c) whose codes and
shapes are generated from it (contract/constants.py), and MicroPython has one in tinylstm_mpy.py.

Adding a cell (docs/integer-contract.md, "Adding a cell"): one ``CellType`` here with its two step
functions, one C file with its layer step and one line in csrc/tl_cells.c, one step function in
the MicroPython fallback, one fake-quantized step in codegen/qat.py; then regenerate the contract files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tinylstm.contract import qmath
from tinylstm.contract.qmath import Activations
from tinylstm.errors import TinyLSTMError


class IntLayer(Protocol):
    """What a cell's integer step reads of its quantized layer (codegen/quantize.py's ``IntLayer``): the
    hidden size and format, the cell state's fractional bits, the int32 biases at the accumulator's scale
    (``bias_hn``: the last gate's recurrent bias, kept apart when ``CellType.bias_hn``) and every row's
    requantization multiplier and shift to Q3.12."""

    @property
    def hidden_size(self) -> int: ...
    @property
    def hidden_bits(self) -> int: ...
    @property
    def hidden_frac(self) -> int: ...
    @property
    def cell_frac(self) -> int: ...
    @property
    def bias(self) -> np.ndarray: ...
    @property
    def bias_hn(self) -> np.ndarray | None: ...
    @property
    def mult(self) -> np.ndarray: ...
    @property
    def shift(self) -> np.ndarray: ...


# float_step(gx, gh, h, c) -> (h', c', traces): gx = W_ih x + b_ih, gh = W_hh h + b_hh, all [B, G*H] / [B, H];
# traces["gates"] holds the gate activations [B, G, H] in the order of gate_names
FloatStep = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, dict[str, Any]]
]
# int_step(layer, act, acc_x, acc_h, h, c) -> (h', c', gates): act = the model's tanh table as Activations;
# acc_x / acc_h = the two parts of every row's accumulator, already at one scale (int64 [B, G*H]); h (int8
# Q0.7 or int16 Q0.15: layer.hidden_bits) and c int16 values as int64 [B, H]; gates = the Q0.15 gate
# activations [B, G, H] in the order of gate_names
IntStep = Callable[
    [IntLayer, Activations, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    tuple[np.ndarray, np.ndarray, np.ndarray],
]


def _sig(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _pre_q12(layer: IntLayer, acc: np.ndarray, rows: slice) -> np.ndarray:
    """Q3.12 pre-activations of ``rows``: sat16(requantize(acc)) with the rows' multipliers."""
    return qmath.sat(qmath.requantize(acc, layer.mult[rows], layer.shift[rows]), 16)


def _lstm_float(
    gx: np.ndarray, gh: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    H = h.shape[1]
    pre = gx + gh
    gates = _sig(pre).reshape(len(pre), 4, H)  # i, f, o (one call; g's sigmoid is overwritten)
    g = gates[:, 2] = np.tanh(pre[:, 2 * H : 3 * H])
    i, f, o = gates[:, 0], gates[:, 1], gates[:, 3]
    c = f * c + i * g
    return o * np.tanh(c), c, {"pre": pre, "c": c, "gates": gates}


def _lstm_int(
    layer: IntLayer, act: Activations, acc_x: np.ndarray, acc_h: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    H, F = layer.hidden_size, layer.cell_frac
    pre = _pre_q12(layer, acc_x + acc_h + layer.bias, slice(None))
    s = act.sigmoid(pre)  # one lookup for i, f and o (g's sigmoid is not used)
    i, f, o = s[:, :H], s[:, H : 2 * H], s[:, 3 * H :]
    g = act.tanh(pre[:, 2 * H : 3 * H])
    ig = qmath.rshift_round(i * g, qmath.Q15 - F)
    c_new = qmath.sat(qmath.rshift_round(f * c + ig, qmath.Q15), 16)
    t = act.tanh(qmath.cell_to_q12(c_new, F))
    h_new = qmath.sat(qmath.rshift_round(o * t, 2 * qmath.Q15 - layer.hidden_frac), layer.hidden_bits)
    gates = s.reshape(len(s), 4, H)  # i, f, _, o: s is not read again
    gates[:, 2] = g
    return h_new, c_new, gates


def _gru_float(
    gx: np.ndarray, gh: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    H = h.shape[1]
    pre = gx + gh
    gates = np.empty((len(pre), 3, H), dtype=pre.dtype)  # r, z, n (as _gru_int, without np.stack)
    gates[:, :2] = _sig(pre[:, : 2 * H]).reshape(len(pre), 2, H)
    r, z = gates[:, 0], gates[:, 1]
    nx, nh = gx[:, 2 * H :], gh[:, 2 * H :]
    n = gates[:, 2] = np.tanh(nx + r * nh)
    return (1.0 - z) * n + z * h, c, {"pre": pre, "nx": nx, "nh": nh, "gates": gates}


def _gru_int(
    layer: IntLayer, act: Activations, acc_x: np.ndarray, acc_h: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    H = layer.hidden_size
    assert layer.bias_hn is not None
    rz = _pre_q12(layer, acc_x[:, : 2 * H] + acc_h[:, : 2 * H] + layer.bias[: 2 * H], slice(0, 2 * H))
    rz = act.sigmoid(rz)
    r, z = rz[:, :H], rz[:, H:]
    nx = _pre_q12(layer, acc_x[:, 2 * H :] + layer.bias[2 * H :], slice(2 * H, 3 * H))
    nh = _pre_q12(layer, acc_h[:, 2 * H :] + layer.bias_hn, slice(2 * H, 3 * H))
    n = act.tanh(qmath.sat(nx + qmath.rshift_round(r * nh, qmath.Q15), 16))
    h15 = qmath.hidden_to_q15(h, layer.hidden_bits)
    h_new15 = n + qmath.rshift_round(z * (h15 - n), qmath.Q15)
    h_new = qmath.hidden_from_q15(h_new15, layer.hidden_bits)
    gates = np.empty((len(n), 3, H), dtype=n.dtype)  # r, z, n (np.stack takes twice as long on small arrays)
    gates[:, :2] = rz.reshape(len(rz), 2, H)
    gates[:, 2] = n
    return h_new, c, gates


def _rnn_float(
    gx: np.ndarray, gh: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    pre = gx + gh
    n = np.tanh(pre)
    return n, c, {"pre": pre, "gates": n[:, None, :]}


def _rnn_int(
    layer: IntLayer, act: Activations, acc_x: np.ndarray, acc_h: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = act.tanh(_pre_q12(layer, acc_x + acc_h + layer.bias, slice(None)))
    return qmath.hidden_from_q15(n, layer.hidden_bits), c, n[:, None, :]


@dataclass(frozen=True)
class CellType:
    name: str  # CLI, checkpoints, reports, MicroPython
    code: int  # TL_CELL_<NAME> in C, the blob header, HELLO.cell, the model hash
    gates: int  # gate rows per unit, in PyTorch's order
    gate_names: tuple[str, ...]
    torch_name: str  # the PyTorch module: torch.nn.<torch_name>
    cell_state: bool  # an int16 cell state with calibrated fractional bits (LSTM's c)
    bias_hn: bool  # the last gate's recurrent bias stays apart (GRU: inside r * (W_hn h + b_hn))
    float_step: FloatStep
    int_step: IntStep
    # attributes a PyTorch module of this cell must have (nn.RNN's nonlinearity): a module that differs is
    # refused, and a bare state_dict, which cannot show them, must name its cell in the description
    torch_options: tuple[tuple[str, object], ...] = ()

    def gate_rows(self, hidden: int, gate: int) -> slice:
        """The rows of gate number ``gate`` in a layer of ``hidden`` units."""
        return slice(gate * hidden, (gate + 1) * hidden)

    def torch_class(self) -> type:
        from torch import nn  # the numeric core runs without PyTorch; only model loading needs it

        cls: type = getattr(nn, self.torch_name)
        return cls


LSTM = CellType("lstm", 0, 4, ("i", "f", "g", "o"), "LSTM", True, False, _lstm_float, _lstm_int)
GRU = CellType("gru", 1, 3, ("r", "z", "n"), "GRU", False, True, _gru_float, _gru_int)
# Elman: h' = tanh(W_ih x + b_ih + W_hh h + b_hh), one row per unit (its gate "n": the new h before storing)
RNN = CellType(
    "rnn", 2, 1, ("n",), "RNN", False, False, _rnn_float, _rnn_int, torch_options=(("nonlinearity", "tanh"),)
)
CELLS: dict[str, CellType] = {c.name: c for c in (LSTM, GRU, RNN)}
NAMES: tuple[str, ...] = tuple(CELLS)


def cell_type(name: str) -> CellType:
    try:
        return CELLS[name]
    except KeyError:
        raise TinyLSTMError(f"unknown cell type {name!r}; supported: {', '.join(CELLS)}") from None


def by_code(code: int) -> CellType | None:
    return next((c for c in CELLS.values() if c.code == code), None)


def by_gates(gates: int) -> CellType | None:
    """The cell whose units have ``gates`` rows (how a bare state_dict tells LSTM from GRU)."""
    return next((c for c in CELLS.values() if c.gates == gates), None)


def by_torch_module(module: object) -> CellType | None:
    """The cell of a torch.nn RNN module (an nn.LSTM, nn.GRU or a subclass), None for anything else."""
    return next((c for c in CELLS.values() if isinstance(module, c.torch_class())), None)
