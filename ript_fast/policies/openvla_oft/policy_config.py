"""Settings of the two OpenVLA policy families: what both share (`PrismaticPolicyConfig`: the folder, prompts, dtype,
LoRA, re-scoring memory) and the `openvla_oft` family's own (an OpenVLA-OFT folder + RIPT's scale head + LoRA).

Defaults are the released RIPT settings (`../shared/REFERENCE_CODE.md` sec. 3): LoRA rank 32, alpha min(rank, 16),
dropout 0, all linear layers of the LM; Laplace sampling with scale x 5 at rollout time, the mean at evaluation;
log-scales clipped to [-2, 0.5]; the scale head frozen during RIPT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ript_fast.config import ranged


@dataclass
class PrismaticPolicyConfig:
    checkpoint: str = ""  # an official checkpoint folder as downloaded (config.json, model-*.safetensors, ...)
    unnorm_key: str | None = None  # dataset_statistics.json key (LIBERO: the suite, e.g. libero_goal)
    center_crop: bool = True  # checkpoints trained with random-crop augmentation (every LIBERO fine-tune)
    max_prompt_tokens: int = ranged(64, ge=4)  # prompts are padded (after BOS) to this length: fixed-shape conds
    dtype: Literal["float32", "bfloat16"] = "float32"
    lora_rank: int = ranged(32, ge=1)
    lora_alpha: int | None = None  # None: min(rank, 16), as the released code
    lora_dropout: float = ranged(0.0, ge=0, lt=1)
    lora_targets: list[str] = field(default_factory=lambda: ["all-linear"])  # peft target_modules, on the LM
    lora_lr: float = ranged(1e-4, gt=0, le=1)
    rl_weight_decay: float = ranged(0.0, ge=0)
    # Re-scoring memory. False: the prefix (BOS, images, proprio, prompt) runs once without gradients with its keys
    # and values kept, and only the action pass carries gradients: the released code's approximation (no gradient
    # through the prefix's K/V), with the plain pass's values. True: gradients through the whole sequence.
    prefix_grad: bool = False
    gradient_checkpointing: bool = False  # recompute each LM layer in the backward instead of keeping its activations


@dataclass
class OpenVLAOFTPolicyConfig(PrismaticPolicyConfig):
    scale_head_file: str = ""  # RIPT's released `*_scale_header.pth` (or one ript-fast trained); "" = a fresh head
    num_images: int = ranged(2, ge=1)  # third-person + wrist
    chunk_len: int = ranged(8, ge=1)  # NUM_ACTIONS_CHUNK (LIBERO: 8)
    action_horizon: int = ranged(8, ge=1)  # actions executed per query (official LIBERO eval: 8, open loop)
    distribution: Literal["laplace", "gaussian"] = "laplace"
    log_scale_clip: list[float] | None = field(default_factory=lambda: [-2.0, 0.5])  # [low, high] or None
    sampling_factor: float = ranged(5.0, gt=0)  # rollouts draw from scale * factor (released: 5.0)
    score_with_sampling_scale: bool = True  # False: log-probs with the unscaled scale (the released code)
    head_lr: float = ranged(1e-5, gt=0, le=1)
    rl_train_scale_head: bool = False  # released scripts: fix_scale_head = true
    # Queries per re-scoring pass: 0 = the trainer's whole minibatch in one pass; n = passes of n queries, each
    # recomputed in the backward, so one pass's activations are alive at a time (the released code: 1 per forward)
    score_queries_per_pass: int = ranged(0, ge=0)
    # Or sized from a memory budget (GiB) for one pass's activations and their gradients: the most queries whose
    # measured saved activations fit (`pass_memory.py`); chosen on the first minibatch scored. Needs
    # score_queries_per_pass 0.
    score_pass_memory_gb: float | None = ranged(None, gt=0)

    def __post_init__(self) -> None:
        if self.score_queries_per_pass and self.score_pass_memory_gb is not None:
            raise ValueError(
                "openvla_oft.score_pass_memory_gb: sizes the passes itself; set score_queries_per_pass to 0 with it"
            )
