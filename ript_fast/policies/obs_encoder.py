"""Observation features: the state vector through a Linear (QueST's 1-layer lowdim MLP) and each camera
through an image trunk, then either concatenated and projected to one token (QueST, `obs_reduction=cat`)
or each projected to its own token (OFT-style prefix tokens for a language backbone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ript_fast.config import ranged
from ript_fast.policies.language import LanguageMode
from ript_fast.policies.normalizer import Normalizer
from ript_fast.policies.vision import ImageEncoder, ImageTrunk

IMAGE_PREFIX = "image/"  # images travel in a policy's `cond` as "image/<key>" (n, H, W, 3) uint8


def images_to_cond(images: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {IMAGE_PREFIX + key: img.to(device) for key, img in images.items()}


def images_from_cond(cond: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(IMAGE_PREFIX) :]: v for k, v in cond.items() if k.startswith(IMAGE_PREFIX)}


@dataclass
class ObsConfig:
    """Which observations a policy reads and how it embeds them (shared by both families)."""

    state_keys: list[str] = field(default_factory=lambda: ["state"])  # demo obs keys concatenated into the state
    image_keys: list[str] = field(default_factory=list)  # demo/env image keys, e.g. [rgb] or [agentview_rgb, ...]
    image_size: int = ranged(128, ge=8)  # the image encoder's input size (the env's frames are resized to it)
    # The env's camera resolution (square), rendered for this policy; OpenVLA-OFT: 256, as its LIBERO evaluation
    render_size: int = ranged(128, ge=8, le=4096)
    image_trunk: ImageTrunk = "small_cnn"
    state_embed_dim: int = ranged(128, ge=1)
    image_embed_dim: int = ranged(256, ge=1)
    language: LanguageMode = "task_embedding"
    normalize_state: bool = True  # mean/std from the demos, stored in the checkpoint

    def __post_init__(self) -> None:
        """Keys the demos and env must provide, checked when the config loads."""
        if not self.state_keys:
            raise ValueError("state_keys must name at least one observation (e.g. [state])")
        for name, keys in (("state_keys", self.state_keys), ("image_keys", self.image_keys)):
            if len(set(keys)) != len(keys):
                raise ValueError(f"{name} names a key twice: {keys}")

    def env_options(self) -> dict[str, Any]:
        """make_vec_env options giving this policy what it reads: images, at `render_size`, only if it reads any."""
        if not self.image_keys:
            return {"obs_mode": "state"}
        return {"obs_mode": "state+rgb", "render_size": (self.render_size, self.render_size)}


class ObsEncoder(nn.Module):
    """Observation -> (n, 1, out_dim) with `reduction="cat"`, or (n, 1 + cameras, out_dim) with "stack"."""

    def __init__(self, cfg: ObsConfig, state_dim: int, out_dim: int, reduction: Literal["cat", "stack"]) -> None:
        super().__init__()
        self.reduction = reduction
        self.normalize_state = cfg.normalize_state
        self.image_keys = list(cfg.image_keys)
        self.state_norm = Normalizer(state_dim)
        self.state_mlp = nn.Linear(state_dim, cfg.state_embed_dim)
        self.images = nn.ModuleDict(
            {key: ImageEncoder(cfg.image_trunk, cfg.image_size, cfg.image_embed_dim) for key in self.image_keys}
        )
        if reduction == "cat":
            total = cfg.state_embed_dim + cfg.image_embed_dim * len(self.image_keys)
            self.proj = nn.ModuleList([nn.Linear(total, out_dim)])
        else:
            dims = [cfg.state_embed_dim] + [cfg.image_embed_dim] * len(self.image_keys)
            self.proj = nn.ModuleList([nn.Linear(d, out_dim) for d in dims])

    def fit_state_normalizer(self, states: torch.Tensor) -> None:
        self.state_norm.fit(states, "mean_std" if self.normalize_state else "none")

    def forward(self, state: torch.Tensor, images: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = [self.state_mlp(self.state_norm.normalize(state.float()))]
        for key in self.image_keys:
            if key not in images:
                raise ValueError(f"observation lacks the image {key!r} this policy was trained with")
            feats.append(self.images[key](images[key]))
        if self.reduction == "cat":
            return self.proj[0](torch.cat(feats, dim=-1)).unsqueeze(1)
        return torch.stack([proj(f) for proj, f in zip(self.proj, feats, strict=True)], dim=1)
