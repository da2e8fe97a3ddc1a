"""OpenVLA-OFT: images + instruction + proprio -> the mean of a whole action chunk in one LM pass.

Parallel decoding as the official `OpenVLAForActionPrediction.predict_action` builds it:

    [BOS] [patches of image 1] ... [patches of image n] [proprio] [instruction tokens ... 29871] [0]*(C*A) [</s>]

- the prompt is "In: What action should the robot take to {instruction}?\\nOut:" tokenized with BOS, and the empty
  token 29871 appended when it is not the last id (`sequence.py`);
- C*A action placeholders (chunk_len x action_dim) whose input embeddings are zero, then the real `</s>` embedding
  (the stop token is there at training time, so it is at inference too);
- vision tokens (and the proprio token after them) are inserted right after BOS;
- attention is bidirectional over the whole sequence (the official transformers fork forces non-causal SDPA);
- the head reads the final-norm hidden states of C*A consecutive positions starting at the last prompt token (29871),
  i.e. shifted one to the left of the placeholders: the last placeholder and `</s>` are not read. The weights were
  trained with this shift, so it is kept.

Batching (the official code takes one query at a time): prompts of different lengths are padded between BOS and the
instruction tokens, so that BOS, the vision tokens and the action slots sit at the same indices in every row; padded
positions are masked as keys and skipped by the position ids, so each row computes what it would alone.

Module names follow the official checkpoint: `vlm` holds `vision_backbone`, `projector` and `language_model` (the
keys of `model-*.safetensors`); `proprio_projector` and `action_head` are the two `.pt` files.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from ript_fast.policies.openvla_oft.action_head import L1RegressionActionHead
from ript_fast.policies.openvla_oft.config import OpenVLAOFTConfig
from ript_fast.policies.openvla_oft.projectors import ProprioProjector, VisionProjector
from ript_fast.policies.openvla_oft.sequence import EMPTY_TOKEN_ID, STOP_TOKEN_ID
from ript_fast.policies.openvla_oft.vision import FusedVisionBackbone


def llama_config(cfg: OpenVLAOFTConfig) -> LlamaConfig:
    """An explicit LlamaConfig (SDPA attention): every value is the checkpoint's or transformers 4.40's default."""
    config = LlamaConfig(**cfg.llama)
    config._attn_implementation = "sdpa"
    return config


class PrismaticVLM(nn.Module):
    """The three modules stored in `model-*.safetensors`."""

    def __init__(self, cfg: OpenVLAOFTConfig) -> None:
        super().__init__()
        self.vision_backbone = FusedVisionBackbone(cfg.vision_architectures, cfg.image_sizes)
        self.projector = VisionProjector(self.vision_backbone.embed_dim, cfg.llm_dim)
        self.language_model = LlamaForCausalLM(llama_config(cfg))


def bidirectional_mask(key_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) 1 = real token -> (B, 1, T, T) additive mask: every query sees every real key (none is causal)."""
    blocked = torch.zeros(key_mask.shape, dtype=dtype, device=key_mask.device)
    blocked = blocked.masked_fill(~key_mask.bool(), torch.finfo(dtype).min)
    return blocked[:, None, None, :].expand(-1, 1, key_mask.shape[1], -1)


class OpenVLAOFT(nn.Module):
    def __init__(self, cfg: OpenVLAOFTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vlm = PrismaticVLM(cfg)
        self.proprio_projector = ProprioProjector(cfg.proprio_dim, cfg.llm_dim) if cfg.proprio_dim else None
        self.action_head = L1RegressionActionHead(cfg.llm_dim, cfg.action_dim)

    @property
    def num_action_tokens(self) -> int:
        return self.cfg.chunk_len * self.cfg.action_dim

    def prefix_embeddings(self, pixel_values: torch.Tensor, proprio: torch.Tensor | None) -> torch.Tensor:
        """The tokens inserted after BOS: projected patches of every image, then the proprio token if any."""
        expected = 6 * self.cfg.num_images
        if pixel_values.shape[1] != expected:
            raise ValueError(
                f"pixel_values has {pixel_values.shape[1]} channels; this model takes {self.cfg.num_images} "
                f"image(s), {expected} channels"
            )
        tokens = self.vlm.projector(self.vlm.vision_backbone(pixel_values))
        if self.proprio_projector is None:
            return tokens
        if proprio is None:
            raise ValueError("this model has a proprio projector: pass the normalized proprio vector")
        proprio = proprio.reshape(tokens.shape[0], -1).to(tokens.dtype)
        return torch.cat([tokens, self.proprio_projector(proprio)[:, None]], dim=1)

    def action_hidden_states(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        proprio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The final hidden states the action head reads: (B, chunk_len * action_dim, llm_dim).

        input_ids / attention_mask: (B, L) prompts from `sequence.tokenize_prompts` ([BOS] [pad]* [tokens] [29871]).
        """
        if not bool((input_ids[:, -1] == EMPTY_TOKEN_ID).all()):
            raise ValueError(f"every prompt must end with the empty token {EMPTY_TOKEN_ID} (see tokenize_prompts)")
        embed = self.vlm.language_model.get_input_embeddings()
        text = embed(input_ids)
        b, d = text.shape[0], text.shape[2]
        prefix = self.prefix_embeddings(pixel_values, proprio)
        slots = text.new_zeros(b, self.num_action_tokens, d)
        stop = embed(torch.full((b, 1), STOP_TOKEN_ID, dtype=input_ids.dtype, device=input_ids.device))
        sequence = torch.cat([text[:, :1], prefix, text[:, 1:], slots, stop], dim=1)
        ones = attention_mask.new_ones(b, prefix.shape[1])
        tail = attention_mask.new_ones(b, self.num_action_tokens + 1)
        key_mask = torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:], tail], dim=1)
        position_ids = (key_mask.long().cumsum(dim=1) - 1).clamp(min=0)
        hidden = self.vlm.language_model.model(
            inputs_embeds=sequence,
            attention_mask=bidirectional_mask(key_mask, sequence.dtype),
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state
        start = hidden.shape[1] - self.num_action_tokens - 2  # the last prompt token (29871)
        return hidden[:, start : start + self.num_action_tokens]

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        proprio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The mean action chunk in normalized action space: (B, chunk_len, action_dim)."""
        return self.action_head(self.action_hidden_states(pixel_values, input_ids, attention_mask, proprio))
