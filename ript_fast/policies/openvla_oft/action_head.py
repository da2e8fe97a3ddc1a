"""OpenVLA-OFT's L1-regression action head: an MLP-ResNet over the action-token hidden states of one chunk step.

The LM gives one hidden state per action token (chunk_len * action_dim of them, in chunk-step-major order). The head
concatenates the action_dim consecutive states of each chunk step (a row-major reshape to (B, chunk_len, action_dim *
llm_dim)) and maps each step to action_dim normalized actions, independently per step. Module and key names follow
the official `L1RegressionActionHead` (`model.layer_norm1`, `model.fc1`, `model.mlp_resnet_blocks.{i}.ffn.{0,1}`,
`model.layer_norm2`, `model.fc2`), so `action_head--*_checkpoint.pt` loads by name. The MLP-ResNet is also the trunk of
RIPT's scale head, which is why it is its own class.
"""

from __future__ import annotations

import torch
from torch import nn


class MLPResNetBlock(nn.Module):
    """x + ReLU(Linear(LayerNorm(x))): a pre-norm residual feed-forward block."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(x)


class MLPResNet(nn.Module):
    """LayerNorm -> Linear -> ReLU -> residual blocks -> LayerNorm -> Linear (PyTorch's default LayerNorm eps)."""

    def __init__(self, num_blocks: int, input_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(input_dim)
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.relu = nn.ReLU()
        self.mlp_resnet_blocks = nn.ModuleList(MLPResNetBlock(hidden_dim) for _ in range(num_blocks))
        self.layer_norm2 = nn.LayerNorm(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.fc1(self.layer_norm1(x)))
        for block in self.mlp_resnet_blocks:
            x = block(x)
        return self.fc2(self.layer_norm2(x))


class L1RegressionActionHead(nn.Module):
    def __init__(self, llm_dim: int, action_dim: int, num_blocks: int = 2) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.model = MLPResNet(num_blocks, input_dim=llm_dim * action_dim, hidden_dim=llm_dim, output_dim=action_dim)

    def forward(self, action_hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, chunk_len * action_dim, llm_dim) -> (B, chunk_len, action_dim) normalized actions (the mean)."""
        b, tokens, d = action_hidden_states.shape
        return self.model(action_hidden_states.reshape(b, tokens // self.action_dim, self.action_dim * d))
