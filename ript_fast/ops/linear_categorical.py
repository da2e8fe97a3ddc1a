"""Token log-probs (and the PPO loss) straight from the last hidden states and the LM head, chunked over rows.

For an LM head over a large vocabulary (OpenVLA: V = 32000, H = 4096) the logits `hidden @ weight.T` of all
B x T positions are the largest tensor of an update (16k rows: 2 GiB in float32, and eager autograd keeps two or
three of them). These ops never hold more than one chunk of rows: per chunk of `chunk_size` rows they compute
the chunk's logits with one matmul, run the categorical row kernel of `categorical_logprob` on it (one online
log-sum-exp per row, log-prob at the token) and keep only the (B, T) log-probs and row lse. The backward
recomputes each chunk's logits (storing them is what this op avoids), has the same row kernel write the logits
gradient of the chunk from the saved lse, and turns it into the hidden, weight and bias gradients with matmuls.
The PPO loss, a scalar, needs no recomputation: its forward computes every gradient chunk by chunk with the
fused kernel of `categorical_ppo_loss` (see the comment above `_ppo_forward`) and its backward only scales them.
This is the chunking of Liger-Kernel's fused linear cross-entropy, with a fixed row count per chunk (Liger sizes
chunks in proportion to B x T, which keeps its memory proportional to B x T) so that peak memory is flat in B x T.

Where the matmul runs, and why: the C++ core takes raw buffers and links no BLAS (torch stays out of its ABI,
see `_buffers.py`), and a hand-written GEMM would be far slower than the one torch already calls (MKL/oneDNN on
the CPU, cuBLAS on a GPU). So the chunk loop lives in this file, inside the custom op's kernel: torch.mm for the
(chunk, H) x (H, V) products, our core for the per-row softmax math, shared with the categorical ops (no second
copy of it). To torch.compile the op is one opaque node, as every op of `ript_fast.ops`.

Precision: the chunk logits are what the model's own head would give (`hidden @ weight.T` in the input dtype:
BLAS accumulates in float32 and, for bf16/fp16 inputs, rounds the logits to the input dtype, as eager does);
the row math accumulates in float32 (float64 for float64 inputs), and the weight and bias gradients are summed
over chunks in that accumulation dtype before being cast back.
"""

from __future__ import annotations

import torch

from ript_fast.ops._autograd import FusedOp, first_order_only, scale_saved_grad
from ript_fast.ops._buffers import launch, maybe_ref, ref
from ript_fast.ops._checks import (
    acc_dtype,
    check_floating,
    check_ndim,
    check_positive,
    check_ppo_targets,
    check_reduction,
    check_same_device,
    check_shape,
    check_tensor,
    check_tokens,
    check_weight_values,
    check_weights,
)
from ript_fast.ops.ppo_clip_loss import PPOLoss, check_clip, check_targets, with_stats

# Default rows per chunk: as many as fit 2^25 logits (128 MiB in float32; 1048 rows at V = 32000). Smaller chunks
# cost BLAS efficiency: on the 2-core dev VM, 4096 rows of H 4096, V 32000 took 28-30 s a PPO step in chunks of
# 262 rows, 26 s in chunks of 1048 (the (V, H) head is re-packed per call); 128 MiB is still small next to the
# head itself (500 MiB in float32) and, at 16k rows, under a tenth of eager's peak.
CHUNK_LOGITS = 1 << 25


def default_chunk_rows(vocab: int) -> int:
    """Rows per chunk so that one chunk of logits holds about CHUNK_LOGITS values."""
    return max(1, CHUNK_LOGITS // max(1, vocab))


def _chunk_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor) -> None:
    """out = hidden @ weight.T (+ bias): one chunk of logits, written into a reused (rows, V) buffer."""
    if bias is None:
        torch.mm(hidden, weight.t(), out=out)
    else:
        torch.addmm(bias, hidden, weight.t(), out=out)


def _check_token_range(tokens: torch.Tensor, weights: torch.Tensor | None, vocab: int) -> None:
    """IndexError naming the first (b, t) whose token is outside [0, V) where the mask is non-zero.

    The row kernel checks this too, but it sees one chunk as a (rows, 1) batch and would name the position
    within the chunk; this check names it in the caller's (B, T). One comparison over (B, T) (one sync on CUDA).
    """
    bad = (tokens < 0) | (tokens >= vocab)
    if weights is not None:
        bad &= weights != 0
    if tokens.numel() == 0 or not bool(bad.any()):
        return
    b, t = (int(i) for i in bad.nonzero()[0])
    raise IndexError(f"tokens: value {int(tokens[b, t])} at (b={b}, t={t}) is outside [0, V={vocab})")


def _rows(
    hidden: torch.Tensor, tokens: torch.Tensor, weights: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(B, T, ...) -> (B T, ...) row views (hidden copied only if its layout has no such view)."""
    rows = hidden.shape[0] * hidden.shape[1]
    flat_weights = None if weights is None else weights.reshape(rows)
    return hidden.reshape(rows, hidden.shape[2]), tokens.reshape(rows), flat_weights


def _as_batch(t: torch.Tensor | None) -> torch.Tensor | None:
    """A (rows,) or (rows, V) chunk as the (B, T) / (B, T, V) layout of the row kernels: (rows, 1[, V])."""
    return None if t is None else t.unsqueeze(1)


def _forward(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    tokens: torch.Tensor,
    weights: torch.Tensor | None,
    temperature: float,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    check_weight_values(weights)
    _check_token_range(tokens, weights, weight.shape[0])
    logp, lse = _outputs(hidden)
    h, tok, w = _rows(hidden, tokens, weights)
    flat_logp, flat_lse = logp.view(-1), lse.view(-1)
    buf = hidden.new_empty((min(chunk, h.shape[0]), weight.shape[0]))
    for start in range(0, h.shape[0], chunk):
        end = min(start + chunk, h.shape[0])
        logits = buf[: end - start]
        _chunk_logits(h[start:end], weight, bias, logits)
        launch(
            "categorical_logprob",
            hidden.device,
            logits=ref(_as_batch(logits)),
            tokens=ref(_as_batch(tok[start:end])),
            mask=maybe_ref(_as_batch(None if w is None else w[start:end])),
            temperature=temperature,
            logp=ref(_as_batch(flat_logp[start:end])),
            lse=ref(_as_batch(flat_lse[start:end])),
        )
    return logp, lse


def _outputs(hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (B, T) weighted log-probs and row lse, in the accumulation dtype."""
    logp = hidden.new_empty(hidden.shape[:2], dtype=acc_dtype(hidden.dtype))
    return logp, torch.empty_like(logp)


def _forward_fake(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    tokens: torch.Tensor,
    weights: torch.Tensor | None,
    temperature: float,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    return _outputs(hidden)


def _grad_outputs(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, needs: tuple[bool, bool, bool]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradient buffers of hidden, weight and bias: (0,) placeholders for those not wanted (a custom op returns
    tensors, never None). The weight and bias ones are accumulators in the accumulation dtype."""
    acc = acc_dtype(hidden.dtype)
    return (
        hidden.new_empty(hidden.shape if needs[0] else (0,)),
        weight.new_zeros(weight.shape if needs[1] else (0,), dtype=acc),
        weight.new_zeros(bias.shape if needs[2] and bias is not None else (0,), dtype=acc),
    )


def _project_chunk(
    grad_logits: torch.Tensor,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    grads: tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None],
    scale: float = 1.0,
) -> None:
    """Turns one chunk's logits gradient (rows, V) into gradients of the head's inputs, times `scale`:
    grad_hidden rows = g @ weight (written), grad_weight += g.T @ hidden and grad_bias += sum of g's rows
    (accumulated in the accumulators' dtype; a half-precision product is widened per chunk). None: not wanted."""
    grad_hidden, grad_weight, grad_bias = grads
    if grad_hidden is not None:
        torch.mm(grad_logits, weight, out=grad_hidden)
        if scale != 1.0:
            grad_hidden.mul_(scale)
    if grad_weight is not None:
        if grad_logits.dtype == grad_weight.dtype:
            grad_weight.addmm_(grad_logits.t(), hidden, alpha=scale)
        else:
            grad_weight.add_(torch.mm(grad_logits.t(), hidden), alpha=scale)
    if grad_bias is not None:
        grad_bias.add_(grad_logits.sum(dim=0, dtype=grad_bias.dtype), alpha=scale)


def _backward_kernel(
    grad_logp: torch.Tensor,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    tokens: torch.Tensor,
    weights: torch.Tensor | None,
    lse: torch.Tensor,
    temperature: float,
    chunk: int,
    need_hidden: bool,
    need_weight: bool,
    need_bias: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    grad_hidden, grad_weight, grad_bias = _grad_outputs(hidden, weight, bias, (need_hidden, need_weight, need_bias))
    h, tok, w = _rows(hidden, tokens, weights)
    g_logp, flat_lse = grad_logp.reshape(-1), lse.reshape(-1)
    g_hidden = grad_hidden.view(h.shape) if need_hidden else None
    rows = min(chunk, h.shape[0])
    logits_buf = hidden.new_empty((rows, weight.shape[0]))
    grad_buf = torch.empty_like(logits_buf)
    for start in range(0, h.shape[0], chunk):
        end = min(start + chunk, h.shape[0])
        logits, grad_logits = logits_buf[: end - start], grad_buf[: end - start]
        _chunk_logits(h[start:end], weight, bias, logits)
        launch(
            "categorical_logprob_backward",
            hidden.device,
            grad_logp=ref(_as_batch(g_logp[start:end])),
            logits=ref(_as_batch(logits)),
            tokens=ref(_as_batch(tok[start:end])),
            mask=maybe_ref(_as_batch(None if w is None else w[start:end])),
            lse=ref(_as_batch(flat_lse[start:end])),
            temperature=temperature,
            grad_logits=ref(_as_batch(grad_logits)),
        )
        _project_chunk(
            grad_logits,
            h[start:end],
            weight,
            (
                None if g_hidden is None else g_hidden[start:end],
                grad_weight if need_weight else None,
                grad_bias if need_bias and bias is not None else None,
            ),
        )
    return grad_hidden, grad_weight.to(weight.dtype), grad_bias.to(weight.dtype)


def _backward_kernel_fake(
    grad_logp: torch.Tensor,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    tokens: torch.Tensor,
    weights: torch.Tensor | None,
    lse: torch.Tensor,
    temperature: float,
    chunk: int,
    need_hidden: bool,
    need_weight: bool,
    need_bias: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    grad_hidden, grad_weight, grad_bias = _grad_outputs(hidden, weight, bias, (need_hidden, need_weight, need_bias))
    return grad_hidden, grad_weight.to(weight.dtype), grad_bias.to(weight.dtype)


_linear_categorical_logprob_backward = FusedOp(
    "ript_fast::linear_categorical_logprob_backward", _backward_kernel, _backward_kernel_fake
)


def _setup(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: tuple) -> None:
    hidden, weight, bias, tokens, weights, temperature, chunk = inputs
    _, lse = output
    ctx.mark_non_differentiable(lse)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(hidden, weight, bias, tokens, weights, lse)
    ctx.temperature = temperature
    ctx.chunk = chunk


def _backward(
    ctx: torch.autograd.function.FunctionCtx, grad_logp: torch.Tensor | None, _grad_lse: torch.Tensor | None
) -> tuple[torch.Tensor | None, ...]:
    none = (None,) * 4
    if grad_logp is None:
        return (None, None, None, *none)
    first_order_only("linear_categorical_logprob")
    hidden, weight, bias, tokens, weights, lse = ctx.saved_tensors
    needs = ctx.needs_input_grad[:3]
    grad_hidden, grad_weight, grad_bias = _linear_categorical_logprob_backward(
        grad_logp, hidden, weight, bias, tokens, weights, lse, ctx.temperature, ctx.chunk, *needs
    )
    return (
        grad_hidden if needs[0] else None,
        grad_weight if needs[1] else None,
        grad_bias if needs[2] else None,
        *none,
    )


_linear_categorical_logprob = FusedOp(
    "ript_fast::linear_categorical_logprob", _forward, _forward_fake, _setup, _backward
)


def check_linear_head(
    hidden: object, weight: object, bias: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validates hidden (B, T, H), weight (V, H) and bias (V,) and promotes them to one floating dtype.

    hidden needs no particular layout (a (B T, H) view, else one (B T, H) copy); weight is used as given (a
    transposed view is a BLAS operand like any other).
    """
    hidden = check_tensor("hidden", hidden)
    check_ndim("hidden", hidden, 3, "(B, T, H)")
    check_floating("hidden", hidden)
    weight = check_tensor("weight", weight)
    check_ndim("weight", weight, 2, "(V, H)")
    check_floating("weight", weight)
    if weight.shape[0] < 1:
        raise ValueError("weight must have a vocabulary of V >= 1 rows, got V=0")
    if weight.shape[1] != hidden.shape[2]:
        raise ValueError(
            f"weight must have shape (V, H) with H = hidden's H = {hidden.shape[2]}, got {tuple(weight.shape)}"
        )
    dtype = torch.promote_types(hidden.dtype, weight.dtype)
    if bias is not None:
        bias = check_tensor("bias", bias)
        check_floating("bias", bias)
        check_shape("bias", bias, (weight.shape[0],), "(V,)")
        dtype = torch.promote_types(dtype, bias.dtype)
        bias = bias.to(dtype)
    check_same_device(hidden=hidden, weight=weight, bias=bias)
    return hidden.to(dtype), weight.to(dtype), bias


def check_chunk_size(chunk_size: object, vocab: int) -> int:
    """Rows per chunk: a positive int, or None for `default_chunk_rows(V)`."""
    if chunk_size is None:
        return default_chunk_rows(vocab)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(f"chunk_size must be an int or None, got {type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return chunk_size


def linear_categorical_logprob(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    bias: torch.Tensor | None = None,
    reduction: str = "sum",
    *,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """`categorical_logprob(hidden @ weight.T + bias, tokens, mask, temperature, reduction)` without the logits.

    Args:
        hidden: (B, T, H) floating, any strides: the last hidden states. Differentiable.
        weight: (V, H) floating: the LM head (e.g. `lm_head.weight`); gets a gradient when it requires one.
        tokens: (B, T) int64/int32 in [0, V) where the mask is non-zero (never read elsewhere; IndexError naming
            (b, t) otherwise).
        mask: optional (B, T) bool or float weights (finite, >= 0).
        temperature: > 0, the logits are divided by it (as in `categorical_logprob`).
        bias: optional (V,) head bias; differentiable.
        reduction: "sum" -> (B,) sequence log-probs; "none" -> (B, T) weighted per-token log-probs.
        chunk_size: rows of logits computed at a time (default: about 2^25 logits, 1048 rows at V = 32000).
            Peak memory above the inputs and gradients is about two (chunk_size, V) buffers in the backward,
            one in the forward, whatever B x T.
    Returns:
        float32 (float64 for float64 inputs) log-probs. hidden, weight and bias are promoted to one dtype.

    Costs one (chunk, H) x (H, V) matmul per chunk in the forward and, in the backward, the recomputed logits
    plus one matmul per wanted gradient (hidden, weight): four matmuls to eager's three when the head is
    trained, three to eager's two when it is frozen; what it buys is memory flat in B x T.
    """
    hidden, weight, bias = check_linear_head(hidden, weight, bias)
    batch_steps = tuple(hidden.shape[:2])
    tokens = check_tokens("tokens", tokens, batch_steps)
    weights = check_weights(mask, batch_steps, acc_dtype(hidden.dtype), "(B, T)")
    check_same_device(hidden=hidden, tokens=tokens, mask=weights)
    temperature = check_positive("temperature", temperature)
    reduction = check_reduction(reduction)
    chunk = check_chunk_size(chunk_size, weight.shape[0])
    per_token, _ = _linear_categorical_logprob(hidden, weight, bias, tokens, weights, temperature, chunk)
    return per_token.sum(dim=1) if reduction == "sum" else per_token


# ----------------------------------------------------------------------------------------------------------
# The PPO loss: a scalar, so (as in categorical_ppo_loss) every gradient is computed in the forward, one pass of
# the fused categorical_ppo_loss kernel per chunk, and the backward only scales it; no logits are recomputed.
#
# The loss is a weighted mean over units (tokens for per-token ratios, rollouts for sequence ratios), so it
# splits over chunks of whole units: with W_c the weight of chunk c's units and W the total, the loss, the
# statistics and every gradient are sum_c (W_c / W) x (the kernel's result on chunk c alone). A rollout's
# tokens must share a chunk (its ratio depends on all of them), so sequence-level chunks hold whole rollouts:
# max(1, chunk_size // T) of them, i.e. T rows when one rollout exceeds chunk_size.


def _unit_weights(
    weights: torch.Tensor | None, sequence: bool, batch: int, steps: int, like: torch.Tensor
) -> torch.Tensor:
    """The weight of each unit of the mean: per token, the mask; per rollout, 1 if it has a valid token."""
    if weights is None:
        return like.new_ones((batch,) if sequence else (batch * steps,))
    return (weights != 0).any(dim=1).to(weights.dtype) if sequence else weights.reshape(-1)


def _chunk_scales(unit_weights: torch.Tensor, units_per_chunk: int) -> list[float]:
    """W_c / W per chunk (0 for every chunk when W == 0: the kernels then give a loss of 0), one host read."""
    totals = torch.zeros(
        -(-unit_weights.numel() // units_per_chunk), dtype=unit_weights.dtype, device=unit_weights.device
    )
    totals.index_add_(
        0, torch.arange(unit_weights.numel(), device=unit_weights.device) // units_per_chunk, unit_weights
    )
    whole = totals.sum()
    return (torch.where(whole > 0, totals / whole, torch.zeros_like(totals))).tolist()


# loss, stats (3,), grad_hidden, grad_weight, grad_bias
PpoOutputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _ppo_outputs(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, needs: tuple[bool, bool, bool]
) -> PpoOutputs:
    acc = acc_dtype(hidden.dtype)
    return (
        hidden.new_zeros((), dtype=acc),
        hidden.new_zeros((3,), dtype=acc),
        *_grad_outputs(hidden, weight, bias, needs),
    )


def _ppo_forward(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    tokens: torch.Tensor,
    weights: torch.Tensor | None,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
    clip_eps_high: float,
    temperature: float,
    chunk: int,
    need_hidden: bool,
    need_weight: bool,
    need_bias: bool,
) -> PpoOutputs:
    check_ppo_targets(logp_old, advantages, weights)
    _check_token_range(tokens, weights, weight.shape[0])
    batch, steps = tokens.shape
    sequence = logp_old.dim() == 1
    loss, stats, grad_hidden, grad_weight, grad_bias = _ppo_outputs(
        hidden, weight, bias, (need_hidden, need_weight, need_bias)
    )
    need_any = need_hidden or need_weight or need_bias
    # Units as the kernel's (B, T) rows: (rollouts, T) for sequence ratios, (tokens, 1) for per-token ones.
    cols = steps if sequence else 1
    units = batch if sequence else batch * steps
    h, tok, w = _rows(hidden, tokens, weights)
    tok, w = tok.view(units, cols), None if w is None else w.view(units, cols)
    old = logp_old if sequence else logp_old.reshape(units, 1)
    adv = advantages if sequence else advantages.repeat_interleave(steps)
    per_chunk = max(1, chunk // cols)
    scales = _chunk_scales(_unit_weights(weights, sequence, batch, steps, loss), per_chunk)
    g_hidden = grad_hidden.view(h.shape) if need_hidden else None
    logits_buf = hidden.new_empty((min(per_chunk, units) * cols, weight.shape[0]))
    grad_buf = torch.empty_like(logits_buf) if need_any else None
    chunk_loss, chunk_stats = torch.empty_like(loss), torch.empty_like(stats)
    for index, u0 in enumerate(range(0, units, per_chunk)):
        u1 = min(u0 + per_chunk, units)
        r0, r1 = u0 * cols, u1 * cols
        logits = logits_buf[: r1 - r0]
        _chunk_logits(h[r0:r1], weight, bias, logits)
        grad_logits = None if grad_buf is None else grad_buf[: r1 - r0]
        launch(
            "categorical_ppo_loss",
            hidden.device,
            logits=ref(logits.view(u1 - u0, cols, -1)),
            tokens=ref(tok[u0:u1]),
            mask=maybe_ref(None if w is None else w[u0:u1]),
            logp_old=ref(old[u0:u1]),
            advantages=ref(adv[u0:u1]),
            clip_eps=clip_eps,
            clip_eps_high=clip_eps_high,
            temperature=temperature,
            loss=ref(chunk_loss),
            stats=ref(chunk_stats),
            grad_logits=None if grad_logits is None else ref(grad_logits.view(u1 - u0, cols, -1)),
        )
        loss.add_(chunk_loss, alpha=scales[index])
        stats.add_(chunk_stats, alpha=scales[index])
        if grad_logits is not None:
            grads = (
                None if g_hidden is None else g_hidden[r0:r1],
                grad_weight if need_weight else None,
                grad_bias if need_bias and bias is not None else None,
            )
            _project_chunk(grad_logits, h[r0:r1], weight, grads, scales[index])
    return loss, stats, grad_hidden, grad_weight.to(weight.dtype), grad_bias.to(weight.dtype)


def _ppo_forward_fake(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    tokens: torch.Tensor,
    weights: torch.Tensor | None,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
    clip_eps_high: float,
    temperature: float,
    chunk: int,
    need_hidden: bool,
    need_weight: bool,
    need_bias: bool,
) -> PpoOutputs:
    loss, stats, grad_hidden, grad_weight, grad_bias = _ppo_outputs(
        hidden, weight, bias, (need_hidden, need_weight, need_bias)
    )
    return loss, stats, grad_hidden, grad_weight.to(weight.dtype), grad_bias.to(weight.dtype)


def _ppo_setup(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: tuple) -> None:
    _, stats, *grads = output
    ctx.mark_non_differentiable(stats, *grads)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(*grads)
    ctx.needs = tuple(inputs[11:14])


def _ppo_backward(
    ctx: torch.autograd.function.FunctionCtx, grad_loss: torch.Tensor | None, *_: torch.Tensor | None
) -> tuple[torch.Tensor | None, ...]:
    none = (None,) * 11
    if grad_loss is None:
        return (None, None, None, *none)
    first_order_only("linear_categorical_ppo_loss")
    grads = ctx.saved_tensors
    return (
        *(scale_saved_grad(g, grad_loss) if need else None for g, need in zip(grads, ctx.needs, strict=True)),
        *none,
    )


_linear_categorical_ppo_loss = FusedOp(
    "ript_fast::linear_categorical_ppo_loss", _ppo_forward, _ppo_forward_fake, _ppo_setup, _ppo_backward
)


def linear_categorical_ppo_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    tokens: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor | None = None,
    clip_eps: float = 0.2,
    temperature: float = 1.0,
    *,
    bias: torch.Tensor | None = None,
    clip_eps_high: float | None = None,
    return_stats: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor | PPOLoss:
    """`categorical_ppo_loss(hidden @ weight.T + bias, tokens, logp_old, advantages, ...)` without the logits.

    Same arguments and result as `categorical_ppo_loss` (ratio level chosen by logp_old's shape: (B,) sequence,
    (B, T) per token), with hidden, weight, bias and chunk_size as in `linear_categorical_logprob`. The
    gradients of hidden, weight and bias (those that require one, with grad mode on) are computed in the
    forward, chunk by chunk, by the fused kernel of `categorical_ppo_loss`; the backward only scales them. Per
    chunk that is one matmul for the logits and one per wanted gradient: eager's count, with no (B, T, V)
    tensor. Sequence-level chunks hold whole rollouts (max(1, chunk_size // T) of them).
    """
    hidden, weight, bias = check_linear_head(hidden, weight, bias)
    batch_steps = tuple(hidden.shape[:2])
    tokens = check_tokens("tokens", tokens, batch_steps)
    acc = acc_dtype(hidden.dtype)
    weights = check_weights(mask, batch_steps, acc, "(B, T)")
    temperature = check_positive("temperature", temperature)
    sequence = isinstance(logp_old, torch.Tensor) and logp_old.dim() == 1
    shape, layout = (
        (batch_steps[:1], "(B,) for sequence ratios") if sequence else (batch_steps, "(B, T) for per-token ratios")
    )
    logp_old, advantages = check_targets(logp_old, advantages, shape, layout, acc)
    check_same_device(hidden=hidden, tokens=tokens, mask=weights, logp_old=logp_old, advantages=advantages)
    low, high = check_clip(clip_eps, clip_eps_high)
    chunk = check_chunk_size(chunk_size, weight.shape[0])
    grad_on = torch.is_grad_enabled()
    needs = (
        grad_on and hidden.requires_grad,
        grad_on and weight.requires_grad,
        grad_on and bias is not None and bias.requires_grad,
    )
    loss, stats, *_ = _linear_categorical_ppo_loss(
        hidden, weight, bias, tokens, weights, logp_old, advantages, low, high, temperature, chunk, *needs
    )
    return with_stats(loss, stats) if return_stats else loss
