"""The clipped PPO loss of RIPT (paper Eq. 6) at either ratio level, with its statistics, in one kernel.

The loss is a weighted mean of per-element terms, so the kernel computes d loss / d logp_new alongside the
loss (a (B,) or (B, T) buffer) and the backward only scales it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ript_fast.ops._autograd import FusedOp, first_order_only
from ript_fast.ops._buffers import launch, maybe_ref, ref
from ript_fast.ops._checks import (
    acc_dtype,
    check_floating,
    check_positive,
    check_ppo_targets,
    check_same_device,
    check_shape,
    check_tensor,
    check_weights,
)

# Log-ratios are clamped to [-MAX_LOG_RATIO, MAX_LOG_RATIO] before exp (csrc/ops/ppo_clip_loss.h kMaxLogRatio).
MAX_LOG_RATIO = 20.0


class PPOLoss(NamedTuple):
    """What the PPO losses return with return_stats=True: the loss and three detached scalar statistics,
    weighted like the loss (unpack as `loss, clip_fraction, approx_kl, mean_ratio = ...`).

    clip_fraction: share of elements whose gradient the clip zeroes (the clipped term is the smaller one).
    approx_kl: mean of (r - 1) - log r, the low-variance non-negative "k3" estimator of KL(pi_old || pi_new).
    mean_ratio: mean of r = pi_new / pi_old.
    """

    loss: torch.Tensor
    clip_fraction: torch.Tensor
    approx_kl: torch.Tensor
    mean_ratio: torch.Tensor


def with_stats(loss: torch.Tensor, stats: torch.Tensor) -> PPOLoss:
    """The PPOLoss of a loss and the kernels' (3,) statistics."""
    return PPOLoss(loss, stats[0], stats[1], stats[2])


def _forward(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor | None,
    clip_eps: float,
    clip_eps_high: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    check_ppo_targets(logp_old, advantages, weights)
    loss, stats, grad = _ppo_outputs(logp_new)
    launch(
        "ppo_clip_loss",
        logp_new.device,
        logp_new=ref(logp_new),
        logp_old=ref(logp_old),
        advantages=ref(advantages),
        mask=maybe_ref(weights),
        clip_eps=clip_eps,
        clip_eps_high=clip_eps_high,
        loss=ref(loss),
        stats=ref(stats),
        grad=ref(grad),
    )
    return loss, stats, grad


def _ppo_outputs(logp_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    acc = acc_dtype(logp_new.dtype)
    loss = logp_new.new_empty((), dtype=acc)
    stats = logp_new.new_empty((3,), dtype=acc)
    return loss, stats, torch.empty(logp_new.shape, dtype=logp_new.dtype, device=logp_new.device)


def _forward_fake(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor | None,
    clip_eps: float,
    clip_eps_high: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _ppo_outputs(logp_new)


def _setup(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: tuple) -> None:
    _, stats, grad = output
    ctx.mark_non_differentiable(stats, grad)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(grad)


def _backward(
    ctx: torch.autograd.function.FunctionCtx, grad_loss: torch.Tensor | None, *_: torch.Tensor | None
) -> tuple[torch.Tensor | None, None, None, None, None, None]:
    if grad_loss is None:
        return None, None, None, None, None, None
    first_order_only("ppo_clip_loss")
    (grad,) = ctx.saved_tensors
    return grad * grad_loss, None, None, None, None, None


_ppo_clip_loss = FusedOp("ript_fast::ppo_clip_loss", _forward, _forward_fake, _setup, _backward)


def check_clip(clip_eps: object, clip_eps_high: object) -> tuple[float, float]:
    """Validated (clip_eps, clip_eps_high); clip_eps_high defaults to clip_eps (the symmetric clip of Eq. 6)."""
    low = check_positive("clip_eps", clip_eps)
    high = low if clip_eps_high is None else check_positive("clip_eps_high", clip_eps_high)
    return low, high


def ppo_clip_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    return_stats: bool = False,
    *,
    mask: torch.Tensor | None = None,
) -> torch.Tensor | PPOLoss:
    """Clipped PPO loss: the weighted mean of -min(r A, clip(r, 1 - clip_eps, 1 + clip_eps_high) A).

    Two ratio levels, chosen by the shape of the log-probs:
      - sequence (paper Eq. 6): logp_new, logp_old (B,) sequence log-probs, r = exp(logp_new - logp_old) per
        rollout, loss = mean over rollouts (an optional (B,) mask weights/drops rollouts, e.g. padding copies);
      - token (the released code's `use_token_level_loss_avg`): logp_new, logp_old (B, T) per-token log-probs,
        advantages broadcast over T, loss = sum of mask-weighted terms / sum of the mask (the mean over all valid
        tokens of the batch).
    The log-ratio is clamped to [-20, 20] before exp, so r, the loss and its gradient stay finite for any
    finite or -inf log-probs (the gradient is 0 outside the clamp, as for any clamp). With all weights 0 the
    loss and the statistics are 0.

    Args:
        logp_new: (B,) or (B, T) floating, differentiable (the only input that gets a gradient).
        logp_old: same shape; advantages: (B,). Both are treated as constants (no gradient). Where the mask is
            non-zero, advantages must be finite and logp_old finite or -inf (ValueError otherwise).
        clip_eps: lower clip, > 0. clip_eps_high: upper clip, > 0 (default: clip_eps).
        return_stats: return a PPOLoss, the loss with detached scalar statistics (clip fraction, k3 approx KL,
            mean ratio), instead of the loss alone.
        mask: optional bool or float weights (finite, >= 0) shaped like logp_new; elements with weight 0 are
            never read.
    Returns:
        The scalar loss (float32, or float64 for float64 logp_new), or the PPOLoss if return_stats.
    """
    logp_new, logp_old, advantages, weights = _check_ppo(logp_new, logp_old, advantages, mask)
    low, high = check_clip(clip_eps, clip_eps_high)
    loss, stats, _ = _ppo_clip_loss(logp_new, logp_old, advantages, weights, low, high)
    return with_stats(loss, stats) if return_stats else loss


def check_targets(
    logp_old: object, advantages: object, shape: tuple[int, ...], layout: str, acc: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validates logp_old (`shape`) and advantages (B,); returns them detached (they are constants of the loss)
    in the accumulation dtype."""
    logp_old = check_tensor("logp_old", logp_old)
    check_floating("logp_old", logp_old)
    check_shape("logp_old", logp_old, shape, layout)
    advantages = check_tensor("advantages", advantages)
    check_floating("advantages", advantages)
    check_shape("advantages", advantages, shape[:1], "(B,)")
    return logp_old.detach().to(acc), advantages.detach().to(acc)


def _check_ppo(
    logp_new: object, logp_old: object, advantages: object, mask: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    logp_new = check_tensor("logp_new", logp_new)
    check_floating("logp_new", logp_new)
    if logp_new.dim() not in (1, 2):
        raise ValueError(f"logp_new must have shape (B,) or (B, T), got {tuple(logp_new.shape)}")
    shape = tuple(logp_new.shape)
    layout = "(B,)" if logp_new.dim() == 1 else "(B, T)"
    acc = acc_dtype(logp_new.dtype)
    logp_old, advantages = check_targets(logp_old, advantages, shape, layout, acc)
    weights = check_weights(mask, shape, acc, layout)
    check_same_device(logp_new=logp_new, logp_old=logp_old, advantages=advantages, mask=weights)
    return logp_new, logp_old, advantages, weights
