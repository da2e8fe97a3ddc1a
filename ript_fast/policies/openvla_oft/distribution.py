"""The OpenVLA-OFT policy's density over a normalized action chunk, and the scale head's NLL objective (Sec. 4.3).

The chunk is a factorized Laplace (the L1 head's natural density) or Gaussian per chunk step and action dimension:
mean from the action head, scale exp(log_scale) from the scale head. Every log-prob goes through the project's fused
ops (`ript_fast.ops.laplace_logprob` / `gaussian_logprob`, reduction "none": one value per chunk step, summed over
the action dimensions: the released code's `sum_on_action_dim`).

Scale-head training (not in RIPT's released code): maximize the likelihood of the demos' normalized action chunks
under (mean of the FROZEN action head, detached; scale of the scale head), LM and action head untouched. The raw
log-scale is used there, not the clipped one: the head starts at log-scale -3, below the clip's -2, where a clamp
would pass no gradient at all; the clip [-2, 0.5] applies where the scale is used (sampling, PPO scoring).
"""

from __future__ import annotations

from typing import Literal

import torch

from ript_fast.ops import gaussian_logprob, laplace_logprob

Density = Literal["laplace", "gaussian"]


def chunk_logprob(
    kind: Density,
    mean: torch.Tensor,
    log_scale: torch.Tensor,
    actions: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """mean/log_scale/actions (B, C, D) -> (B, C) log-density of each chunk step (summed over D), weighted by mask."""
    if kind not in ("laplace", "gaussian"):
        raise ValueError(f"density must be 'laplace' or 'gaussian'; got {kind!r}")
    op = laplace_logprob if kind == "laplace" else gaussian_logprob
    return op(mean, log_scale, actions, mask=mask, reduction="none")


def scale_nll(
    kind: Density,
    mean: torch.Tensor,
    log_scale: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The scale head's objective: mean negative log-likelihood per action dimension of `target` (B, C, D).

    `mean` is detached (the action head stays as it is); mask (B, C) drops chunk steps past a demo's end.
    """
    weights = torch.ones(target.shape[:2], dtype=target.dtype, device=target.device) if mask is None else mask
    weights = weights.to(target.dtype)
    total = chunk_logprob(kind, mean.detach(), log_scale, target, weights).sum()
    return -total / (weights.sum().clamp_min(1.0) * target.shape[-1])
