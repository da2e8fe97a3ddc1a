"""QueST sizes and sampling (defaults: the paper's, `../shared/REFERENCE_CODE.md` sec. 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

RlPart = Literal["prior", "obs_encoder", "goal_encoder"]


@dataclass
class QuestConfig:
    chunk_size: int = 32  # actions per skill chunk (QueST's skill_block_size)
    downsample: int = 4  # actions per token: 32 actions -> 8 tokens
    action_horizon: int = 8  # decoded actions executed before the next query
    codebook_size: int = 1024  # FSQ levels from QueST's table: 1024 -> [8,5,5,5] = 1000 codes
    fsq_levels: list[int] | None = None  # explicit levels override codebook_size
    encoder_dim: int = 256
    decoder_dim: int = 256
    encoder_heads: int = 4
    encoder_layers: int = 2
    decoder_heads: int = 4
    decoder_layers: int = 4
    embed_dim: int = 384  # prior width
    prior_heads: int = 6
    prior_layers: int = 6
    dropout: float = 0.1
    top_k: int = 5  # 0 = sample from the full vocabulary
    temperature: float = 1.0
    score_support: Literal["sampled_topk", "full"] = "sampled_topk"  # see quest/sampling.py
    l1_loss_scale: float = 0.0  # stage "prior+decoder": weight of the decoder's L1 loss (QueST: 10 LIBERO, 0 MetaWorld)
    rl_trainable: list[RlPart] = field(default_factory=lambda: ["prior"])  # what RIPT fine-tunes
    rl_lr: float = 1e-6  # the released QueST RIPT lr
    rl_weight_decay: float = 1e-4
