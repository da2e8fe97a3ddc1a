"""Finite Scalar Quantization (Mentzer et al. 2023, arXiv:2309.15505): QueST's skill-token quantizer.

A Linear projects each latent to len(levels) scalars; each scalar is squashed by tanh into (-L/2, L/2)
(shifted by half a step for even L so it rounds to exactly L integers) and rounded with a straight-through
gradient. The integer digits, read in mixed radix `levels`, are the token; the implicit codebook is the
product grid, so no codebook is learned and none collapses. A Linear maps the code back to the model width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# QueST's choice of levels for a requested codebook size (1024 -> [8,5,5,5] = 1000 codes, the paper's).
LEVELS_FOR_CODEBOOK: dict[int, list[int]] = {
    16: [5, 3],
    64: [8, 8],
    256: [8, 6, 5],
    512: [8, 8, 8],
    1024: [8, 5, 5, 5],
    2048: [8, 8, 6, 5],
    4096: [7, 5, 5, 5, 5],
}
BOUND_EPS = 1e-3


def levels_for_codebook(codebook_size: int) -> list[int]:
    """FSQ levels for a codebook size QueST supports; others are a ValueError listing the supported ones."""
    if codebook_size not in LEVELS_FOR_CODEBOOK:
        raise ValueError(f"codebook_size {codebook_size} has no FSQ levels; use one of {sorted(LEVELS_FOR_CODEBOOK)}")
    return list(LEVELS_FOR_CODEBOOK[codebook_size])


class FSQ(nn.Module):
    """(B, T, dim) latents -> ((B, T, out_dim) quantized codes, (B, T) int64 token indices)."""

    def __init__(self, levels: list[int], dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        if not levels or any(lvl < 2 for lvl in levels):
            raise ValueError(f"FSQ levels must all be >= 2, got {levels}")
        self.levels_list = list(levels)
        self.codebook_size = math.prod(levels)
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.float32), persistent=False)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]], dtype=torch.int64), dim=0)
        self.register_buffer("basis", basis, persistent=False)
        self.project_in = nn.Linear(dim, len(levels))
        self.project_out = nn.Linear(len(levels), out_dim or dim)

    def _half_width(self) -> torch.Tensor:
        return torch.div(self.levels, 2, rounding_mode="floor")

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squashes each scalar into an interval that rounds to exactly L integers, centred on 0 (odd L)
        or on -1/2 (even L: the integers -L/2 .. L/2-1)."""
        half_l = (self.levels - 1) * (1 - BOUND_EPS) / 2
        offset = torch.where(torch.remainder(self.levels, 2) == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Rounded digits renormalized to [-1, 1], straight-through gradient to `z`."""
        bounded = self.bound(z)
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        return rounded / self._half_width()

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        digits = torch.round(codes * self._half_width() + self._half_width()).long()
        return (digits * self.basis).sum(-1)

    def grid_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, T) tokens -> (B, T, len(levels)) their points on the [-1, 1] grid (inverse of codes_to_indices)."""
        place = torch.div(indices.unsqueeze(-1), self.basis, rounding_mode="floor")
        digits = torch.remainder(place, self.levels.long())
        return (digits.float() - self._half_width()) / self._half_width()

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, T) tokens -> (B, T, out_dim) codes (what the decoder attends to)."""
        return self.project_out(self.grid_codes(indices))

    def forward(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.quantize(self.project_in(latents).float())
        return self.project_out(codes), self.codes_to_indices(codes.detach())
