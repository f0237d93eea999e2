"""Structured pruning: remove whole hidden units from a trained model, fine-tune, repeat down to a unit count.

A unit of layer l is its rows in every gate of the layer (its weight_ih and weight_hh rows and biases), its
column in the layer's own recurrent weights and its column in what reads the layer: the next layer's input
weights, or the head. Removing it leaves an ordinary dense model of one hidden size fewer (all layers keep
one hidden size, as the integer contract requires), so every kernel, board and MicroPython path runs it
unchanged and ``tinylstm export`` / ``check`` / ``build`` treat it as any other model. A bidirectional
model's backward stack is pruned the same way, to the same unit count (its layers are listed after the forward
ones; the head reads its units in the second half of its columns).

Importance of unit j of layer l (``unit_importance``): mean |h_j| over the training split's valid steps times
the L2 norm of the weights that read h_j (its recurrent column and the column of the next layer or the
head), so a unit that is rarely active or whose output nobody reads weighs little. Each round removes up to
``step`` of the current units (the least important ones, per layer), then fine-tunes all weights with the
training recipe's one-cycle schedule for ``epochs`` epochs; rounds repeat until the target unit count.

Where the target comes from a budget (flash, RAM, latency on a board), the caller turns it into a unit count
(host/search/cost.py prices an architecture before training); the trainer never imports codegen or host.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tinylstm.contract.cells import cell_type
from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.batches import PaddedSplit
from tinylstm.trainer.data import Normalizer
from tinylstm.trainer.models import TinyRNN, reversed_steps
from tinylstm.trainer.recipe import DataShape, Recipe, choose
from tinylstm.trainer.sequence_set import SequenceSet
from tinylstm.trainer.train import TrainConfig, evaluate, run_epochs, seed_everything

IMPORTANCE_SEQUENCES = 512  # training sequences the activations are measured on (evenly spaced)
DEFAULT_STEP = 0.25  # the fraction of the current units one round removes at most


@dataclass
class PruneRound:
    hidden: int  # units per layer after the round
    removed: list[list[int]]  # per layer (backward layers after forward), the indices (in the round's model)
    before_finetune: float  # the training split's metric (accuracy or RMSE) right after removing them
    after_finetune: float
    seconds: float


@dataclass
class PruneResult:
    model: TinyRNN
    rounds: list[PruneRound] = field(default_factory=list)


def stacks(model: TinyRNN) -> list[nn.RNNBase]:
    """The model's recurrent stacks: the forward one, then a bidirectional model's backward one."""
    return [model.rnn] if model.rnn_backward is None else [model.rnn, model.rnn_backward]


def layer_outputs(model: TinyRNN, split: PaddedSplit) -> list[torch.Tensor]:
    """Each layer's h over ``split`` (padded steps zeroed): [N, T_steps, H] per layer, eval mode; a
    bidirectional model's backward layers (over each sequence's valid steps reversed) after the forward
    ones."""
    cell = cell_type(model.cell)
    k = model.stack
    x, lengths = split.x, split.lengths
    B, T, C = x.shape
    xs = x[:, : T // k * k].reshape(B, T // k, k * C)
    steps = torch.clamp(lengths // k, min=1)
    mask = (torch.arange(xs.shape[1])[None, :] < steps[:, None]).to(x.dtype)[:, :, None]
    outs = []
    with torch.no_grad():
        for rnn, h_in in zip(stacks(model), (xs, reversed_steps(xs, steps)), strict=False):
            h_in = h_in * mask
            for n in range(model.num_layers):
                one = cell.torch_class()(int(h_in.shape[2]), model.hidden_size, 1, batch_first=True)
                for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(one, f"{w}_l0").copy_(getattr(rnn, f"{w}_l{n}"))
                h_in = one(h_in)[0] * mask
                outs.append(h_in)
    return outs


def reader_weights(model: TinyRNN, layer: int) -> torch.Tensor:
    """[rows, H]: every weight that reads layer ``layer``'s h (its own recurrent weights and the next layer's
    input weights, or the head's columns for it). A bidirectional model's backward layers are numbered after
    the forward ones (``layer`` = num_layers + n)."""
    d, n = divmod(layer, model.num_layers)
    rnn, H = stacks(model)[d], model.hidden_size
    own = getattr(rnn, f"weight_hh_l{n}")
    nxt = (
        getattr(rnn, f"weight_ih_l{n + 1}")
        if n + 1 < model.num_layers
        else model.head.weight[:, d * H : (d + 1) * H]
    )
    return torch.cat([own, nxt], dim=0).detach()


def unit_importance(model: TinyRNN, split: PaddedSplit) -> list[np.ndarray]:
    """Per layer, each unit's mean |h| over the valid steps times the L2 norm of the weights reading it."""
    model.eval()
    outs = layer_outputs(model, split)
    k = model.stack
    valid = float(torch.clamp(split.lengths // k, min=1).sum())
    scores = []
    for n, h in enumerate(outs):
        activity = h.abs().sum(dim=(0, 1)) / valid
        norm = torch.linalg.vector_norm(reader_weights(model, n), dim=0)
        scores.append((activity * norm).double().numpy())
    return scores


def keep_units(model: TinyRNN, keep: list[np.ndarray]) -> TinyRNN:
    """A new model holding only units ``keep[l]`` (sorted indices, the same count in every layer) of each
    layer: the units' rows in every gate, their recurrent columns, their columns in the next layer or head. A
    bidirectional model's ``keep`` lists its backward layers after the forward ones."""
    sizes = {len(k) for k in keep}
    if len(keep) != model.num_layers * len(stacks(model)) or len(sizes) != 1 or min(sizes) < 1:
        raise TinyLSTMError("keep one non-empty, equally long list of unit indices per layer (and direction)")
    hidden = sizes.pop()
    old = model.hidden_size
    gates = cell_type(model.cell).gates
    out = TinyRNN(
        model.cell,
        model.input_size,
        hidden,
        model.num_layers,
        model.output_size,
        readout=model.readout,
        stack=model.stack,
        bidirectional=model.bidirectional,
    )
    L = model.num_layers
    index = [torch.as_tensor(np.sort(k), dtype=torch.int64) for k in keep]
    with torch.no_grad():
        for d, (src, dst) in enumerate(zip(stacks(model), stacks(out), strict=True)):
            own = index[d * L : (d + 1) * L]
            for n in range(L):
                rows = torch.cat([g * old + own[n] for g in range(gates)])
                w_ih = getattr(src, f"weight_ih_l{n}")[rows]
                if n > 0:
                    w_ih = w_ih[:, own[n - 1]]
                getattr(dst, f"weight_ih_l{n}").copy_(w_ih)
                getattr(dst, f"weight_hh_l{n}").copy_(getattr(src, f"weight_hh_l{n}")[rows][:, own[n]])
                for b in ("bias_ih", "bias_hh"):
                    getattr(dst, f"{b}_l{n}").copy_(getattr(src, f"{b}_l{n}")[rows])
        # the head's columns: each direction's last layer, the backward one's offset by the old hidden size
        columns = torch.cat([index[(d + 1) * L - 1] + d * old for d in range(len(stacks(model)))])
        out.head.weight.copy_(model.head.weight[:, columns])
        out.head.bias.copy_(model.head.bias)
    out.eval()
    return out


def schedule(start: int, target: int, step: float) -> list[int]:
    """The unit counts after each round: at most ``step`` of the current units removed per round (at least
    one), the last round landing on ``target``."""
    if not 0.0 < step < 1.0:
        raise TinyLSTMError(f"step={step}: give the fraction of units one round removes, in (0, 1)")
    counts, h = [], start
    while h > target:
        h = max(target, h - max(1, math.floor(h * step)))
        counts.append(h)
    return counts


def subsample(split: PaddedSplit, limit: int = IMPORTANCE_SEQUENCES) -> PaddedSplit:
    """Up to ``limit`` evenly spaced sequences of ``split``."""
    n = len(split)
    if n <= limit:
        return split
    idx = torch.as_tensor(np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64)))
    x, _, y = split.batch(idx)
    return PaddedSplit(x, split.lengths[idx], y, split.mode, split.classification)


def finetune_recipe(config: TrainConfig, train_set: SequenceSet, model: TinyRNN) -> Recipe:
    """The training recipe for ``config`` on ``train_set``, with the model's readout and stacking kept."""
    fixed = dataclasses.replace(config, readout=model.readout, stack=model.stack, select="last")
    return choose(fixed, DataShape.of(train_set))


def prune(
    model: TinyRNN,
    train_set: SequenceSet,
    norm: Normalizer,
    target_norm: Normalizer | None,
    target_hidden: int,
    config: TrainConfig,
    step: float = DEFAULT_STEP,
    log: Callable[[str], None] | None = None,
) -> PruneResult:
    """Prune ``model`` (trained on ``train_set``, normalised by ``norm``) to ``target_hidden`` units per layer
    in rounds (``schedule``), fine-tuning after each as ``config`` says (its ``epochs``: per round)."""
    if not 1 <= target_hidden < model.hidden_size:
        raise TinyLSTMError(
            f"target of {target_hidden} units: give 1 to {model.hidden_size - 1} (the model has "
            f"{model.hidden_size})"
        )
    train = PaddedSplit.build(train_set, norm, target_norm)
    probe = subsample(train)
    result = PruneResult(model)
    current = model
    for hidden in schedule(model.hidden_size, target_hidden, step):
        scores = unit_importance(current, probe)
        keep = [np.sort(np.argsort(-s, kind="stable")[:hidden]) for s in scores]
        removed = [sorted(set(range(current.hidden_size)) - set(k.tolist())) for k in keep]
        current = keep_units(current, keep)
        before = evaluate(current, train, target_norm).metric
        seed_everything(config.seed)
        recipe = finetune_recipe(config, train_set, current)
        _, _, seconds = run_epochs(
            current, current, train, None, target_norm, config, recipe, label="fine-tune"
        )
        current.eval()
        after = evaluate(current, train, target_norm).metric
        result.rounds.append(PruneRound(hidden, removed, before, after, round(seconds, 2)))
        if log is not None:
            log(
                f"  round {len(result.rounds)}: {hidden} units per layer; training-split metric {before:.4g} "
                f"after removing, {after:.4g} after {recipe.epochs} fine-tuning epochs ({seconds:.0f} s)"
            )
    result.model = current
    return result
