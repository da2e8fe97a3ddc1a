"""TEMPORARY: the log-prob ops from `ript_fast.ops`, or plain-PyTorch stand-ins until branch `ops` lands.

The stand-ins follow the op specs of issue 2 (masked sum over T, and over D for continuous heads) so the
policies run and are tested before the fused kernels are merged. Delete this file and import from
`ript_fast.ops` directly once `ript_fast.ops` exports all three.
"""

from __future__ import annotations

import math

import torch

try:
    from ript_fast.ops import categorical_logprob, gaussian_logprob, laplace_logprob
except ImportError:

    def categorical_logprob(
        logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        per = torch.log_softmax(logits.float() / temperature, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        return (per if mask is None else per * mask).sum(-1)

    def gaussian_logprob(
        mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        z = (actions - mean) * torch.exp(-log_std)
        per = (-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return (per if mask is None else per * mask).sum(-1)

    def laplace_logprob(
        loc: torch.Tensor, log_scale: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        per = (-(actions - loc).abs() * torch.exp(-log_scale) - log_scale - math.log(2.0)).sum(-1)
        return (per if mask is None else per * mask).sum(-1)


__all__ = ["categorical_logprob", "gaussian_logprob", "laplace_logprob"]
