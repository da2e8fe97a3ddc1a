"""QueST's skill prior (SkillGPT): a causal transformer over [context tokens; start token, skill tokens].

The context (goal token + observation token) is prepended to the token embeddings; one causal pre-norm
transformer runs over the whole sequence and the positions after the context predict the next token
through LayerNorm + Linear over the codebook. The start token is an extra embedding row (index = vocab).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ript_fast.policies.positional import add_positions
from ript_fast.policies.quest.cached_decoding import decode_with_cache
from ript_fast.policies.quest.transformer import causal_mask, transformer_layer


class SkillPrior(nn.Module):
    def __init__(self, vocab_size: int, dim: int, heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.start_token = vocab_size
        self.tok_emb = nn.Embedding(vocab_size + 1, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.TransformerEncoder(
            transformer_layer(nn.TransformerEncoderLayer, dim, heads, dropout), layers, enable_nested_tensor=False
        )
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, inputs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """inputs (B, L) int64 (start token first), context (B, C, dim) -> logits (B, L, vocab)."""
        x = torch.cat([context, add_positions(self.tok_emb(inputs))], dim=1)
        x = self.blocks(self.drop(x), mask=causal_mask(x.shape[1], x.device), is_causal=True)
        return self.head(self.ln_f(x[:, context.shape[1] :]))

    def generate(self, context: torch.Tensor, steps: int, pick: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """(B, steps) tokens sampled one at a time with a key/value cache; `pick(logits (B, V)) -> (B,)`."""
        return decode_with_cache(
            self.tok_emb, self.blocks.layers, self.ln_f, self.head, context, self.start_token, steps, pick
        )

    def teacher_forcing_inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) targets -> (B, L) inputs: the start token followed by all but the last target."""
        start = torch.full_like(tokens[:, :1], self.start_token)
        return torch.cat([start, tokens[:, :-1]], dim=1)
