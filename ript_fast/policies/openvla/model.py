"""OpenVLA: images + instruction -> 7 action tokens, decoded one after the other by the causal Llama LM.

The sequence of the official `predict_action` (which calls `generate` with greedy decoding):

    [BOS] [patches of the image] [instruction tokens ... 29871] [a1] ... [a6]

- the prompt is "In: What action should the robot take to {instruction}?\\nOut:" tokenized with BOS, and the empty
  token 29871 appended when it is not the last id (`openvla_oft/sequence.py`, shared);
- the projected patches of the one image are inserted right after BOS (Prismatic's layout, `multimodal_sequence`);
- attention is causal (stock transformers: unlike OpenVLA-OFT's fork, nothing is bidirectional);
- the hidden state after the final norm at 29871 gives the logits of the first action token, the one at token a_k
  those of a_{k+1}: 7 positions, each read through the LM head's rows of the action tokens only (`ActionBins`).

Decoding (`decode`) runs the prompt once, keeps every layer's keys and values (a growing cache) and then feeds one
chosen token at a time, as `generate` does with its KV cache. Re-scoring (`action_hidden_states`) runs the prompt and
the first six chosen tokens in one teacher-forced pass (or, with `prefix_grad=False`, the prompt without gradients and
only the 7 read positions with them: `cached_prefix_pass`, same values).

Batching (the official code takes one query at a time): prompts are padded after BOS (`fixed_length_prompts`); pads are
masked as keys and skipped by the position ids, so each row computes what it would alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers.cache_utils import Cache, DynamicLayer

from ript_fast.policies.openvla.action_tokens import ActionBins
from ript_fast.policies.openvla_oft.config import PrismaticConfig
from ript_fast.policies.openvla_oft.model import (
    LMSequence,
    PrismaticVLM,
    cached_prefix_pass,
    multimodal_sequence,
    run_decoder,
)
from ript_fast.policies.openvla_oft.sequence import EMPTY_TOKEN_ID

# Picks each row's next bin from its (B, n_bins) action-bin logits: argmax, or a draw at a temperature.
ChooseBins = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class OpenVLAConfig(PrismaticConfig):
    """The backbone plus OpenVLA's action tokens (config.json's n_action_bins and pad_to_multiple_of)."""

    bins: ActionBins = field(default_factory=ActionBins)
    action_dim: int = 7  # tokens per query: the length of the statistics' action bounds, as `get_action_dim`


class OpenVLA(nn.Module):
    def __init__(self, cfg: OpenVLAConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vlm = PrismaticVLM(cfg)

    def bin_weight(self) -> torch.Tensor:
        """(n_bins, D): the LM head's rows of the action tokens, bin 0 first; no other logit is ever needed."""
        first = self.cfg.bins.first_token
        return self.vlm.language_model.lm_head.weight[first : first + self.cfg.bins.n_bins]

    def bin_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., D) final hidden states -> (..., n_bins) float32 logits of the action tokens."""
        return (hidden @ self.bin_weight().t()).float()

    def _embed_bins(self, bins: torch.Tensor) -> torch.Tensor:
        return self.vlm.language_model.get_input_embeddings()(bins + self.cfg.bins.first_token)

    def sequence(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        bins: torch.Tensor | None = None,
    ) -> LMSequence:
        """[BOS] [vision] [pad]* [prompt ... 29871] [bins as tokens]: embeddings, key mask, positions."""
        if not bool((input_ids[:, -1] == EMPTY_TOKEN_ID).all()):
            raise ValueError(f"every prompt must end with the empty token {EMPTY_TOKEN_ID} (see fixed_length_prompts)")
        if pixel_values.shape[1] != 6:
            raise ValueError(f"pixel_values has {pixel_values.shape[1]} channels; OpenVLA reads one image, 6 channels")
        text = self.vlm.language_model.get_input_embeddings()(input_ids)
        prefix = self.vlm.projector(self.vlm.vision_backbone(pixel_values))
        tail = None if bins is None else self._embed_bins(bins)
        return multimodal_sequence(text, attention_mask, prefix, tail)

    @torch.no_grad()
    def decode(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, choose: ChooseBins
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Autoregressive decoding of `action_dim` tokens with a KV cache (the official `generate`).

        Returns the chosen bins (B, action_dim) int64 and the action-bin logits each was chosen from
        (B, action_dim, n_bins) float32.
        """
        lm = self.vlm.language_model.model
        seq = self.sequence(pixel_values, input_ids, attention_mask)
        cache = Cache(layers=[DynamicLayer() for _ in lm.layers])
        hidden = run_decoder(lm, seq.embeds, seq.key_mask, seq.position_ids, cache=cache, causal=True)[:, -1:]
        key_mask, position = seq.key_mask, seq.position_ids[:, -1:]
        chosen, logits = [], []
        for step in range(self.cfg.action_dim):
            logits.append(self.bin_logits(hidden[:, 0]))
            chosen.append(choose(logits[-1]))
            if step + 1 < self.cfg.action_dim:
                key_mask = torch.cat([key_mask, key_mask.new_ones(key_mask.shape[0], 1)], dim=1)
                position = position + 1
                embeds = self._embed_bins(chosen[-1][:, None])
                hidden = run_decoder(lm, embeds, key_mask, position, cache=cache, causal=True)
        return torch.stack(chosen, dim=1), torch.stack(logits, dim=1)

    def action_hidden_states(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        bins: torch.Tensor,
        prefix_grad: bool = True,
        checkpoint: bool = False,
    ) -> torch.Tensor:
        """(B, action_dim, D): the final hidden states whose action-bin logits gave `bins` (B, action_dim), teacher
        forced: at 29871 and at each of the first action_dim - 1 tokens.

        prefix_grad=False (used only while gradients are recorded): the vision + prompt prefix runs without gradients
        and only the read positions carry them (`cached_prefix_pass`, same values); checkpoint: recompute each LM
        layer in the backward.
        """
        length = self.cfg.action_dim
        lm = self.vlm.language_model.model
        if prefix_grad or not torch.is_grad_enabled():
            seq = self.sequence(pixel_values, input_ids, attention_mask, bins[:, :-1])
            hidden = run_decoder(lm, seq.embeds, seq.key_mask, seq.position_ids, checkpoint=checkpoint, causal=True)
            return hidden[:, -length:]
        with torch.no_grad():
            seq = self.sequence(pixel_values, input_ids, attention_mask, bins[:, :-1])
        return cached_prefix_pass(lm, seq, length, checkpoint, causal=True)
