"""QueST's causal temporal conv stack: action sequences downsampled in time before the skill encoder.

Each block is Conv1d -> GroupNorm -> Mish with left-only padding (kernel - 1), so output step i sees input
steps up to i*stride and nothing later: a skill token never depends on future actions. The GroupNorm
statistics are taken per time step (over the channels of a group): QueST applies GroupNorm over the whole
chunk, whose mean and variance carry information from later actions into earlier steps and break the
causality its left padding sets up. Kernels [5, 3, ...]
with stride 2 per halving and a final stride-1 layer, as QueST builds them for a power-of-two downsample.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def conv_schedule(downsample: int) -> list[tuple[int, int]]:
    """(kernel, stride) per layer: [(5, 2), (3, 2), ..., (3, 1)] for downsample 2^k, [(3, 1), (2, 1)] for 1."""
    halvings = int(math.log2(downsample))
    if downsample < 1 or 2**halvings != downsample:
        raise ValueError(f"downsample must be a power of two, got {downsample}")
    if halvings == 0:
        return [(3, 1), (2, 1)]
    kernels = [5] + [3] * halvings
    strides = [2] * halvings + [1]
    return list(zip(kernels, strides, strict=True))


class CausalConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int) -> None:
        super().__init__()
        self.pad = kernel - 1
        self.conv = nn.Conv1d(cin, cout, kernel, stride)
        self.norm = nn.GroupNorm(groups, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x, (self.pad, 0)))  # (B, C, T)
        b, c, t = y.shape
        y = self.norm(y.transpose(1, 2).reshape(b * t, c)).reshape(b, t, c).transpose(1, 2)
        return F.mish(y)


class CausalTemporalConv(nn.Module):
    """(B, T, dim) -> (B, T / downsample, dim)."""

    def __init__(self, dim: int, downsample: int, groups: int = 8) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(CausalConvBlock(dim, dim, k, s, groups) for k, s in conv_schedule(downsample)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.transpose(1, 2)).transpose(1, 2)
