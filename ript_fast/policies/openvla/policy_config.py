"""Settings of the `openvla` policy family: an official OpenVLA folder + LoRA, sampling its action tokens.

Beyond the settings shared with OpenVLA-OFT (`PrismaticPolicyConfig`: folder, prompts, dtype, LoRA rank 32 / alpha 16
on every linear layer of the LM, re-scoring memory), the temperature of the rollouts' draws over the 256 action-bin
logits. Evaluation takes the argmax (the official greedy `predict_action`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ript_fast.config import ranged
from ript_fast.policies.openvla_oft.policy_config import PrismaticPolicyConfig


@dataclass
class OpenVLAPolicyConfig(PrismaticPolicyConfig):
    temperature: float = ranged(1.0, gt=0)  # rollouts draw from softmax(action-bin logits / temperature)
