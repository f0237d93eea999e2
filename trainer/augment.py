"""Augmentation of sensor series while training: amplitude scaling, offset, jitter and time shift.

Applied on the fly to each normalised training batch (so every epoch sees other draws), never to
validation or test data. Each transform mimics a real difference between recordings of the same class:
a sensor mounted at another angle or gain (scale, per sequence and channel), a bias drift (offset),
sensor noise (jitter, per sample) and a window that starts a little earlier or later (shift: the first
few steps dropped, window classification only, where the label belongs to the window's end). Draws come
from a ``torch.Generator`` seeded by the training seed, so a run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tinylstm.errors import TinyLSTMError


@dataclass(frozen=True)
class Augment:
    """Strengths in units of the normalised input (one training-split std per channel)."""

    scale: float = 0.1  # std of the per-sequence, per-channel gain around 1
    offset: float = 0.1  # std of the per-sequence, per-channel offset
    jitter: float = 0.03  # std of the per-sample noise
    shift: float = 0.0  # drop up to this fraction of each window's first steps (window mode)

    def validate(self) -> None:
        for name in ("scale", "offset", "jitter"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise TinyLSTMError(f"augmentation {name}={getattr(self, name)} must be in [0, 1]")
        if not 0.0 <= self.shift < 1.0:
            raise TinyLSTMError(f"augmentation shift={self.shift} must be a fraction in [0, 1)")

    @property
    def active(self) -> bool:
        return any(v > 0 for v in (self.scale, self.offset, self.jitter, self.shift))

    def describe(self) -> str:
        if not self.active:
            return "none"
        parts = [
            f"gain x(1 +- {self.scale:g})" if self.scale else "",
            f"offset +-{self.offset:g} std" if self.offset else "",
            f"jitter {self.jitter:g} std" if self.jitter else "",
            f"shift <= {self.shift:.0%} of the window" if self.shift else "",
        ]
        return ", ".join(p for p in parts if p)

    def apply(
        self, x: torch.Tensor, lengths: torch.Tensor | None, window: bool, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augmented copy of a batch ``x`` [B, T, C] (padded beyond ``lengths``) and its new lengths."""
        B, T, C = x.shape
        out = x
        if self.scale:
            out = out * (1.0 + self.scale * torch.randn((B, 1, C), generator=gen))
        if self.offset:
            out = out + self.offset * torch.randn((B, 1, C), generator=gen)
        if self.jitter:
            out = out + self.jitter * torch.randn((B, T, C), generator=gen)
        if self.shift and window:
            full = torch.full((B,), T, dtype=torch.int64) if lengths is None else lengths
            most = (full.to(torch.float32) * self.shift).floor().to(torch.int64)
            drop = (torch.rand((B,), generator=gen) * (most + 1).to(torch.float32)).floor().to(torch.int64)
            drop = torch.minimum(drop, full - 1)
            index = (torch.arange(T)[None, :] + drop[:, None]).clamp(max=T - 1)
            out = torch.gather(out, 1, index[:, :, None].expand(B, T, C))
            new = full - drop
            lengths = None if bool((new == T).all()) else new
        return out, lengths


NO_AUGMENT = Augment(scale=0.0, offset=0.0, jitter=0.0, shift=0.0)
