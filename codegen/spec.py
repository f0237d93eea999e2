"""The float model codegen starts from: an RNN (LSTM or GRU, PyTorch layout) plus a dense head.

It is built from a TinyLSTM checkpoint or from a user's own ``nn.LSTM``/``nn.GRU`` +
``nn.Linear`` model (see ``codegen.source``), and carries the metadata the firmware
needs (task, classes, normalisation, window/stream mode).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tinylstm.contract.cells import CELLS, cell_type
from tinylstm.contract.constants import MAX_HIDDEN, MAX_INPUT, MAX_LAYERS, MAX_WINDOW
from tinylstm.contract.readouts import readout
from tinylstm.contract.stacking import check_stack, hold, stack_samples
from tinylstm.errors import TinyLSTMError

Cell = str  # a name in the cell registry (contract/cells.py): "lstm", "gru", "rnn"


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
    # what the head reads: the last h, or its mean / max over the window (contract/readouts.py)
    readout: str = "last"
    # samples per recurrent step (contract/stacking.py); layer 0 reads stack * input_size values
    stack: int = 1
    # a bidirectional window model's backward stack (docs/integer-contract.md, "Bidirectional window models"):
    # as many layers as ``layers``, run over the window's steps in reverse at its end; the head then reads
    # [forward readout ; backward readout] (2H). Empty: unidirectional.
    backward: list[FloatLayer] = field(default_factory=list)

    @property
    def bidirectional(self) -> bool:
        return bool(self.backward)

    @property
    def head_width(self) -> int:
        """What the head reads: H, or 2H for a bidirectional model."""
        return self.hidden_size * (2 if self.backward else 1)

    @property
    def input_size(self) -> int:
        """C, the channels of one sample (layer 0 is ``stack`` times as wide)."""
        return int(self.layers[0].w_ih.shape[1]) // self.stack

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
            f"supported: {' or '.join(c.upper() for c in CELLS)}, 1-{MAX_LAYERS} layers, hidden size "
            f"1-{MAX_HIDDEN}, "
            f"input size 1-{MAX_INPUT}, unidirectional (or a TinyLSTM bidirectional window model), no "
            "proj_size, one nn.Linear head"
        )
        if self.cell not in CELLS:
            raise TinyLSTMError(f"unknown cell type {self.cell!r}; {supported}")
        if not 1 <= self.num_layers <= MAX_LAYERS:
            raise TinyLSTMError(f"{self.num_layers} recurrent layers; {supported}")
        g, h = CELLS[self.cell].gates, self.hidden_size
        if not 1 <= h <= MAX_HIDDEN or not 1 <= self.input_size <= MAX_INPUT:
            raise TinyLSTMError(f"input size {self.input_size}, hidden size {h}; {supported}")
        check_stack(self.stack, self.input_size)
        if self.backward and len(self.backward) != self.num_layers:
            raise TinyLSTMError(
                f"{len(self.backward)} backward layers for {self.num_layers} forward layers: a bidirectional "
                "model has one backward layer per forward layer"
            )
        for n, layer in enumerate(self.layers + self.backward):
            width = self.input_size * self.stack if n % self.num_layers == 0 else h
            shapes = {
                "weight_ih": (layer.w_ih.shape, (g * h, width)),
                "weight_hh": (layer.w_hh.shape, (g * h, h)),
                "bias_ih": (layer.b_ih.shape, (g * h,)),
                "bias_hh": (layer.b_hh.shape, (g * h,)),
            }
            for name, (got, want) in shapes.items():
                if tuple(got) != want:
                    raise TinyLSTMError(
                        f"{_layer_name(n, self.num_layers)} {name} has shape {tuple(got)}, expected {want} "
                        f"for a {self.cell.upper()} with hidden size {h} (all layers must share one hidden "
                        f"size); {supported}"
                    )
        if self.head_w.shape != (self.output_size, self.head_width) or self.head_b.shape != (
            self.output_size,
        ):
            raise TinyLSTMError(
                f"head weight {self.head_w.shape} / bias {self.head_b.shape} do not match hidden size {h}"
                + (" (x 2 directions)" if self.backward else "")
            )
        arrays = [self.head_w, self.head_b] + [
            a for L in self.layers + self.backward for a in vars(L).values()
        ]
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise TinyLSTMError("the model has NaN or infinite weights: retrain it (lower the learning rate)")
        meta = self.meta
        pooled = readout(self.readout).pooled
        if pooled and meta.mode != "window":
            raise TinyLSTMError(
                f"readout {self.readout!r} pools over a window, but this is a {meta.mode}-mode model: "
                "use readout 'last' (or train on windows)"
            )
        if self.backward:
            check_bidirectional(meta, self.stack)
        if len(meta.input_mean) != self.input_size or len(meta.input_std) != self.input_size:
            raise TinyLSTMError(
                f"normalisation has {len(meta.input_mean)} means / {len(meta.input_std)} stds for "
                f"{self.input_size} input channels: give one mean and std per channel"
            )
        if (
            meta.task == "classification"
            and meta.classes is not None
            and len(meta.classes) != self.output_size
        ):
            raise TinyLSTMError(f"{len(meta.classes)} class names for {self.output_size} outputs")


def _layer_name(n: int, layers: int) -> str:
    return f"layer {n}" if n < layers else f"backward layer {n - layers}"


def check_bidirectional(meta: ModelMeta, stack: int) -> None:
    """Refuse a bidirectional model the board cannot run: it needs windows of one known length (it runs the
    backward direction at the window's end) of at least one recurrent step, and at most MAX_WINDOW samples."""
    if meta.mode != "window" or meta.task != "classification":
        raise TinyLSTMError(
            f"a bidirectional model classifies windows, but this is a {meta.mode}-mode {meta.task} model: "
            "train it without --bidirectional"
        )
    if not meta.window or not stack <= meta.window <= MAX_WINDOW:
        raise TinyLSTMError(
            f"a bidirectional model needs windows of one length, {stack}-{MAX_WINDOW} samples (the board "
            f"runs the backward direction at the window's end), not {meta.window}: cut fixed windows "
            "(--window) or train without --bidirectional"
        )


def _run_stack(
    cell_name: str,
    layers: list[FloatLayer],
    seq: np.ndarray,
    first: int,
    out: dict[str, np.ndarray],
    keep: Collection[str] | None,
) -> np.ndarray:
    """Run ``layers`` over the steps of ``seq`` [B, S, I] from a zero state; records each layer's h and the
    traces named in ``keep`` (None: all) in ``out`` under its index ``first + n``; returns the top layer's h
    [B, S, H]."""
    cell = cell_type(cell_name)
    B = seq.shape[0]
    for n, L in enumerate(layers):
        H = L.w_hh.shape[1]
        h, c = np.zeros((B, H)), np.zeros((B, H))
        hs: list[np.ndarray] = []
        traces: dict[str, list[np.ndarray]] = {}
        gx_all = seq @ L.w_ih.T + L.b_ih  # [B, steps, G*H]
        # exp(-v) of a pre-activation below -709 overflows to inf: the sigmoid is 0 there, no warning is due
        with np.errstate(over="ignore"):
            for t in range(seq.shape[1]):
                h, c, tr = cell.float_step(gx_all[:, t], h @ L.w_hh.T + L.b_hh, h, c)
                hs.append(h)
                for key, value in tr.items():
                    if keep is None or key in keep:
                        traces.setdefault(key, []).append(value)
        seq = np.stack(hs, axis=1) if hs else np.zeros((B, 0, H))
        out[f"h{first + n}"] = seq
        for key, values in traces.items():
            out[f"{key}{first + n}"] = np.stack(values, axis=1)
    return seq


def float_forward(
    model: FloatModel, x: np.ndarray, keep: Collection[str] | None = None
) -> dict[str, np.ndarray]:
    """Float reference of the model on normalised input ``x`` [B, T, C] (float64).

    Returns ``y`` [B, T, O] and, for calibration, per layer ``h{n}`` and the traces the cell's float step
    records (contract/cells.py): the gate pre-activations ``pre{n}`` [B, T, G*H], the cell state ``c{n}``
    (cells with one), the n gate's input and recurrent parts ``nx{n}``/``nh{n}`` (GRU). A stacked model runs
    its layers on ``T // stack`` steps, and every value is given per sample as the kernel holds it
    (contract/stacking.py). A bidirectional model runs each window of ``meta.window`` samples from a zero
    state; its backward layers' traces have the indices after the forward ones, in backward step order, and
    ``y`` is the head of zeros except at each complete window's last sample. ``keep``: the traces to record
    (``()``: none, only ``y`` and the h's; None: every one), which saves their memory and time.
    """
    B, T, _ = x.shape
    W = model.meta.window or T
    if model.backward and T > W:  # consecutive windows, each from a zero state (the board resets at each)
        parts = [float_forward(model, x[:, t : t + W], keep) for t in range(0, T, W)]
        return {key: np.concatenate([p[key] for p in parts if key in p], axis=1) for key in parts[0]}
    out: dict[str, np.ndarray] = {}
    steps = stack_samples(x.astype(np.float64), model.stack)
    pool = readout(model.readout).float_pool
    seq = _run_stack(model.cell, model.layers, steps, 0, out, keep)
    if model.backward:
        # the head reads zeros (its bias) until the window's last sample, then [v_f ; v_b]
        out["y"] = np.broadcast_to(model.head_b, (B, T, model.output_size)).copy()
        if T == W and seq.shape[1]:
            back = _run_stack(model.cell, model.backward, steps[:, ::-1], model.num_layers, out, keep)
            v = np.concatenate([pool(seq)[:, -1], pool(back)[:, -1]], axis=1)
            out["y"][:, -1] = v @ model.head_w.T + model.head_b
    else:
        out["y"] = pool(seq) @ model.head_w.T + model.head_b
    if model.stack > 1:
        held = {key: v for key, v in out.items() if key != "y" and v.shape[1] == steps.shape[1]}
        out.update({key: hold(v, T, model.stack) for key, v in held.items()})
        if not model.backward:
            out["y"] = hold(out["y"], T, model.stack, model.head_b)
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
