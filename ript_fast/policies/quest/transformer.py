"""The transformer pieces QueST's modules share: its layer recipe and the causal mask."""

from __future__ import annotations

import torch
from torch import nn


def transformer_layer(cls: type[nn.Module], dim: int, heads: int, dropout: float) -> nn.Module:
    """QueST's encoder/decoder layer: pre-norm, GELU, 4x feed-forward, batch-first."""
    return cls(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True, norm_first=True)


def causal_mask(length: int, device: torch.device) -> torch.Tensor:
    """(length, length) float mask, -inf above the diagonal: position i attends to positions <= i."""
    return nn.Transformer.generate_square_subsequent_mask(length, device=device)
