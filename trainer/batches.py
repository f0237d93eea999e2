"""Padded tensors for one split, and the selection of the outputs that the loss and metrics see."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tinylstm.trainer.data import Normalizer
from tinylstm.trainer.sequence_set import SequenceSet


@dataclass
class PaddedSplit:
    """A normalised split padded to [N, T_max, C]; ``y`` is [N] / [N, K] (window) or [N, T_max(, K)]
    (stream)."""

    x: torch.Tensor
    lengths: torch.Tensor
    y: torch.Tensor
    mode: str
    classification: bool

    @classmethod
    def build(cls, ds: SequenceSet, norm: Normalizer, target_norm: Normalizer | None) -> PaddedSplit:
        n, t_max = len(ds), max(s.shape[0] for s in ds.sequences)
        x = np.zeros((n, t_max, ds.num_channels), dtype=np.float32)
        lengths = np.asarray([s.shape[0] for s in ds.sequences], dtype=np.int64)
        for i, seq in enumerate(ds.sequences):
            x[i, : seq.shape[0]] = norm.apply(seq)
        classification = ds.task == "classification"
        if not classification and target_norm is None:
            raise ValueError("regression splits need a target normalizer")
        scale = (lambda v: v) if target_norm is None else target_norm.apply
        if ds.mode == "window":
            y = np.asarray(ds.labels).astype(np.int64) if classification else scale(np.asarray(ds.labels))
        else:
            tail = () if classification else (ds.output_size,)
            y = np.zeros((n, t_max, *tail), dtype=np.int64 if classification else np.float32)
            for i, lab in enumerate(ds.labels):
                y[i, : lab.shape[0]] = lab if classification else scale(lab)
        return cls(
            torch.from_numpy(x), torch.from_numpy(lengths), torch.from_numpy(y), ds.mode, classification
        )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Inputs cut to the batch's longest sequence, lengths (None when nothing is padded), targets."""
        lengths = self.lengths[index]
        t = int(lengths.max())
        x = self.x[index, :t]
        y = self.y[index] if self.mode == "window" else self.y[index, :t]
        return x, (None if bool((lengths == t).all()) else lengths), y


def select(
    outputs: torch.Tensor, lengths: torch.Tensor | None, targets: torch.Tensor, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten to the (prediction, target) pairs that count: the last valid step of each sequence
    in window mode, every valid step in stream mode. Padding never reaches the loss."""
    batch, steps = outputs.shape[0], outputs.shape[1]
    if lengths is None:
        lengths = torch.full((batch,), steps, dtype=torch.int64)
    if mode == "window":
        return outputs[torch.arange(batch), lengths - 1], targets
    mask = torch.arange(steps)[None, :] < lengths[:, None]
    return outputs[mask], targets[mask]
