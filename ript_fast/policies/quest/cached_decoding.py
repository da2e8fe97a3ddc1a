"""Autoregressive decoding of the skill prior with a key/value cache.

Sampling L tokens by re-running the prior over the whole [context; tokens] sequence costs O(L^2) positions
per query; rollouts query the policy every few env steps for every env, so this dominates a rollout on the
CPU. Here each step feeds only the newest token through the layers, attending to the cached keys and values
of everything before it. The layers are the prior's own `nn.TransformerEncoderLayer`s (pre-norm), evaluated
with the same weights and the same math, so the logits equal the full recompute's up to float rounding.

Inference only (no dropout): the prior must be in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ript_fast.policies.positional import sinusoidal


class _LayerCache:
    """The keys and values (B, heads, positions so far, head_dim) of one layer."""

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys = k if self.keys is None else torch.cat([self.keys, k], dim=2)
        self.values = v if self.values is None else torch.cat([self.values, v], dim=2)
        return self.keys, self.values


def _layer_step(layer: nn.TransformerEncoderLayer, x: torch.Tensor, cache: _LayerCache) -> torch.Tensor:
    """One pre-norm encoder layer on the new positions x (B, T_new, D), causal over cache + new."""
    attn = layer.self_attn
    b, t, d = x.shape
    heads = attn.num_heads
    q, k, v = F.linear(layer.norm1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (z.view(b, t, heads, d // heads).transpose(1, 2) for z in (q, k, v))
    past = 0 if cache.keys is None else cache.keys.shape[2]
    keys, values = cache.extend(k, v)
    # new position i (absolute past + i) sees every cached position and the new ones up to itself
    allowed = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
    y = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed)
    x = x + attn.out_proj(y.transpose(1, 2).reshape(b, t, d))
    return x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))


def decode_with_cache(
    embed: nn.Embedding,
    layers: nn.ModuleList,
    final_norm: nn.LayerNorm,
    head: nn.Linear,
    context: torch.Tensor,
    start_token: int,
    steps: int,
    pick: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Generates `steps` tokens after [context; start token]; `pick(logits (B, V)) -> (B,)` chooses each one.

    Returns the (B, steps) int64 tokens.
    """
    if any(layer.training for layer in layers):
        raise RuntimeError("cached decoding is for inference: put the prior in eval mode")
    if not all(layer.norm_first for layer in layers):
        raise ValueError("cached decoding implements pre-norm layers (norm_first=True), as QueST's prior uses")
    b = context.shape[0]
    positions = sinusoidal(steps, context.shape[2], context.device).to(context.dtype)
    caches = [_LayerCache() for _ in layers]
    start = torch.full((b, 1), start_token, dtype=torch.long, device=context.device)
    x = torch.cat([context, embed(start) + positions[:1]], dim=1)
    tokens = []
    for step in range(steps):
        for layer, cache in zip(layers, caches, strict=True):
            x = _layer_step(layer, x, cache)
        token = pick(head(final_norm(x[:, -1])))
        tokens.append(token)
        if step + 1 < steps:
            x = embed(token.unsqueeze(1)) + positions[step + 1 : step + 2]
    return torch.stack(tokens, dim=1)
