"""The token path of RIPT's PPO update fused: categorical log-prob + clipped loss + logits gradient.

Like Liger-Kernel's fused losses, the logits gradient is computed during the forward, row by row while each
row is in cache, and kept; the backward only scales it by the incoming gradient (and with the usual
`loss.backward()` hands the buffer over as is). Besides that gradient, memory is O(B T): no softmax, no
log-softmax, no second (B, T, V) buffer in the backward.
"""

from __future__ import annotations

import torch

from ript_fast.ops._autograd import FusedOp, first_order_only, scale_saved_grad
from ript_fast.ops._buffers import launch, maybe_ref, ref
from ript_fast.ops._checks import acc_dtype, check_ppo_targets, check_same_device
from ript_fast.ops.categorical_logprob import check_categorical
from ript_fast.ops.ppo_clip_loss import PPOLoss, check_clip, check_targets, with_stats


def _forward(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    weights: torch.Tensor | None,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
    clip_eps_high: float,
    temperature: float,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    check_ppo_targets(logp_old, advantages, weights)
    loss, stats, grad = _outputs(logits, need_grad)
    launch(
        "categorical_ppo_loss",
        logits.device,
        logits=ref(logits),
        tokens=ref(tokens),
        mask=maybe_ref(weights),
        logp_old=ref(logp_old),
        advantages=ref(advantages),
        clip_eps=clip_eps,
        clip_eps_high=clip_eps_high,
        temperature=temperature,
        loss=ref(loss),
        stats=ref(stats),
        grad_logits=ref(grad) if need_grad else None,
    )
    return loss, stats, grad


def _outputs(logits: torch.Tensor, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss, the (3,) stats and the logits gradient (an empty placeholder when no gradient is wanted)."""
    acc = acc_dtype(logits.dtype)
    grad_shape = logits.shape if need_grad else (0,)
    return (
        logits.new_empty((), dtype=acc),
        logits.new_empty((3,), dtype=acc),
        torch.empty(grad_shape, dtype=logits.dtype, device=logits.device),
    )


def _forward_fake(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    weights: torch.Tensor | None,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
    clip_eps_high: float,
    temperature: float,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _outputs(logits, need_grad)


def _setup(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: tuple) -> None:
    _, stats, grad = output
    ctx.mark_non_differentiable(stats, grad)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(grad)


def _backward(
    ctx: torch.autograd.function.FunctionCtx, grad_loss: torch.Tensor | None, *_: torch.Tensor | None
) -> tuple[torch.Tensor | None, ...]:
    none = (None,) * 8
    if grad_loss is None:
        return (None, *none)
    first_order_only("categorical_ppo_loss")
    (grad,) = ctx.saved_tensors
    return (scale_saved_grad(grad, grad_loss), *none)


_categorical_ppo_loss = FusedOp("ript_fast::categorical_ppo_loss", _forward, _forward_fake, _setup, _backward)


def categorical_ppo_loss(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor | None = None,
    clip_eps: float = 0.2,
    temperature: float = 1.0,
    *,
    clip_eps_high: float | None = None,
    return_stats: bool = False,
) -> torch.Tensor | PPOLoss:
    """Clipped PPO loss of sampled tokens straight from the logits, forward and backward fused.

    Equal (up to rounding) to `ppo_clip_loss` applied to `categorical_logprob` of the same tokens, at either
    ratio level chosen by the shape of logp_old:
      - (B,): sequence ratios (paper Eq. 6): logp_new[b] = sum_t mask * log p(tokens[b, t]); mean over the
        rollouts that have at least one valid token;
      - (B, T): per-token ratios (the released code's `use_token_level_loss_avg`), averaged over valid tokens.

    Args:
        logits: (B, T, V) float32/float64/float16/bfloat16, any strides; differentiable.
        tokens: (B, T) int64/int32 in [0, V) where the mask is non-zero (never read elsewhere).
        logp_old: (B,) or (B, T) log-probs of the sampling policy; advantages: (B,). Constants (no gradient).
            Where the mask is non-zero, advantages must be finite and logp_old finite or -inf (else ValueError).
        mask: optional (B, T) bool or float weights (finite, >= 0; ValueError otherwise).
        clip_eps, clip_eps_high: the clip range (0 < ...), clip_eps_high defaults to clip_eps.
        temperature: > 0, as in `categorical_logprob`.
        return_stats: return a PPOLoss (the loss, clip fraction, k3 approx KL, mean ratio; the statistics are
            detached scalars) instead of the loss alone.
    Returns:
        The scalar loss (float32, float64 for float64 logits), or the PPOLoss if return_stats.

    The logits gradient is computed in the forward only when logits require grad and grad mode is on. The
    backward is first-order only; calling it twice (retain_graph) works. See `categorical_logprob` for the
    handling of extreme logits and `ppo_clip_loss` for the log-ratio clamp.
    """
    logits, tokens, weights, temperature = check_categorical(logits, tokens, mask, temperature)
    logp_old, advantages = _check_ppo_targets(logits, logp_old, advantages)
    low, high = check_clip(clip_eps, clip_eps_high)
    need_grad = logits.requires_grad and torch.is_grad_enabled()
    loss, stats, _ = _categorical_ppo_loss(
        logits, tokens, weights, logp_old, advantages, low, high, temperature, need_grad
    )
    return with_stats(loss, stats) if return_stats else loss


def _check_ppo_targets(logits: torch.Tensor, logp_old: object, advantages: object) -> tuple[torch.Tensor, torch.Tensor]:
    """logp_old (B,) picks sequence ratios, anything else must be (B, T) per-token ratios."""
    batch, steps = logits.shape[:2]
    sequence = isinstance(logp_old, torch.Tensor) and logp_old.dim() == 1
    shape, layout = (
        ((batch,), "(B,) for sequence ratios") if sequence else ((batch, steps), "(B, T) for per-token ratios")
    )
    logp_old, advantages = check_targets(logp_old, advantages, shape, layout, acc_dtype(logits.dtype))
    check_same_device(logits=logits, logp_old=logp_old, advantages=advantages)
    return logp_old, advantages
