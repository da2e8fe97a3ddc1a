"""Log-probabilities of continuous actions under factorised Gaussian or Laplace heads (paper Sec. 4.3).

A regression head (MSE or L1) plus a light scale head gives a closed-form density: Gaussian(mean, exp(log_std))
or Laplace(loc, exp(log_scale)) per action dimension. Both families share one kernel that differs only in the
per-element formula, hence one custom op taking the family by name. The kernel computes the gradients with the
log-probs (they share its one exp per element; (B, T, D) is small for these heads), so the backward is a
broadcast multiply.
"""

from __future__ import annotations

import torch

from ript_fast._core import _C
from ript_fast.ops._autograd import FusedOp, first_order_only
from ript_fast.ops._buffers import launch, maybe_ref, ref
from ript_fast.ops._checks import (
    acc_dtype,
    check_floating,
    check_ndim,
    check_reduction,
    check_same_device,
    check_shape,
    check_tensor,
    check_weight_values,
    check_weights,
)

_DENSITIES = {"gaussian": _C.Density.gaussian, "laplace": _C.Density.laplace}


def _forward(
    density: str,
    mean: torch.Tensor,
    log_scale: torch.Tensor,
    actions: torch.Tensor,
    weights: torch.Tensor | None,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    check_weight_values(weights)
    logp, grad_mean, grad_log_scale = _outputs(mean, need_grad)
    launch(
        "continuous_logprob",
        mean.device,
        density=_DENSITIES[density],
        mean=ref(mean),
        log_scale=ref(log_scale),
        actions=ref(actions),
        mask=maybe_ref(weights),
        logp=ref(logp),
        grad_mean=ref(grad_mean) if need_grad else None,
        grad_log_scale=ref(grad_log_scale) if need_grad else None,
    )
    return logp, grad_mean, grad_log_scale


def _outputs(mean: torch.Tensor, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, T) log-probs and the two (B, T, D) weighted gradients (empty placeholders when not wanted)."""
    grad_shape = mean.shape if need_grad else (0,)
    return (
        mean.new_empty(mean.shape[:2], dtype=acc_dtype(mean.dtype)),
        mean.new_empty(grad_shape),
        mean.new_empty(grad_shape),
    )


def _forward_fake(
    density: str,
    mean: torch.Tensor,
    log_scale: torch.Tensor,
    actions: torch.Tensor,
    weights: torch.Tensor | None,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _outputs(mean, need_grad)


def _setup(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: tuple) -> None:
    _, grad_mean, grad_log_scale = output
    ctx.mark_non_differentiable(grad_mean, grad_log_scale)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(grad_mean, grad_log_scale)
    ctx.density = inputs[0]


def _backward(
    ctx: torch.autograd.function.FunctionCtx, grad_logp: torch.Tensor | None, *_: torch.Tensor | None
) -> tuple[torch.Tensor | None, ...]:
    if grad_logp is None:
        return (None,) * 6
    first_order_only(f"{ctx.density}_logprob")
    grad_mean, grad_log_scale = ctx.saved_tensors
    scale = grad_logp.unsqueeze(-1)
    d_mean = grad_mean * scale
    d_actions = -d_mean if ctx.needs_input_grad[3] else None
    return None, d_mean, grad_log_scale * scale, d_actions, None, None


_continuous_logprob = FusedOp("ript_fast::continuous_logprob", _forward, _forward_fake, _setup, _backward)


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether `shape` broadcasts to exactly `target` (torch.broadcast_shapes is slow for a per-step check)."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(shape, target[len(target) - len(shape) :], strict=True))


def _continuous(
    density: str,
    names: tuple[str, str],
    mean: object,
    log_scale: object,
    actions: object,
    mask: object,
    reduction: object,
) -> torch.Tensor:
    """Validates, promotes the three tensors to one dtype, broadcasts the scale, and runs the op."""
    mean_name, scale_name = names
    mean = check_tensor(mean_name, mean)
    check_ndim(mean_name, mean, 3, "(B, T, D)")
    check_floating(mean_name, mean)
    log_scale = check_tensor(scale_name, log_scale)
    check_floating(scale_name, log_scale)
    actions = check_tensor("actions", actions)
    check_floating("actions", actions)
    check_shape("actions", actions, tuple(mean.shape), "(B, T, D)")
    if not _broadcasts_to(tuple(log_scale.shape), tuple(mean.shape)):
        raise ValueError(f"{scale_name} of shape {tuple(log_scale.shape)} does not broadcast to (B, T, D)")
    reduction = check_reduction(reduction)
    dtype = torch.promote_types(torch.promote_types(mean.dtype, log_scale.dtype), actions.dtype)
    weights = check_weights(mask, tuple(mean.shape[:2]), acc_dtype(dtype), "(B, T)")
    check_same_device(**{mean_name: mean, scale_name: log_scale, "actions": actions, "mask": weights})
    need_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (mean, log_scale, actions))
    per_step, _, _ = _continuous_logprob(
        density, mean.to(dtype), log_scale.to(dtype).expand(mean.shape), actions.to(dtype), weights, need_grad
    )
    return per_step.sum(dim=1) if reduction == "sum" else per_step


def gaussian_logprob(
    mean: torch.Tensor,
    log_std: torch.Tensor,
    actions: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "sum",
) -> torch.Tensor:
    """Masked log-density of actions under a factorised Gaussian, sum over t and d of
    mask[b, t] * (-(a - mean)^2 / (2 sigma^2) - log sigma - log(2 pi) / 2), sigma = exp(log_std).

    Args:
        mean, actions: (B, T, D) floating, any strides (T: chunk steps, D: action dims).
        log_std: broadcastable to (B, T, D), e.g. (D,) for a state-independent scale or (B, T, D) from a head;
            its gradient is reduced over the broadcast dims.
        mask: optional (B, T) bool or float weights (finite, >= 0; ValueError otherwise); rows with weight 0 are
            never read.
        reduction: "sum" gives (B,) per-rollout log-probs; "none" the (B, T) weighted per-step terms (summed
            over D: one "token" per chunk step, the released OFT code's `sum_on_action_dim`).
    Returns:
        float32 (float64 when any input is float64) log-probs. The three tensors are promoted to one dtype
        first. Differentiable in mean, log_std and actions (d/da = -d/dmean).
    """
    return _continuous("gaussian", ("mean", "log_std"), mean, log_std, actions, mask, reduction)


def laplace_logprob(
    loc: torch.Tensor,
    log_scale: torch.Tensor,
    actions: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "sum",
) -> torch.Tensor:
    """Masked log-density of actions under a factorised Laplace (OpenVLA-OFT's L1 head with a scale head), sum
    over t and d of mask[b, t] * (-|a - loc| / b - log b - log 2), b = exp(log_scale).

    Arguments and result as in `gaussian_logprob`. At a == loc the loc gradient is the subgradient 0. Any
    clamping of log_scale (the released code clamps it to [-2, 0.5]) is the caller's choice, done beforehand.
    """
    return _continuous("laplace", ("loc", "log_scale"), loc, log_scale, actions, mask, reduction)
