"""OFT-style regression policy settings (defaults: the paper's and the released code's, REFERENCE_CODE.md sec. 3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ript_fast.config import ranged


@dataclass
class OftConfig:
    backbone_path: str = ""  # local Hugging Face folder of a causal LM (config + weights, tokenizer optional)
    backbone_dtype: Literal["float32", "bfloat16"] = "float32"
    chunk_size: int = ranged(8, ge=1)  # actions regressed per query (OFT: 8)
    action_horizon: int = ranged(8, ge=1)  # of which executed
    distribution: Literal["laplace", "gaussian"] = "laplace"  # L1 head -> Laplace, MSE head -> Gaussian
    lora_rank: int = ranged(32, ge=1)
    lora_alpha: int | None = None  # None: min(rank, 16), as the released code
    lora_dropout: float = ranged(0.0, ge=0, lt=1)
    lora_targets: list[str] = field(default_factory=lambda: ["all-linear"])  # PEFT target_modules
    head_blocks: int = ranged(2, ge=1)  # MLPResNet blocks of the action head and of the scale head
    head_hidden_dim: int | None = None  # None: the backbone's hidden size
    max_instruction_tokens: int = ranged(32, ge=1)  # instructions are truncated/padded to this many tokens
    log_scale_clip: list[float] | None = field(default_factory=lambda: [-2.0, 0.5])  # [low, high] or None
    scale_init_bias: float = -3.0  # the released LaplaceScaleHead's bias init
    # rollouts draw from scale * factor (released: 5.0); eval uses the mean
    sampling_scale_factor: float = ranged(5.0, gt=0)
    score_with_sampling_scale: bool = True  # False: score with the unscaled scale (released code)
    action_normalization: Literal["bounds_q99", "none"] = "bounds_q99"
    lora_lr: float = ranged(1e-4, gt=0, le=1)  # paper: LoRA 1e-4
    head_lr: float = ranged(1e-5, gt=0, le=1)  # paper: action head 1e-5
    rl_train_scale_head: bool = False  # released scripts: fix_scale_head = true
    rl_weight_decay: float = ranged(0.0, ge=0)
