"""Affine normalizers for states and actions whose statistics travel inside the policy's checkpoint.

Why in the policy: a checkpoint must act correctly on raw env observations on its own, so the statistics
of the data it was trained on are buffers of the model, not a side file. `x_norm = (x - shift) / scale`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

NormMode = Literal["none", "mean_std", "bounds_q99"]
MIN_SCALE = 1e-2  # constant dims (zero padding in MetaWorld's obs) must not blow up


class Normalizer(nn.Module):
    """`normalize` / `unnormalize` with per-dimension shift and scale buffers."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def fit(self, data: torch.Tensor, mode: NormMode) -> Normalizer:
        """Sets the statistics from (N, dim) samples: mean/std, or OpenVLA's 1st/99th percentile bounds -> [-1, 1]."""
        data = data.float().reshape(-1, data.shape[-1])
        if mode == "mean_std":
            shift, scale = data.mean(0), data.std(0, unbiased=False)
        elif mode == "bounds_q99":
            low, high = torch.quantile(data, 0.01, dim=0), torch.quantile(data, 0.99, dim=0)
            shift, scale = (high + low) / 2, (high - low) / 2
        else:
            shift, scale = torch.zeros(data.shape[-1]), torch.ones(data.shape[-1])
        self.shift.copy_(shift)
        self.scale.copy_(scale.clamp_min(MIN_SCALE))
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift
