"""QueST's skill autoencoder: action chunk -> skill tokens -> action chunk (stage 1, L1 reconstruction).

Encoder: Linear to the model width, the causal temporal conv (downsampling T actions to T/downsample
steps), sinusoidal positions and a causal pre-norm transformer; FSQ turns each step into a token.
Decoder: T fixed sinusoidal queries, a causal pre-norm transformer decoder cross-attending to the codes,
and a Linear to the action dimension. Causality on both sides means the first tokens describe the first
actions, which is what lets the prior's early tokens matter for the executed head of the chunk.
"""

from __future__ import annotations

import torch
from torch import nn

from ript_fast.policies.positional import add_positions, sinusoidal
from ript_fast.policies.quest.fsq import FSQ
from ript_fast.policies.quest.temporal_conv import CausalTemporalConv
from ript_fast.policies.quest.transformer import causal_mask, transformer_layer


class SkillAutoencoder(nn.Module):
    def __init__(
        self,
        action_dim: int,
        chunk_size: int,
        downsample: int,
        levels: list[int],
        encoder_dim: int,
        decoder_dim: int,
        encoder_heads: int,
        encoder_layers: int,
        decoder_heads: int,
        decoder_layers: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if chunk_size % downsample:
            raise ValueError(f"chunk_size {chunk_size} must be a multiple of downsample {downsample}")
        self.chunk_size = chunk_size
        self.decoder_dim = decoder_dim
        self.action_proj = nn.Linear(action_dim, encoder_dim)
        self.conv = CausalTemporalConv(encoder_dim, downsample)
        self.encoder = nn.TransformerEncoder(
            transformer_layer(nn.TransformerEncoderLayer, encoder_dim, encoder_heads, dropout),
            encoder_layers,
            enable_nested_tensor=False,
        )
        self.fsq = FSQ(levels, encoder_dim, decoder_dim)
        self.decoder = nn.TransformerDecoder(
            transformer_layer(nn.TransformerDecoderLayer, decoder_dim, decoder_heads, dropout), decoder_layers
        )
        self.action_head = nn.Linear(decoder_dim, action_dim)

    @property
    def codebook_size(self) -> int:
        return self.fsq.codebook_size

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """(B, T, A) -> (B, T / downsample, encoder_dim) latents before quantization."""
        x = add_positions(self.conv(self.action_proj(actions)))
        return self.encoder(x, mask=causal_mask(x.shape[1], x.device), is_causal=True)

    def decode(self, codes: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """(B, tokens, decoder_dim) codes -> (B, steps, A): the first `steps` actions of the chunk (default all).

        The decoder is causal over its queries, so the first actions do not depend on the later queries:
        decoding only the executed head of a chunk gives the same actions for a fraction of the cost."""
        steps = self.chunk_size if steps is None else steps
        queries = sinusoidal(steps, self.decoder_dim, codes.device).expand(codes.shape[0], -1, -1)
        x = self.decoder(queries, codes, tgt_mask=causal_mask(steps, codes.device), tgt_is_causal=True)
        return self.action_head(x)

    def tokens(self, actions: torch.Tensor) -> torch.Tensor:
        """(B, T, A) -> (B, T / downsample) int64 skill tokens."""
        return self.fsq(self.encode(actions))[1]

    def decode_tokens(self, tokens: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """(B, tokens) int64 -> (B, steps, A) actions (default: the whole chunk)."""
        return self.decode(self.fsq.indices_to_codes(tokens), steps)

    def forward(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction (B, T, A) with straight-through gradients, and the tokens."""
        codes, tokens = self.fsq(self.encode(actions))
        return self.decode(codes), tokens
