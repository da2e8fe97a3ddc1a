"""Per-element log-probs of a policy's decisions, through the fused `ript_fast.ops` kernels.

The ops reduce over the time axis ((B, T, ...) -> (B,)); the trainer needs one log-prob per token (QueST:
the released code's per-token PPO ratio) or per chunk step (OFT: `sum_on_action_dim`). So the (n, L, ...)
scores are reshaped to n*L rows of length 1 and the result viewed back as (n, L): every element is its own
row, and the op's reduction only sums the action dimensions of a continuous step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ript_fast.ops import categorical_logprob, gaussian_logprob, laplace_logprob, linear_categorical_logprob

if TYPE_CHECKING:
    from ript_fast.policies.base import ActionKind, Scores


def token_logprob(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """logits (n, L, V), tokens (n, L) -> (n, L) log softmax(logits)[token]."""
    n, length, vocab = logits.shape
    rows = categorical_logprob(logits.reshape(n * length, 1, vocab), tokens.reshape(n * length, 1))
    return rows.view(n, length)


def continuous_logprob(
    kind: ActionKind, loc: torch.Tensor, log_scale: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """loc/log_scale/values (n, L, D) -> (n, L): the density of each step, summed over its D dimensions."""
    n, length, dim = loc.shape
    op = gaussian_logprob if kind == "gaussian" else laplace_logprob
    rows = op(
        loc.reshape(n * length, 1, dim), log_scale.reshape(n * length, 1, dim), values.reshape(n * length, 1, dim)
    )
    return rows.view(n, length)


def per_element_logprob(kind: ActionKind, scores: Scores, decision: torch.Tensor) -> torch.Tensor:
    """(n, L) log-probs of `decision` under `scores` for a policy of the given action kind."""
    if kind == "categorical":
        if scores.linear_head:
            return linear_categorical_logprob(
                scores.hidden, scores.head_weight, decision, temperature=scores.temperature, reduction="none"
            )
        return token_logprob(scores.token_logits(), decision)
    if scores.loc is None or scores.log_scale is None:
        raise ValueError(f"a {kind} policy's Scores must hold loc and log_scale")
    return continuous_logprob(kind, scores.loc, scores.log_scale, decision)
