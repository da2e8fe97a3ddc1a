"""Top-k token sampling, and the matching restriction of logits used to score what was sampled.

The released code samples from the softmax of the top-k logits but scores tokens with the full softmax, so
the PPO ratio at the first epoch is not 1 and the "old" log-prob is not the behaviour policy's. Here the
top-k support drawn at each step is recorded, and scoring restricts the recomputed logits to that same
support: sampling and scoring are one distribution, exactly (`score_support="sampled_topk"`, default). The
released behaviour is kept as `score_support="full"`: sample top-k, score with the full softmax.
"""

from __future__ import annotations

import torch

NEG_INF = float("-inf")


def top_k_support(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """(..., V) logits -> (..., k) int64 indices of the k largest (k = V when top_k <= 0 or >= V)."""
    k = logits.shape[-1] if top_k <= 0 else min(top_k, logits.shape[-1])
    return torch.topk(logits, k, dim=-1).indices


def restrict_to_support(logits: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """(..., V) logits with every entry outside `support` (..., k) set to -inf; gradients flow to the rest."""
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, support, True)
    return logits.masked_fill(~keep, NEG_INF)


def draw(logits: torch.Tensor, greedy: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, V) logits (already restricted / tempered) -> (n,) int64: the argmax, or a multinomial draw.

    NaN logits (a diverged policy) raise FloatingPointError: argmax would pick a token silently, and
    multinomial fails with a bare error on CPU and a device-side assert on CUDA."""
    if torch.isnan(logits).any():
        raise FloatingPointError("the policy's token logits hold NaN")
    if greedy:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
