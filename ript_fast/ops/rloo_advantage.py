"""Leave-one-out advantages (RLOO, paper Eq. 5) and the informative-group test of dynamic rejection (Sec. 4.2)."""

from __future__ import annotations

import torch

from ript_fast.ops._buffers import launch, ref
from ript_fast.ops._checks import check_floating, check_ndim, check_tensor


@torch.library.custom_op("ript_fast::rloo_advantage", mutates_args=())
def _rloo_advantage(rewards: torch.Tensor) -> torch.Tensor:
    out = torch.empty(rewards.shape, dtype=rewards.dtype, device=rewards.device)
    launch("rloo_advantage", rewards.device, ref(rewards), ref(out))
    return out


@_rloo_advantage.register_fake
def _(rewards: torch.Tensor) -> torch.Tensor:
    return torch.empty(rewards.shape, dtype=rewards.dtype, device=rewards.device)


def _rloo_backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
    # R -> A is linear with a symmetric matrix (K I - 11^T) / (K - 1): the backward is the same map.
    return _rloo_advantage(grad)


_rloo_advantage.register_autograd(_rloo_backward)


@torch.library.custom_op("ript_fast::informative_groups", mutates_args=())
def _informative_groups(rewards: torch.Tensor) -> torch.Tensor:
    out = torch.empty(rewards.shape[0], dtype=torch.bool, device=rewards.device)
    launch("informative_groups", rewards.device, ref(rewards), ref(out))
    return out


@_informative_groups.register_fake
def _(rewards: torch.Tensor) -> torch.Tensor:
    return torch.empty(rewards.shape[0], dtype=torch.bool, device=rewards.device)


def _check_rewards(rewards: object) -> torch.Tensor:
    rewards = check_tensor("rewards", rewards)
    check_ndim("rewards", rewards, 2, "(G, K): G groups of K rollouts of one context")
    check_floating("rewards", rewards)
    if rewards.shape[1] < 2:
        raise ValueError(
            f"rewards must hold K >= 2 rollouts per group for a leave-one-out baseline, got K={rewards.shape[1]}"
        )
    return rewards


def rloo_advantage(rewards: torch.Tensor) -> torch.Tensor:
    """Advantages A_k = R_k - mean_{j != k} R_j for each group of K rollouts.

    Args:
        rewards: (G, K) rewards of K rollouts for each of G contexts (any strides, any floating dtype).
    Returns:
        (G, K) advantages, same dtype; differentiable (the map is linear).
    """
    return _rloo_advantage(_check_rewards(rewards))


def informative_groups(rewards: torch.Tensor) -> torch.Tensor:
    """(G,) bool: False for groups whose K rewards are all equal (all-zero advantage, dropped by dynamic rejection)."""
    return _informative_groups(_check_rewards(rewards))
