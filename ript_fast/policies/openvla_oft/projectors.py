"""The two projectors into the LM's embedding space, with the official module and key names.

`VisionProjector` is Prismatic's fused-backbone MLP (`arch_specifier` "...fused-gelu-mlp"): vision_dim -> 4 *
vision_dim -> llm_dim -> llm_dim with exact GELU after the first two layers (keys `projector.fc1..fc3`).
`ProprioProjector` maps the normalized proprio vector to one LM token: proprio_dim -> llm_dim -> llm_dim, one GELU
(keys `fc1`, `fc2` in `proprio_projector--*_checkpoint.pt`, behind DDP's `module.` prefix).
"""

from __future__ import annotations

import torch
from torch import nn


class VisionProjector(nn.Module):
    def __init__(self, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
        self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
        self.fc3 = nn.Linear(llm_dim, llm_dim)
        self.act_fn1 = nn.GELU()
        self.act_fn2 = nn.GELU()

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.act_fn2(self.fc2(self.act_fn1(self.fc1(patches)))))


class ProprioProjector(nn.Module):
    def __init__(self, proprio_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(proprio_dim, llm_dim)
        self.fc2 = nn.Linear(llm_dim, llm_dim)
        self.act_fn1 = nn.GELU()

    def forward(self, proprio: torch.Tensor) -> torch.Tensor:
        """(B, proprio_dim) -> (B, llm_dim)."""
        return self.fc2(self.act_fn1(self.fc1(proprio)))
