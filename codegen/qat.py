"""Quantization-aware fine-tuning: the forward pass of the integer contract, in float, with
straight-through gradients (docs/training.md, "Quantization-aware fine-tuning").

``FakeQuantRNN`` runs a TinyRNN the way the C kernel will run its export: int8 input at the
calibrated input scale and zero point, per-row int8 weights with the two part scales a power of two apart
(``codegen/quantize.py``), the bias on the accumulator grid, Q3.12 pre-activations saturated to
int16, sigmoid and tanh from the kernel's 257-entry table with its linear interpolation and
Q0.15 outputs, the int16 cell state with its calibrated fractional bits and saturation, the int8
Q0.7 (or int16 Q0.15, ``train --qat-hidden-bits 16``) hidden state and the int16 output. Every
rounding is ``round`` (or ``floor`` where the kernel shifts right without rounding) with the
identity as its gradient; saturations pass no gradient outside their range.

The scales that come from calibration (input, cell state, output) are taken from ``calibrated_model`` of
the current float weights on the training split, exactly as ``tinylstm export`` computes them, and
refreshed at the start of every epoch (``ranges_for``). After fine-tuning the checkpoint holds float
weights; ``tinylstm export`` calibrates and quantizes them as usual, and the integer model is checked
bit-exact like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tinylstm.codegen.input_range import AUTO_INPUT_BITS, InputChoice, auto_input_model, calibrated_model
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.source import from_rnn, model_meta
from tinylstm.codegen.spec import FloatModel, ModelMeta, by_length, normalise
from tinylstm.contract import qmath
from tinylstm.contract.cells import CELLS, cell_type
from tinylstm.contract.constants import (
    HIDDEN_BITS,
    HIDDEN_FORMATS,
    MAX_SCALE_EXP,
    Q12,
    Q15,
    TABLE_SEGMENT_BITS,
    input_bits,
    input_qmax,
)
from tinylstm.contract.readouts import readout as readout_type
from tinylstm.contract.stacking import held_steps
from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.models import TinyRNN, pool
from tinylstm.trainer.recipe import DEFAULT_PATIENCE, Recipe
from tinylstm.trainer.sequence_set import SequenceSet
from tinylstm.trainer.train import FinetuneRun, evaluate, run_epochs, seed_everything

TABLE_STEPS = 1 << (Q12 - TABLE_SEGMENT_BITS)  # table entries per unit of input: 16
TABLE_ORIGIN = 8.0  # the table starts at x = -8


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """x rounded half up (the kernel's (x + 2^(n-1)) >> n) forward, identity backward."""
    return x + (torch.floor(x + 0.5) - x).detach()


def ste_floor(x: torch.Tensor) -> torch.Tensor:
    """floor(x) forward (an arithmetic right shift), identity backward."""
    return x + (torch.floor(x) - x).detach()


def fake_quant(x: torch.Tensor, scale: float | torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """x on the grid of ``scale``, saturated to the integers [lo, hi]."""
    return torch.clamp(ste_round(x / scale), lo, hi) * scale


def q12(x: torch.Tensor) -> torch.Tensor:
    """A gate pre-activation: int16 Q3.12 (sat16 of the requantized accumulator)."""
    return fake_quant(x, 2.0**-Q12, -32768, 32767)


@dataclass(frozen=True)
class Ranges:
    """The calibrated scales of the integer model the weights export to."""

    input_scale: float  # one input LSB (int8, or int16: input_bits), in normalised units
    cell_frac: tuple[int, ...]  # fractional bits of each layer's int16 cell state (cells with one)
    output_scale: float  # one int16 output LSB
    hidden_bits: int = HIDDEN_BITS  # the hidden state: int8 Q0.7 or int16 Q0.15
    # the input word; None: the hidden state's own (int8 for an int8 h); 16 with an int8 h: an int16 input
    # (export --input-bits 16)
    input_bits: int | None = None
    # an int8 input's zero point per channel, in input LSBs (Calibration.input_zero; empty: 0)
    input_zero: tuple[int, ...] = ()

    @property
    def input_qmax(self) -> int:
        """The largest input word."""
        return input_qmax(self.input_bits or input_bits(self.hidden_bits))

    @property
    def s_h(self) -> float:
        """One LSB of the hidden state."""
        return 2.0 ** -HIDDEN_FORMATS[self.hidden_bits]


def fake_h(v: torch.Tensor, bits: int) -> torch.Tensor:
    """A hidden-state word: v on the Q0.7 (int8) or Q0.15 (int16) grid, saturated."""
    lim = 1 << (bits - 1)
    return fake_quant(v, 2.0 ** -HIDDEN_FORMATS[bits], -lim, lim - 1)


def ranges_for(
    model: TinyRNN,
    meta: ModelMeta,
    train: SequenceSet,
    hidden_bits: int = HIDDEN_BITS,
    input_bits: int | None = None,
) -> Ranges:
    """The scales ``tinylstm export --hidden-bits <hidden_bits> --input-bits <input_bits>`` would calibrate
    for ``model`` now (codegen/export.py)."""
    fm, sequences = _as_exported(model, meta, train)
    return ranges_of(calibrated_model(fm, sequences, hidden_bits, input_bits)[0])


def first_ranges(
    model: TinyRNN, meta: ModelMeta, train: SequenceSet, hidden_bits: int, input_bits: int | None
) -> tuple[Ranges, InputChoice | None]:
    """The scales fine-tuning starts from (``ranges_for``'s) and, with ``input_bits`` left out, the input
    ``tinylstm export --input-bits auto`` would give ``model`` now and why: an int16-h model's own, or on an
    int8 h what codegen/input_range.py ``auto_input_model`` measures, from the same calibration as the scales.
    The choice is None where ``input_bits`` is given."""
    from tinylstm.codegen.export import given_input_bits

    if input_bits is not None:
        return ranges_for(model, meta, train, hidden_bits, input_bits), None
    settled, why = given_input_bits(None, hidden_bits, AUTO_INPUT_BITS)
    if settled is not None:
        choice = InputChoice(settled, None, None, why)
        return ranges_for(model, meta, train, hidden_bits, settled), choice
    m, _, _, measured = auto_input_model(*_as_exported(model, meta, train))
    return ranges_of(m), measured


def _as_exported(model: TinyRNN, meta: ModelMeta, train: SequenceSet) -> tuple[FloatModel, list[np.ndarray]]:
    """``model`` as export reads it now: its float model and the calibration sequences of ``train``."""
    from tinylstm.codegen.export import calibration_sequences

    fm = from_rnn(model.rnn, model.head, meta, model.readout, model.stack)
    return fm, calibration_sequences(fm, train)


class Table:
    """The kernel's tanh table (contract/qmath.py) and the two activations read from it."""

    def __init__(self) -> None:
        self.values = torch.from_numpy(qmath.make_tanh_table().astype(np.float32) / 32768.0)
        self.slopes = self.values[1:] - self.values[:-1]  # entry k+1 - entry k: one gather less per call

    def tanh(self, v: torch.Tensor) -> torch.Tensor:
        """tanh of a Q3.12 value by linear interpolation between entries, Q0.15 result."""
        u = (v + TABLE_ORIGIN) * TABLE_STEPS
        idx = torch.floor(u).detach().clamp(0, len(self.values) - 2).long()
        return ste_round((self.values[idx] + self.slopes[idx] * (u - idx)) * 32768.0) / 32768.0

    def sigmoid(self, v: torch.Tensor) -> torch.Tensor:
        """(1 + tanh(v >> 1)) >> 1, as tl_sigmoid_q15."""
        half = ste_floor(v * (2.0 ** (Q12 - 1))) / 2.0**Q12
        return ste_floor((self.tanh(half) + 1.0) * 2.0 ** (Q15 - 1)) / 2.0**Q15


@dataclass
class LayerParams:
    """One layer's fake-quantized weights: x part and h part of every row, biases in real units."""

    w_ih: torch.Tensor  # [G*H, I]
    w_hh: torch.Tensor  # [G*H, H]
    bias: torch.Tensor  # [G*H] (the last gate's input-side bias for cells with bias_hn)
    bias_hn: torch.Tensor | None  # [H]
    hidden_bits: int  # the hidden state's word (fake_h)


def _quant_layer(
    cell: str,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    s_in: float,
    hidden_bits: int,
) -> LayerParams:
    """codegen/quantize.py's ``_quantize_gate_rows`` and ``_bias``, with straight-through rounding;
    ``s_in`` is the scale of the layer's input (the model input's, or the h below's)."""
    ct = cell_type(cell)
    S_H = 2.0 ** -HIDDEN_FORMATS[hidden_bits]
    wx = w_ih * (s_in / S_H)  # the x part at the h part's scale
    ax, ah = wx.detach().abs().amax(dim=1), w_hh.detach().abs().amax(dim=1)
    both = (ax > 0) & (ah > 0)
    ratio = torch.where(
        both, torch.log2(torch.where(both, ax / ah, torch.ones_like(ax))), torch.zeros_like(ax)
    )
    e = torch.clamp(torch.ceil(ratio), -MAX_SCALE_EXP, MAX_SCALE_EXP)
    sx_rel, sh_rel = 2.0 ** torch.clamp(e, min=0), 2.0 ** torch.clamp(-e, min=0)
    absmax = torch.maximum(ax / sx_rel, ah / sh_rel)
    s_c = torch.where(absmax > 0, absmax / 127.0, torch.ones_like(absmax))
    qx = torch.clamp(ste_round(wx / (s_c * sx_rel)[:, None]), -127, 127)
    qh = torch.clamp(ste_round(w_hh / (s_c * sh_rel)[:, None]), -127, 127)
    acc = s_c * S_H  # one accumulator step, per row
    w_ih_q = qx * (s_c * sx_rel)[:, None] * (S_H / s_in)
    w_hh_q = qh * (s_c * sh_rel)[:, None]
    bias = b_ih + b_hh
    bias_hn = None
    if ct.bias_hn:
        H = w_hh.shape[1]
        last = ct.gate_rows(H, ct.gates - 1)
        bias = torch.cat([bias[: last.start], b_ih[last]])
        bias_hn = ste_round(b_hh[last] / acc[last]) * acc[last]
    return LayerParams(w_ih_q, w_hh_q, ste_round(bias / acc) * acc, bias_hn, hidden_bits)


# One fake-quantized step per cell: (params, table, gx = x part of every row, gh = h part, h, c, cell_frac)
# -> (h', c'), mirroring the cell's int_step in contract/cells.py.
QatStep = Callable[
    [LayerParams, Table, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int],
    tuple[torch.Tensor, torch.Tensor],
]


def _lstm_step(
    p: LayerParams, t: Table, gx: torch.Tensor, gh: torch.Tensor, h: torch.Tensor, c: torch.Tensor, F: int
) -> tuple[torch.Tensor, torch.Tensor]:
    H = h.shape[1]
    pre = q12(gx + gh + p.bias)
    gates = t.sigmoid(pre)  # one call for i, f and o (elementwise: the g rows' values go unused)
    i, f, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 3 * H :]
    g = t.tanh(pre[:, 2 * H : 3 * H])
    c_new = fake_quant(f * c + i * g, 2.0**-F, -32768, 32767)
    c12 = fake_quant(c_new, 2.0**-Q12, -32768, 32767) if F > Q12 else torch.clamp(c_new, -8.0, 32767 / 4096)
    return fake_h(o * t.tanh(c12), p.hidden_bits), c_new


def _gru_step(
    p: LayerParams, t: Table, gx: torch.Tensor, gh: torch.Tensor, h: torch.Tensor, c: torch.Tensor, F: int
) -> tuple[torch.Tensor, torch.Tensor]:
    H = h.shape[1]
    assert p.bias_hn is not None
    rz = q12(gx[:, : 2 * H] + gh[:, : 2 * H] + p.bias[: 2 * H])
    rz = t.sigmoid(rz)
    r, z = rz[:, :H], rz[:, H:]
    nx = q12(gx[:, 2 * H :] + p.bias[2 * H :])
    nh = q12(gh[:, 2 * H :] + p.bias_hn)
    n = t.tanh(torch.clamp(nx + fake_quant(r * nh, 2.0**-Q12, -(1 << 20), 1 << 20), -8.0, 32767 / 4096))
    h_new = n + fake_quant(z * (h - n), 2.0**-Q15, -(1 << 20), 1 << 20)
    return fake_h(h_new, p.hidden_bits), c


def _rnn_step(
    p: LayerParams, t: Table, gx: torch.Tensor, gh: torch.Tensor, h: torch.Tensor, c: torch.Tensor, F: int
) -> tuple[torch.Tensor, torch.Tensor]:
    return fake_h(t.tanh(q12(gx + gh + p.bias)), p.hidden_bits), c


QAT_STEPS: dict[str, QatStep] = {"lstm": _lstm_step, "gru": _gru_step, "rnn": _rnn_step}
if set(QAT_STEPS) != set(CELLS):
    raise ImportError(
        f"codegen/qat.py has steps for {sorted(QAT_STEPS)}, contract/cells.py has {sorted(CELLS)}"
    )


class FakeQuantRNN(nn.Module):
    """``model`` run through the integer contract in float; its parameters are ``model``'s."""

    def __init__(self, model: TinyRNN, ranges: Ranges) -> None:
        super().__init__()
        self.model = model
        self.ranges = ranges
        self.table = Table()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, input] (normalised) -> outputs [B, T, output]. Padded steps (``lengths``) only
        reach padded outputs: the recurrence is causal, and the caller masks them."""
        rnn, head, r = self.model.rnn, self.model.head, self.ranges
        step = QAT_STEPS[self.model.cell]
        B, T, C = x.shape
        K = self.model.stack  # samples per step (contract/stacking.py)
        top = r.input_qmax  # the model input: int8, or int16 (int16-h, or an int16 input)
        # the word is the input on the scale's grid minus the zero point, saturated (codegen/quantize.py)
        zero = x.new_tensor(r.input_zero or [0] * C) * r.input_scale
        seq = fake_quant(x[:, : T // K * K] - zero, r.input_scale, -top - 1, top) + zero
        seq = seq.reshape(B, T // K, K * C)
        s_in = r.input_scale
        H = self.model.hidden_size
        for n in range(self.model.num_layers):
            w_ih, w_hh, b_ih, b_hh = (
                getattr(rnn, f"{w}_l{n}") for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            )
            p = _quant_layer(self.model.cell, w_ih, w_hh, b_ih, b_hh, s_in, r.hidden_bits)
            F = r.cell_frac[n] if n < len(r.cell_frac) else 0
            gx_all = seq @ p.w_ih.T  # [B, steps, G*H]
            h = x.new_zeros(B, H)
            c = x.new_zeros(B, H)
            hs = []
            for k in range(gx_all.shape[1]):
                h, c = step(p, self.table, gx_all[:, k], h @ p.w_hh.T, h, c, F)
                hs.append(h)
            seq = torch.stack(hs, dim=1) if hs else x.new_zeros(B, 0, H)
            s_in = r.s_h
        op = readout_type(self.model.readout).torch_op
        seq = pool(seq, op)
        if op == "cummean":  # the kernel's floor(S / n + 1/2) on the hidden grid (contract/readouts.py)
            seq = ste_floor(seq / r.s_h + 0.5) * r.s_h
        absmax = head.weight.detach().abs().amax(dim=1)
        s_w = torch.where(absmax > 0, absmax / 127.0, torch.ones_like(absmax))
        w = torch.clamp(ste_round(head.weight / s_w[:, None]), -127, 127) * s_w[:, None]
        b = ste_round(head.bias / (s_w * r.s_h)) * (s_w * r.s_h)
        y = fake_quant(seq @ w.T + b, r.output_scale, -32768, 32767)
        if K == 1:
            return y
        first = fake_quant(b, r.output_scale, -32768, 32767).expand(B, 1, -1)  # the head of zeros
        return torch.cat([first, y], dim=1)[:, torch.as_tensor(held_steps(T, K), device=x.device)]


def ranges_of(m: IntModel) -> Ranges:
    """The scales an exported integer model was quantized with."""
    return Ranges(
        m.input_scale,
        tuple(L.cell_frac for L in m.layers),
        m.output_scale,
        m.hidden_bits,
        m.input_bits if m.input16 else None,
        tuple(m.calibration.input_zero),
    )


def tiny_rnn_of(fm: FloatModel) -> TinyRNN:
    """A TinyRNN holding the float model's weights (the export's stored float model)."""
    model = TinyRNN(
        fm.cell,
        fm.input_size,
        fm.hidden_size,
        fm.num_layers,
        fm.output_size,
        readout=fm.readout,
        stack=fm.stack,
    )
    with torch.no_grad():
        for n, L in enumerate(fm.layers):
            for name, value in zip(
                ("weight_ih", "weight_hh", "bias_ih", "bias_hh"), vars(L).values(), strict=True
            ):
                getattr(model.rnn, f"{name}_l{n}").copy_(torch.from_numpy(np.asarray(value)))
        model.head.weight.copy_(torch.from_numpy(np.asarray(fm.head_w)))
        model.head.bias.copy_(torch.from_numpy(np.asarray(fm.head_b)))
    return model.eval()


def fake_quant_outputs(
    fm: FloatModel,
    m: IntModel,
    sequences: list[np.ndarray],
    double: bool = False,
    ranges: Ranges | None = None,
) -> list[np.ndarray]:
    """The fake-quantized forward of ``fm`` at ``m``'s scales on raw sequences [T, C]: int16 outputs
    (in output LSBs) per sequence, what a QAT-trained model was fine-tuned to produce. ``double``: in float64
    instead of training's float32, whose roundings an int16 h can carry for many steps. ``ranges``: other
    scales than ``m``'s (a what-if such as ``Ranges.input_bits``; the outputs stay in ``m``'s LSBs)."""
    net = FakeQuantRNN(
        tiny_rnn_of(fm).double() if double else tiny_rnn_of(fm),
        ranges if ranges is not None else ranges_of(m),
    )
    out: list[np.ndarray] = [np.empty(0)] * len(sequences)
    with torch.no_grad():
        for idx in by_length(sequences).values():
            x = torch.from_numpy(
                np.stack([normalise(fm, sequences[k]) for k in idx]).astype(
                    np.float64 if double else np.float32
                )
            )
            y = np.round(net(x).numpy().astype(np.float64) / m.output_scale).astype(np.int64)
            for j, k in enumerate(idx):
                out[k] = y[j]
    return out


def finetune(run: FinetuneRun) -> dict[str, Any]:
    """Fine-tune ``run.model`` through the integer contract (``FakeQuantRNN``), keeping its float weights when
    no epoch lowers the validation loss through the contract; extends ``run.history``, returns what the
    metrics record of it: the float and fake-quantized scores before and after. The trainer's stage for
    ``TrainConfig.qat_epochs`` (``fit(..., finetune=finetune)``)."""
    model, splits, config, recipe = run.model, run.splits, run.config, run.recipe
    if model.bidirectional:  # the trainer refuses it first (trainer/train.py _check_config)
        raise TinyLSTMError("quantization-aware training of a bidirectional model is not built yet")
    bits, in_bits = config.qat_hidden_bits, config.qat_input_bits
    mm = model_meta(run.meta)
    # --qat-input-bits left out: the input the export would choose for the float model, which the export then
    # keeps (codegen/export.py given_input_bits)
    ranges, choice = first_ranges(model, mm, run.train_set, bits, in_bits)
    in_bits = choice.input_bits if choice else in_bits
    net = FakeQuantRNN(model, ranges)

    def scores_of(m: nn.Module) -> dict[str, float]:
        return {name: evaluate(m, d, run.target_norm).metric for name, d in splits.items() if d is not None}

    before = {"float": scores_of(model), "fake_quant": scores_of(net)}

    def refresh() -> None:
        net.ranges = ranges_for(model, mm, run.train_set, bits, in_bits)

    seed_everything(config.seed + 1)
    assert splits["train"] is not None and splits["val"] is not None
    lr = config.qat_learning_rate
    # fine-tuning: a constant small learning rate, the best validation epoch, and the float training's
    # regularisation (weight decay, augmentation): without it the fine-tuning fits the training split's
    # integer outputs and loses held-out series that post-training quantization keeps (docs/training.md)
    qat_recipe = Recipe(
        batch_size=recipe.batch_size,
        epochs=config.qat_epochs,
        lr=lr,
        schedule="constant",
        weight_decay=recipe.weight_decay,
        label_smoothing=recipe.label_smoothing,
        augment=recipe.augment,
        select="best",
        patience=recipe.patience or DEFAULT_PATIENCE,
        readout=recipe.readout,
        stack=recipe.stack,
    )
    history = run.history
    first = len(history["train_loss"]) + 1
    qat_history, best_epoch, seconds = run_epochs(
        net, model, splits["train"], splits["val"], run.target_norm, config, qat_recipe, "qat", refresh, True
    )
    for key, values in qat_history.items():
        history[key] += values
    refresh()
    return {
        "epochs": config.qat_epochs,
        "hidden_bits": bits,
        "input_bits": net.ranges.input_bits or input_bits(bits),
        "input_choice": choice.reason if choice else "given",
        "epochs_run": len(qat_history["train_loss"]),
        "best_epoch": best_epoch,
        "first_epoch": first,
        "lr": lr,
        "weight_decay": qat_recipe.weight_decay,
        "augment": qat_recipe.augment.describe(),
        "seconds": round(seconds, 2),
        "metric": "accuracy" if splits["train"].classification else "rmse",
        "before": before,
        "after": {"float": scores_of(model), "fake_quant": scores_of(net)},
    }
