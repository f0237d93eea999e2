"""Input stacking: k consecutive samples enter layer 0 as one recurrent step of k * C values.

A stacked model (``stack`` k > 1) runs its layers once every k samples since the reset, on the last k samples
side by side (sample-major: step s reads samples s*k .. s*k + k - 1, each its C channels). At every sample the
head reads the readout of the last completed step, so each sample still has an output: the outputs of the k-1
samples between two steps repeat the last step's, and before the first step the head reads zeros (its bias).
Trailing samples that do not fill a step are never run. This cuts the recurrence, and the board's work, k-fold
on long or high-rate series; docs/integer-contract.md, "Input stacking", states the rule, and every reference
(float, golden, C, MicroPython, the trainer) holds outputs the same way through :func:`held_steps`.
"""

from __future__ import annotations

import numpy as np

from tinylstm.contract.constants import HIDDEN16_BITS, HIDDEN_BITS, MAX_INPUT, MAX_INPUT16, MAX_STACK
from tinylstm.errors import TinyLSTMError


def check_stack(stack: int, inputs: int, hidden_bits: int = HIDDEN_BITS, input16: bool = False) -> None:
    """Refuse a stack factor the kernel cannot run, in one line that says what fits (an int16 input's layer 0,
    an int16-h model's or ``input16``, reads at most MAX_INPUT16 values per step)."""
    if not 1 <= stack <= MAX_STACK:
        raise TinyLSTMError(f"input stacking of {stack} samples per step: use 1 (none) to {MAX_STACK}")
    wide = hidden_bits == HIDDEN16_BITS or input16
    limit, whose = (MAX_INPUT16, "an int16 input's") if wide else (MAX_INPUT, "the kernel's")
    if stack * inputs > limit:
        raise TinyLSTMError(
            f"stacking {stack} samples of {inputs} channels makes a {stack * inputs}-value step, more than "
            f"{whose} {limit}: use --stack {max(limit // max(inputs, 1), 1)} or less"
            + (" (or an int8 hidden state and input)" if wide else "")
        )


def held_steps(samples: int, stack: int) -> np.ndarray:
    """For each sample t < ``samples``, the number of recurrent steps completed by then, (t + 1) // k: the
    output at sample t is that step's (index s - 1), or the head of a zero readout when it is 0."""
    return (np.arange(samples) + 1) // stack


def stack_samples(x: np.ndarray, stack: int) -> np.ndarray:
    """[B, T, C] -> [B, T // k, k * C]: each step's samples side by side; a trailing part step is dropped."""
    B, T, C = x.shape
    steps = T // stack
    return x[:, : steps * stack].reshape(B, steps, stack * C)


def hold(per_step: np.ndarray, samples: int, stack: int, before: np.ndarray | None = None) -> np.ndarray:
    """Per-step values [B, S, ...] -> per-sample [B, samples, ...] as the kernel gives them: each sample takes
    the last completed step's value, and samples before the first step take ``before`` (default zeros)."""
    shape = (per_step.shape[0], 1, *per_step.shape[2:])
    first = np.zeros(shape, per_step.dtype) if before is None else np.broadcast_to(before, shape)
    return np.concatenate([first, per_step], axis=1)[:, held_steps(samples, stack)]
