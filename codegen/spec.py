"""The float model codegen starts from: an RNN (LSTM or GRU, PyTorch layout) plus a dense head.

It is built from a TinyLSTM checkpoint or from a user's own ``nn.LSTM``/``nn.GRU`` +
``nn.Linear`` model (see ``codegen.user_model``), and carries the metadata the firmware
needs (task, classes, normalisation, window/stream mode).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from tinylstm.trainer.errors import TinyLSTMError

Cell = Literal["lstm", "gru"]
GATES: dict[str, int] = {"lstm": 4, "gru": 3}
MAX_LAYERS = 3
MAX_HIDDEN = 256
MAX_INPUT = 1024


@dataclass
class FloatLayer:
    """One recurrent layer in PyTorch's layout (gate order i,f,g,o for LSTM; r,z,n for GRU)."""

    w_ih: np.ndarray  # [G*H, I]
    w_hh: np.ndarray  # [G*H, H]
    b_ih: np.ndarray  # [G*H]
    b_hh: np.ndarray  # [G*H]


@dataclass
class ModelMeta:
    """What the application around the kernel needs to know about the model."""

    task: Literal["classification", "regression"] = "classification"
    mode: Literal["window", "stream"] = "window"
    window: int | None = None
    classes: list[str] | None = None
    channels: list[str] | None = None
    input_mean: list[float] = field(default_factory=list)
    input_std: list[float] = field(default_factory=list)
    target_mean: list[float] | None = None
    target_std: list[float] | None = None


@dataclass
class FloatModel:
    cell: Cell
    layers: list[FloatLayer]
    head_w: np.ndarray  # [O, H]
    head_b: np.ndarray  # [O]
    meta: ModelMeta

    @property
    def input_size(self) -> int:
        return int(self.layers[0].w_ih.shape[1])

    @property
    def hidden_size(self) -> int:
        return int(self.layers[0].w_hh.shape[1])

    @property
    def output_size(self) -> int:
        return int(self.head_w.shape[0])

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def validate(self) -> None:
        """Refuse shapes or values the integer kernel cannot represent, saying what is supported."""
        supported = (
            f"supported: LSTM or GRU, 1-{MAX_LAYERS} layers, hidden size 1-{MAX_HIDDEN}, "
            f"input size 1-{MAX_INPUT}, unidirectional, no proj_size, one nn.Linear head"
        )
        if self.cell not in GATES:
            raise TinyLSTMError(f"unknown cell type {self.cell!r}; {supported}")
        if not 1 <= self.num_layers <= MAX_LAYERS:
            raise TinyLSTMError(f"{self.num_layers} recurrent layers; {supported}")
        g, h = GATES[self.cell], self.hidden_size
        if not 1 <= h <= MAX_HIDDEN or not 1 <= self.input_size <= MAX_INPUT:
            raise TinyLSTMError(f"input size {self.input_size}, hidden size {h}; {supported}")
        for n, layer in enumerate(self.layers):
            width = self.input_size if n == 0 else h
            shapes = {
                "weight_ih": (layer.w_ih.shape, (g * h, width)),
                "weight_hh": (layer.w_hh.shape, (g * h, h)),
                "bias_ih": (layer.b_ih.shape, (g * h,)),
                "bias_hh": (layer.b_hh.shape, (g * h,)),
            }
            for name, (got, want) in shapes.items():
                if tuple(got) != want:
                    raise TinyLSTMError(
                        f"layer {n} {name} has shape {tuple(got)}, expected {want} for a {self.cell.upper()} "
                        f"with hidden size {h} (all layers must share one hidden size); {supported}"
                    )
        if self.head_w.shape != (self.output_size, h) or self.head_b.shape != (self.output_size,):
            raise TinyLSTMError(
                f"head weight {self.head_w.shape} / bias {self.head_b.shape} do not match hidden size {h}"
            )
        arrays = [self.head_w, self.head_b] + [a for L in self.layers for a in vars(L).values()]
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise TinyLSTMError("the model has NaN or infinite weights: retrain it (lower the learning rate)")
        meta = self.meta
        if len(meta.input_mean) != self.input_size or len(meta.input_std) != self.input_size:
            raise TinyLSTMError(
                f"normalisation has {len(meta.input_mean)} means / {len(meta.input_std)} stds for "
                f"{self.input_size} input channels: give one mean and std per channel"
            )
        if meta.task == "classification" and meta.classes is not None and len(meta.classes) != self.output_size:
            raise TinyLSTMError(f"{len(meta.classes)} class names for {self.output_size} outputs")


def float_forward(model: FloatModel, x: np.ndarray) -> dict[str, np.ndarray]:
    """Float reference of the model on normalised input ``x`` [B, T, C] (float64).

    Returns ``y`` [B, T, O] and, for calibration, per layer the gate pre-activations
    ``pre{n}`` [B, T, G*H] (GRU: the n gate's input and recurrent parts as ``nx{n}``/``nh{n}``),
    cell states ``c{n}`` (LSTM) and hidden states ``h{n}``.
    """
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))
    B, T, _ = x.shape
    H = model.hidden_size
    out: dict[str, np.ndarray] = {}
    seq = x.astype(np.float64)
    for n, L in enumerate(model.layers):
        h = np.zeros((B, H))
        c = np.zeros((B, H))
        hs, cs, pres, nxs, nhs = [], [], [], [], []
        gx_all = seq @ L.w_ih.T + L.b_ih  # [B, T, G*H]
        for t in range(T):
            gx = gx_all[:, t]
            gh = h @ L.w_hh.T + L.b_hh
            if model.cell == "lstm":
                pre = gx + gh
                i, f, g, o = sig(pre[:, :H]), sig(pre[:, H:2 * H]), np.tanh(pre[:, 2 * H:3 * H]), sig(pre[:, 3 * H:])
                c = f * c + i * g
                h = o * np.tanh(c)
                cs.append(c)
            else:
                pre = gx + gh
                r, z = sig(pre[:, :H]), sig(pre[:, H:2 * H])
                nx, nh = gx[:, 2 * H:], gh[:, 2 * H:]
                nvec = np.tanh(nx + r * nh)
                h = (1.0 - z) * nvec + z * h
                nxs.append(nx)
                nhs.append(nh)
            pres.append(pre)
            hs.append(h)
        seq = np.stack(hs, axis=1)
        out[f"h{n}"] = seq
        out[f"pre{n}"] = np.stack(pres, axis=1)
        if cs:
            out[f"c{n}"] = np.stack(cs, axis=1)
        if nxs:
            out[f"nx{n}"] = np.stack(nxs, axis=1)
            out[f"nh{n}"] = np.stack(nhs, axis=1)
    out["y"] = seq @ model.head_w.T + model.head_b
    return out


def by_length(sequences: list[np.ndarray]) -> dict[int, list[int]]:
    """Indices of the sequences grouped by length, so variable-length data runs batched."""
    groups: dict[int, list[int]] = {}
    for k, s in enumerate(sequences):
        groups.setdefault(len(s), []).append(k)
    return dict(sorted(groups.items()))


def normalise(model: FloatModel, x: np.ndarray) -> np.ndarray:
    """Apply the model's input normalisation to raw samples [..., C]."""
    mean = np.asarray(model.meta.input_mean, dtype=np.float64)
    std = np.asarray(model.meta.input_std, dtype=np.float64)
    return (np.asarray(x, dtype=np.float64) - mean) / std
