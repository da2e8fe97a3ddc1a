"""OFT's action head and the RIPT scale head: MLPResNets over the hidden states of each chunk step.

The backbone emits chunk * action_dim action-token states; each chunk step's action_dim states are
concatenated (action_dim * hidden) and regressed to that step's action (OFT's L1 head). The scale head has
the same trunk and ends in a Linear to action_dim log-scales, initialised (bias -3, xavier gain 0.01) so
every step starts near scale e^-3: a confident policy that NLL training then widens where the data varies.
"""

from __future__ import annotations

import torch
from torch import nn


class MLPResBlock(nn.Module):
    """x + ReLU(Linear(LayerNorm(x)))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(x)


class MLPResNet(nn.Module):
    """LayerNorm -> Linear -> ReLU -> blocks -> LayerNorm -> Linear."""

    def __init__(self, blocks: int, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, hidden),
            nn.ReLU(),
            *(MLPResBlock(hidden) for _ in range(blocks)),
            nn.LayerNorm(hidden),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ScaleHead(nn.Module):
    """(n, chunk, action_dim * hidden) -> (n, chunk, action_dim) raw log-scales."""

    def __init__(self, blocks: int, in_dim: int, hidden: int, action_dim: int, init_bias: float) -> None:
        super().__init__()
        self.trunk = MLPResNet(blocks, in_dim, hidden, hidden)
        self.log_scale = nn.Linear(hidden, action_dim)
        nn.init.xavier_uniform_(self.log_scale.weight, gain=0.01)
        nn.init.constant_(self.log_scale.bias, init_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_scale(self.trunk(x))
