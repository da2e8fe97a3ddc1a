"""Fixed sinusoidal position encodings (Vaswani et al.), as QueST's encoder, decoder queries and prior use."""

from __future__ import annotations

import math

import torch


def sinusoidal(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """(length, dim) table: sin on even channels, cos on odd ones, wavelengths 2*pi .. 10000*2*pi."""
    position = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


def add_positions(x: torch.Tensor) -> torch.Tensor:
    """x (B, T, D) + the (T, D) table."""
    return x + sinusoidal(x.shape[1], x.shape[2], x.device).to(x.dtype)
