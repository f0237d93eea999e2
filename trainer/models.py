"""TinyRNN: one recurrent stack (a cell of contract/cells.py: LSTM or GRU) plus a linear head applied at every
step (as the C kernel does). The sizes it accepts are the kernel's (contract/constants.py)."""

from __future__ import annotations

import torch
from torch import nn

from tinylstm.contract.cells import CELLS, cell_type
from tinylstm.contract.constants import MAX_HIDDEN, MAX_LAYERS
from tinylstm.contract.readouts import readout as readout_type
from tinylstm.contract.stacking import check_stack, held_steps
from tinylstm.errors import TinyLSTMError

Cell = str  # a name in the cell registry
HIDDEN_RANGE = (1, MAX_HIDDEN)
LAYERS_RANGE = (1, MAX_LAYERS)


def check_sizes(cell: str, input_size: int, hidden_size: int, num_layers: int, output_size: int) -> None:
    """Raise TinyLSTMError when a size is outside what the integer kernel supports."""
    if cell not in CELLS:
        raise TinyLSTMError(f"cell {cell!r} is not supported; use one of {', '.join(CELLS)}")
    if not HIDDEN_RANGE[0] <= hidden_size <= HIDDEN_RANGE[1]:
        raise TinyLSTMError(
            f"hidden size {hidden_size} is out of range; use {HIDDEN_RANGE[0]}..{HIDDEN_RANGE[1]}"
        )
    if not LAYERS_RANGE[0] <= num_layers <= LAYERS_RANGE[1]:
        raise TinyLSTMError(f"{num_layers} layers is out of range; use {LAYERS_RANGE[0]}..{LAYERS_RANGE[1]}")
    if input_size < 1 or output_size < 1:
        raise TinyLSTMError(f"input size {input_size} and output size {output_size} must be >= 1")


class TinyRNN(nn.Module):
    """``rnn`` (the cell's PyTorch module, nn.LSTM/nn.GRU: batch_first, unidirectional, no projection) +
    ``head`` (nn.Linear)."""

    def __init__(
        self,
        cell: Cell,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        output_size: int,
        dropout: float = 0.0,
        readout: str = "last",
        stack: int = 1,
        bidirectional: bool = False,
    ) -> None:
        """``dropout``: PyTorch's dropout between stacked layers while training (no effect with one
        layer, none in eval mode or on the exported model). ``readout``: what the head reads at each step
        (contract/readouts.py): the last layer's h, or its running mean or maximum since the sequence start.
        ``stack``: samples per recurrent step (contract/stacking.py); the RNN's input is
        ``stack * input_size`` wide. ``bidirectional``: a window classifier with a second stack,
        ``rnn_backward``, run over each window's steps in reverse; the head reads both readouts
        (docs/integer-contract.md, "Bidirectional window models")."""
        super().__init__()
        check_sizes(cell, input_size, hidden_size, num_layers, output_size)
        check_stack(stack, input_size)
        self.cell: Cell = cell
        self.readout = readout_type(readout).name
        self.stack = stack

        def stack_module() -> nn.RNNBase:
            module: nn.RNNBase = cell_type(cell).torch_class()(
                input_size * stack,
                hidden_size,
                num_layers=num_layers,
                batch_first=True,
                dropout=dropout if num_layers > 1 else 0.0,
            )
            return module

        self.rnn = stack_module()
        self.rnn_backward = stack_module() if bidirectional else None
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), output_size)

    @property
    def input_size(self) -> int:
        """C, the channels of one sample."""
        return int(self.rnn.input_size) // self.stack

    @property
    def hidden_size(self) -> int:
        return int(self.rnn.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self.rnn.num_layers)

    @property
    def output_size(self) -> int:
        return int(self.head.out_features)

    @property
    def bidirectional(self) -> bool:
        return self.rnn_backward is not None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, input] -> outputs [B, T, output], starting from a zero state.

        ``lengths`` (None: no padding) are the valid samples of each right-padded sequence. The stack runs
        over the padded batch as one tensor: a unidirectional recurrence is causal, so the padding after a
        sequence's last valid step never reaches its valid steps' outputs, which equal those of a packed
        run (tests/test_trainer_model.py). Outputs at padded steps are not the board's and must be masked by
        the caller. (Packing would spare the padded steps' arithmetic, but its per-step batch slicing runs
        torch's recurrence step by step: ~15x slower on CPU at hidden 32 than the fused whole-tensor
        kernel.)
        A stacked model runs on ``T // stack`` steps and gives each sample the output the kernel holds there
        (contract/stacking.py): the last completed step's, or the head of zeros before the first.
        """
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise TinyLSTMError(f"model input must be [batch, time, {self.input_size}], got {list(x.shape)}")
        B, T, C = x.shape
        k = self.stack
        xs = x[:, : T // k * k].reshape(B, T // k, k * C)
        hidden = self._run(self.rnn, xs)
        op = readout_type(self.readout).torch_op
        if self.rnn_backward is not None:
            return self._bidirectional(x, xs, lengths, pool(hidden, op))
        y = self.head(pool(hidden, op))
        if k == 1:
            return y
        first = self.head(x.new_zeros(B, 1, self.hidden_size))
        index = torch.as_tensor(held_steps(T, k), device=x.device)
        return torch.cat([first, y], dim=1)[:, index]

    def _run(self, rnn: nn.RNNBase, xs: torch.Tensor) -> torch.Tensor:
        """``rnn`` over ``xs`` [B, S, k*C] from a zero state -> h [B, S, H]."""
        if xs.shape[1] == 0:  # no whole step: every output is the head of zeros
            return xs.new_zeros(xs.shape[0], 0, self.hidden_size)
        return rnn(xs)[0]

    def _bidirectional(
        self,
        x: torch.Tensor,
        xs: torch.Tensor,
        lengths: torch.Tensor | None,
        forward: torch.Tensor,
    ) -> torch.Tensor:
        """A bidirectional window model's outputs, as the board gives them: the head of zeros at every sample
        but each window's last (``lengths`` - 1), where it reads [the forward readout ; the readout of the
        backward stack run over the window's valid steps in reverse]."""
        assert self.rnn_backward is not None
        B, T, _ = x.shape
        # each window's whole steps; a window shorter than one step still counts one (its outputs are all
        # held, never read)
        if lengths is None:
            valid = torch.full((B,), xs.shape[1], dtype=torch.int64)
        else:
            valid = torch.clamp(lengths.cpu() // self.stack, min=1)
        last = (valid - 1).clamp(min=0).to(x.device)
        reverse = reversed_steps(xs, valid)
        backward = pool(self._run(self.rnn_backward, reverse), readout_type(self.readout).torch_op)
        rows = torch.arange(B, device=x.device)
        answer = self.head(torch.cat([forward[rows, last], backward[rows, last]], dim=1))  # [B, O]
        end = torch.full((B,), T - 1, device=x.device) if lengths is None else lengths.to(x.device) - 1
        at_end = (torch.arange(T, device=x.device)[None, :] == end[:, None])[:, :, None]
        blank = self.head(x.new_zeros(1, 1, 2 * self.hidden_size))
        return torch.where(at_end, answer[:, None, :], blank)


def reversed_steps(xs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``xs`` [B, S, F] with each sequence's first ``valid`` steps in reverse order (what the backward stack
    reads); the padding past them stays in place."""
    t = torch.arange(xs.shape[1], device=xs.device)[None, :]
    valid = valid.to(xs.device)[:, None]
    order = torch.where(t < valid, (valid - 1).clamp(min=0) - t, t)
    return torch.gather(xs, 1, order[:, :, None].expand_as(xs))


def pool(hidden: torch.Tensor, op: str) -> torch.Tensor:
    """What the head reads at each step of ``hidden`` [B, T, H] (contract/readouts.py): h itself ("none"), its
    running mean ("cummean") or running maximum ("cummax") from the first step. Padding lies after a
    sequence's last valid step, so it never enters the valid steps' values."""
    if op == "cummean":
        steps = torch.arange(1, hidden.shape[1] + 1, dtype=hidden.dtype, device=hidden.device)
        return hidden.cumsum(dim=1) / steps[None, :, None]
    if op == "cummax":
        return hidden.cummax(dim=1).values
    return hidden


def TinyLSTM(input_size: int, hidden_size: int, num_layers: int, output_size: int) -> TinyRNN:
    """A TinyRNN with an LSTM cell."""
    return TinyRNN("lstm", input_size, hidden_size, num_layers, output_size)


def TinyGRU(input_size: int, hidden_size: int, num_layers: int, output_size: int) -> TinyRNN:
    """A TinyRNN with a GRU cell."""
    return TinyRNN("gru", input_size, hidden_size, num_layers, output_size)
