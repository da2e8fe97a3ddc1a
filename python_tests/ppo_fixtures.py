"""Test helpers: a small real QueST policy, a tiny OpenVLA-OFT one, and a frozen rollout batch sampled from either
(ragged episodes)."""

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


def random_observation(policy: Policy, n: int, gen: torch.Generator) -> Observation:
    """n random observations of what `policy` reads: MetaWorld's 39-d state, or LIBERO's 16-d state (a unit
    quaternion at 10:14) and two small camera images for the OpenVLA-OFT family."""
    if policy.family != "openvla_oft":
        state = torch.randn(n, 39, generator=gen)
        return Observation(state=state, instructions=["reach"] * n, task_ids=torch.zeros(n, dtype=torch.int64))
    state = torch.randn(n, OFT_STATE_DIM, generator=gen) * 0.3
    state[:, 10:14] /= state[:, 10:14].norm(dim=1, keepdim=True)
    images = {k: torch.randint(0, 256, (n, 32, 32, 3), generator=gen, dtype=torch.uint8) for k in OFT_CAMERAS}
    return Observation(state, ["open the drawer"] * n, torch.zeros(n, dtype=torch.int64), images)


def frozen_batch(policy: Policy, num_rollouts: int, max_queries: int = 5, seed: int = 1) -> RolloutBatch:
    """Real policy samples over ragged episodes: rollout r queries `lengths[r]` times; rewards are random
    except that rollouts 0 and 1 differ (the first group is informative)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_queries + 1, (num_rollouts,), generator=gen)
    queries = []
    for q in range(int(lengths.max())):  # no query with no rollout left (collect_rollouts never makes one)
        ids = torch.nonzero(lengths > q).flatten().numpy()
        queries.append((ids, policy.act(random_observation(policy, len(ids), gen))))
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


OFT_CAMERAS = ["agentview_rgb", "eye_in_hand_rgb"]
OFT_STATE_DIM = 16  # LIBERO's state: joints, eef position, eef quaternion, gripper fingers


def oft_policy(folder: Path, distribution: str = "laplace", seed: int = 0) -> Policy:
    """A tiny OpenVLA-OFT policy (a random official-layout folder from `random_folder.write_random_folder`, LoRA
    rank 4), Laplace or Gaussian, in eval mode, frozen for RL (LoRA and the action head trainable)."""
    oft = {"checkpoint": str(folder), "lora_rank": 4, "action_horizon": 2, "distribution": distribution}
    obs = {"state_keys": ["state"], "image_keys": OFT_CAMERAS, "render_size": 32}
    cfg = from_dict(PolicyConfig, {"family": "openvla_oft", "obs": obs, "openvla_oft": oft}, "policy")
    torch.manual_seed(seed)
    spec = PolicySpec(action_dim=7, state_dim=OFT_STATE_DIM, task_names=["goal"], instructions=["open the drawer"])
    policy = build_policy(cfg, spec)
    policy.eval()
    policy.freeze_for_rl()
    return policy
