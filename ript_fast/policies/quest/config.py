"""QueST sizes and sampling (defaults: the paper's, `../shared/REFERENCE_CODE.md` sec. 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ript_fast.config import ranged
from ript_fast.policies.quest.fsq import levels_for_codebook

RlPart = Literal["prior", "obs_encoder", "goal_encoder"]


@dataclass
class QuestConfig:
    chunk_size: int = ranged(32, ge=1)  # actions per skill chunk (QueST's skill_block_size)
    downsample: int = ranged(4, ge=1)  # actions per token: 32 actions -> 8 tokens
    action_horizon: int = ranged(8, ge=1)  # decoded actions executed before the next query
    codebook_size: int = ranged(1024, ge=2)  # FSQ levels from QueST's table: 1024 -> [8,5,5,5] = 1000 codes
    fsq_levels: list[int] | None = None  # explicit levels override codebook_size
    encoder_dim: int = ranged(256, ge=1)
    decoder_dim: int = ranged(256, ge=1)
    encoder_heads: int = ranged(4, ge=1)
    encoder_layers: int = ranged(2, ge=1)
    decoder_heads: int = ranged(4, ge=1)
    decoder_layers: int = ranged(4, ge=1)
    embed_dim: int = ranged(384, ge=1)  # prior width
    prior_heads: int = ranged(6, ge=1)
    prior_layers: int = ranged(6, ge=1)
    dropout: float = ranged(0.1, ge=0, lt=1)
    top_k: int = ranged(5, ge=0)  # 0 = sample from the full vocabulary
    temperature: float = ranged(1.0, gt=0)
    score_support: Literal["sampled_topk", "full"] = "sampled_topk"  # see quest/sampling.py
    # stage "prior+decoder": weight of the decoder's L1 loss (QueST: 10 LIBERO, 0 MetaWorld)
    l1_loss_scale: float = ranged(0.0, ge=0)
    rl_trainable: list[RlPart] = field(default_factory=lambda: ["prior"])  # what RIPT fine-tunes
    rl_lr: float = ranged(1e-6, gt=0, le=1)  # the released QueST RIPT lr
    rl_weight_decay: float = ranged(1e-4, ge=0)

    def __post_init__(self) -> None:
        """Sizes that must fit together, checked when the config loads (a model build would fail later, deep in
        torch, after the demos are read)."""
        if self.fsq_levels is None:
            levels_for_codebook(self.codebook_size)
        elif not self.fsq_levels or min(self.fsq_levels) < 2:
            raise ValueError(f"fsq_levels must be a non-empty list of ints >= 2, got {self.fsq_levels}")
        if self.chunk_size % self.downsample:
            raise ValueError(f"chunk_size {self.chunk_size} must be a multiple of downsample {self.downsample}")
        if self.action_horizon > self.chunk_size:
            raise ValueError(f"action_horizon {self.action_horizon} exceeds chunk_size {self.chunk_size}")
        for width, heads in (
            ("encoder_dim", "encoder_heads"),
            ("decoder_dim", "decoder_heads"),
            ("embed_dim", "prior_heads"),
        ):
            if getattr(self, width) % getattr(self, heads):
                raise ValueError(
                    f"{width} ({getattr(self, width)}) must be a multiple of {heads} ({getattr(self, heads)})"
                )
