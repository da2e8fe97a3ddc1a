"""Log-probabilities of sampled tokens under a categorical action head (paper Sec. 4.3, Eq. 7), fused.

`log_softmax(logits / temperature)` is never materialised: the kernel makes one online log-sum-exp pass per
(b, t) row and keeps only the row's lse (B, T); the backward recomputes the softmax from it and writes the
logits gradient directly. Memory is O(B T) besides the gradient itself, where eager PyTorch holds two or three
(B, T, V) tensors.
"""

from __future__ import annotations

import torch

from ript_fast.ops._autograd import FusedOp, first_order_only
from ript_fast.ops._buffers import launch, maybe_ref, ref
from ript_fast.ops._checks import (
    acc_dtype,
    check_floating,
    check_ndim,
    check_positive,
    check_reduction,
    check_same_device,
    check_tensor,
    check_tokens,
    check_weight_values,
    check_weights,
)


def _forward(
    logits: torch.Tensor, tokens: torch.Tensor, weights: torch.Tensor | None, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    check_weight_values(weights)
    logp = logits.new_empty(logits.shape[:2], dtype=acc_dtype(logits.dtype))
    lse = torch.empty_like(logp)
    launch(
        "categorical_logprob",
        logits.device,
        logits=ref(logits),
        tokens=ref(tokens),
        mask=maybe_ref(weights),
        temperature=temperature,
        logp=ref(logp),
        lse=ref(lse),
    )
    return logp, lse


def _forward_fake(
    logits: torch.Tensor, tokens: torch.Tensor, weights: torch.Tensor | None, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    logp = logits.new_empty(logits.shape[:2], dtype=acc_dtype(logits.dtype))
    return logp, torch.empty_like(logp)


def _backward_kernel(
    grad_logp: torch.Tensor,
    logits: torch.Tensor,
    tokens: torch.Tensor,
    weights: torch.Tensor | None,
    lse: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    grad = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
    launch(
        "categorical_logprob_backward",
        logits.device,
        grad_logp=ref(grad_logp),
        logits=ref(logits),
        tokens=ref(tokens),
        mask=maybe_ref(weights),
        lse=ref(lse),
        temperature=temperature,
        grad_logits=ref(grad),
    )
    return grad


def _backward_kernel_fake(
    grad_logp: torch.Tensor,
    logits: torch.Tensor,
    tokens: torch.Tensor,
    weights: torch.Tensor | None,
    lse: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    return torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)


_categorical_logprob_backward = FusedOp(
    "ript_fast::categorical_logprob_backward", _backward_kernel, _backward_kernel_fake
)


def _setup(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: tuple) -> None:
    logits, tokens, weights, temperature = inputs
    _, lse = output
    ctx.mark_non_differentiable(lse)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(logits, tokens, weights, lse)
    ctx.temperature = temperature


def _backward(
    ctx: torch.autograd.function.FunctionCtx, grad_logp: torch.Tensor | None, _grad_lse: torch.Tensor | None
) -> tuple[torch.Tensor | None, None, None, None]:
    if grad_logp is None:
        return None, None, None, None
    first_order_only("categorical_logprob")
    logits, tokens, weights, lse = ctx.saved_tensors
    return _categorical_logprob_backward(grad_logp, logits, tokens, weights, lse, ctx.temperature), None, None, None


_categorical_logprob = FusedOp("ript_fast::categorical_logprob", _forward, _forward_fake, _setup, _backward)


def check_categorical(
    logits: object, tokens: object, mask: object, temperature: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, float]:
    """Validates the token-path arguments shared with `categorical_ppo_loss`.

    Returns the logits with a unit-stride vocab dim (a contiguous copy only when it is not), the tokens, the
    mask as weights in the accumulation dtype (or None), and the temperature as a float.
    """
    logits = check_tensor("logits", logits)
    check_ndim("logits", logits, 3, "(B, T, V)")
    check_floating("logits", logits)
    if logits.shape[2] < 1:
        raise ValueError("logits must have a vocabulary of V >= 1 entries, got V=0")
    tokens = check_tokens("tokens", tokens, tuple(logits.shape[:2]))
    weights = check_weights(mask, tuple(logits.shape[:2]), acc_dtype(logits.dtype), "(B, T)")
    check_same_device(logits=logits, tokens=tokens, mask=weights)
    temperature = check_positive("temperature", temperature)
    if logits.stride(2) != 1 and logits.shape[2] > 1:
        logits = logits.contiguous()
    return logits, tokens, weights, temperature


def categorical_logprob(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """Masked log-probability of sampled tokens: sum over t of
    mask[b, t] * log_softmax(logits[b, t] / temperature)[tokens[b, t]].

    Args:
        logits: (B, T, V) float32/float64/float16/bfloat16, any strides (a vocab dim that is not unit-stride is
            copied once). Differentiable.
        tokens: (B, T) int64 or int32 in [0, V). Where the mask is 0 the token is never read (padding such as
            -100 is fine); elsewhere an out-of-range token raises IndexError.
        mask: optional (B, T) bool or float weights (finite, >= 0; ValueError otherwise); None counts every
            position with weight 1.
        temperature: > 0; the log-probs are those of the tempered distribution (gradients include 1/temperature).
        reduction: "sum" gives the (B,) sequence log-probs (Eq. 7); "none" the (B, T) weighted per-token terms
            (0 where masked), e.g. for per-token PPO ratios.
    Returns:
        float32 (float64 for float64 logits) log-probs: half-precision logits are read natively but a sequence
        log-prob summed in half precision would be too coarse for PPO ratios.

    Extreme logits are fine (finite results where the math is finite): -inf on masked-out vocab entries
    contributes nothing; a -inf logit on the sampled token gives a log-prob of -inf and a finite gradient (the
    limit: 1 - 0 for that logit, -softmax elsewhere). A row whose logits are all -inf, +inf logits, or NaN give NaN.
    On CUDA the call synchronises the stream once to raise IndexError for out-of-range tokens (skipped while
    capturing a CUDA graph, where such rows give NaN instead).
    """
    logits, tokens, weights, temperature = check_categorical(logits, tokens, mask, temperature)
    reduction = check_reduction(reduction)
    per_token, _ = _categorical_logprob(logits, tokens, weights, temperature)
    return per_token.sum(dim=1) if reduction == "sum" else per_token
