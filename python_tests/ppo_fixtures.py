"""Test helpers: a small real QueST policy and a frozen rollout batch sampled from it (ragged episodes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from ript_fast.config import from_dict, load_yaml
from ript_fast.policies.base import Observation, Policy, PolicySpec
from ript_fast.policies.config import PolicyConfig
from ript_fast.policies.factory import build_policy
from ript_fast.train.rollout import RolloutBatch, _pack

SMOKE_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "sft_quest_smoke.yaml"


def smoke_policy(seed: int = 0) -> Policy:
    """The smoke-preset QueST policy with random weights, in eval mode, frozen for RL (prior trainable)."""
    cfg = from_dict(PolicyConfig, load_yaml(SMOKE_CONFIG)["policy"], "policy")
    torch.manual_seed(seed)
    policy = build_policy(cfg, PolicySpec(action_dim=4, state_dim=39, task_names=["reach-v3"], instructions=["reach"]))
    policy.eval()
    policy.freeze_for_rl()
    return policy


def frozen_batch(policy: Policy, num_rollouts: int, max_queries: int = 5, seed: int = 1) -> RolloutBatch:
    """Real policy samples over ragged episodes: rollout r queries `lengths[r]` times; rewards are random
    except that rollouts 0 and 1 differ (the first group is informative)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_queries + 1, (num_rollouts,), generator=gen)
    queries = []
    for q in range(int(lengths.max())):  # no query with no rollout left (collect_rollouts never makes one)
        ids = torch.nonzero(lengths > q).flatten().numpy()
        obs = Observation(
            state=torch.randn(len(ids), 39, generator=gen),
            instructions=["reach"] * len(ids),
            task_ids=torch.zeros(len(ids), dtype=torch.int64),
        )
        queries.append((ids, policy.act(obs)))
    success = (torch.rand(num_rollouts, generator=gen) < 0.5).numpy()
    success[0], success[1] = True, False
    return _pack(queries, num_rollouts, success, lengths.numpy() * 8, np.arange(num_rollouts))


def perturb(policy: Policy, scale: float, seed: int = 2) -> None:
    """Moves the trainable weights away from the sampling policy, as a few PPO steps would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for group in policy.rl_param_groups():
            for p in group["params"]:
                p.add_(torch.randn(p.shape, generator=gen) * scale)


def sgd(policy: Policy, lr: float = 1.0) -> torch.optim.Optimizer:
    """Plain SGD over the RL parameter groups: the weights move by exactly lr x the gradients."""
    groups = policy.rl_param_groups()
    for group in groups:
        group["lr"] = lr
    return torch.optim.SGD(groups)


def moved_tensors(before: str | Path, after: str | Path) -> list[str]:
    """Names of the tensors that differ between two policy checkpoints (same keys required)."""
    a, b = load_file(before), load_file(after)
    assert a.keys() == b.keys()
    return [name for name in a if not a[name].equal(b[name])]


def tiny_llama(path: Path) -> Path:
    """A 2-layer, 32-wide random Llama saved as a Hugging Face folder: the OFT policy's backbone in tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def oft_policy(backbone: Path, distribution: str = "laplace", seed: int = 0) -> Policy:
    """A small OFT-style policy (LoRA on the tiny Llama, Laplace or Gaussian head), in eval mode, frozen for RL
    (LoRA and the action head trainable)."""
    oft = {
        "backbone_path": str(backbone),
        "lora_rank": 4,
        "chunk_size": 4,
        "action_horizon": 2,
        "max_instruction_tokens": 12,
        "distribution": distribution,
    }
    cfg = from_dict(PolicyConfig, {"family": "oft", "obs": {"state_embed_dim": 16}, "oft": oft}, "policy")
    torch.manual_seed(seed)
    policy = build_policy(cfg, PolicySpec(action_dim=4, state_dim=39, task_names=["reach-v3"], instructions=["reach"]))
    policy.eval()
    policy.freeze_for_rl()
    return policy
