"""Leave-one-out advantages (RLOO, paper Eq. 5) and the informative-group test of dynamic rejection (Sec. 4.2)."""

from __future__ import annotations

import torch

from ript_fast.ops._autograd import FusedOp
from ript_fast.ops._buffers import launch, ref
from ript_fast.ops._checks import check_finite, check_floating, check_ndim, check_tensor


def _rloo_forward(values: torch.Tensor, are_rewards: bool) -> torch.Tensor:
    """The leave-one-out map of `values`: rewards (checked finite), or in the backward, gradients (not checked:
    a NaN gradient is the caller's loss's doing, not a bad reward)."""
    if are_rewards:
        check_finite("rewards", values)
    out = torch.empty(values.shape, dtype=values.dtype, device=values.device)
    launch("rloo_advantage", values.device, ref(values), ref(out))
    return out


def _rloo_fake(values: torch.Tensor, are_rewards: bool) -> torch.Tensor:
    return torch.empty(values.shape, dtype=values.dtype, device=values.device)


def _rloo_setup(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: torch.Tensor) -> None:
    pass  # the backward needs nothing saved


def _rloo_backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
    # R -> A is linear with a symmetric matrix (K I - 11^T) / (K - 1): the backward is the same map.
    return _rloo_advantage(grad, False), None


_rloo_advantage = FusedOp("ript_fast::rloo_advantage", _rloo_forward, _rloo_fake, _rloo_setup, _rloo_backward)


def _informative_forward(rewards: torch.Tensor) -> torch.Tensor:
    check_finite("rewards", rewards)
    out = torch.empty(rewards.shape[0], dtype=torch.bool, device=rewards.device)
    launch("informative_groups", rewards.device, ref(rewards), ref(out))
    return out


def _informative_fake(rewards: torch.Tensor) -> torch.Tensor:
    return torch.empty(rewards.shape[0], dtype=torch.bool, device=rewards.device)


_informative_groups = FusedOp("ript_fast::informative_groups", _informative_forward, _informative_fake)


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
        rewards: (G, K) rewards of K rollouts for each of G contexts (any strides, any floating dtype); NaN or inf
            raises ValueError.
    Returns:
        (G, K) advantages, same dtype; differentiable (the map is linear).
    """
    return _rloo_advantage(_check_rewards(rewards), True)


def informative_groups(rewards: torch.Tensor) -> torch.Tensor:
    """(G,) bool: False for groups whose K rewards are all equal (all-zero advantage, dropped by dynamic rejection).

    NaN or inf rewards raise ValueError (a NaN would pass for informative: NaN != NaN).
    """
    return _informative_groups(_check_rewards(rewards))
