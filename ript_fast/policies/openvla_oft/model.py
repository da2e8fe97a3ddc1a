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

Re-scoring with gradients (RIPT's PPO) can cache the prefix: `action_hidden_states(prefix_grad=False)` runs the whole
sequence once without gradients, keeps every layer's prefix keys and values, and runs only the action pass (last prompt
token, slots, `</s>`) with gradients (`prefix_cached_pass`: same values, no gradient through the prefix's K/V);
`checkpoint=True` recomputes each LM layer in the backward (`run_decoder`).

Module names follow the official checkpoint: `vlm` holds `vision_backbone`, `projector` and `language_model` (the
keys of `model-*.safetensors`); `proprio_projector` and `action_head` are the two `.pt` files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.utils.checkpoint
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel
from transformers.cache_utils import Cache, CacheLayerMixin

from ript_fast.policies.openvla_oft.action_head import L1RegressionActionHead
from ript_fast.policies.openvla_oft.config import OpenVLAOFTConfig, PrismaticConfig
from ript_fast.policies.openvla_oft.projectors import ProprioProjector, VisionProjector
from ript_fast.policies.openvla_oft.sequence import EMPTY_TOKEN_ID, STOP_TOKEN_ID
from ript_fast.policies.openvla_oft.vision import FusedVisionBackbone


def llama_config(cfg: PrismaticConfig) -> LlamaConfig:
    """An explicit LlamaConfig (SDPA attention): every value is the checkpoint's or transformers 4.40's default."""
    config = LlamaConfig(**cfg.llama)
    config._attn_implementation = "sdpa"
    return config


class PrismaticVLM(nn.Module):
    """The three modules stored in `model-*.safetensors` (OpenVLA and OpenVLA-OFT alike)."""

    def __init__(self, cfg: PrismaticConfig) -> None:
        super().__init__()
        self.vision_backbone = FusedVisionBackbone(cfg.vision_architectures, cfg.image_sizes)
        self.projector = VisionProjector(self.vision_backbone.embed_dim, cfg.llm_dim)
        self.language_model = LlamaForCausalLM(llama_config(cfg))


@dataclass(frozen=True)
class LMSequence:
    """The whole sequence the LM reads, laid out as in the module docstring."""

    embeds: torch.Tensor  # (B, T, D) input embeddings
    key_mask: torch.Tensor  # (B, T) 1 = a real token, 0 = padding (masked as a key, skipped by the positions)
    position_ids: torch.Tensor  # (B, T)


def multimodal_sequence(
    text: torch.Tensor, attention_mask: torch.Tensor, prefix: torch.Tensor, tail: torch.Tensor | None = None
) -> LMSequence:
    """[BOS] [prefix] [rest of the text] [tail]: the Prismatic layout (vision tokens right after BOS).

    text: (B, L, D) embedded prompts whose (B, L) `attention_mask` marks pads (0); prefix and tail are real tokens.
    Pads are masked as keys and skipped by the position ids, so each row computes what it would alone.
    """
    b = text.shape[0]
    parts = [text[:, :1], prefix, text[:, 1:]] + ([tail] if tail is not None else [])
    ones = attention_mask.new_ones(b, prefix.shape[1])
    masks = [attention_mask[:, :1], ones, attention_mask[:, 1:]]
    if tail is not None:
        masks.append(attention_mask.new_ones(b, tail.shape[1]))
    key_mask = torch.cat(masks, dim=1)
    position_ids = (key_mask.long().cumsum(dim=1) - 1).clamp(min=0)
    return LMSequence(torch.cat(parts, dim=1), key_mask, position_ids)


def attention_bias(key_mask: torch.Tensor, dtype: torch.dtype, num_queries: int, causal: bool) -> torch.Tensor:
    """(B, T) 1 = real token -> (B, 1, num_queries, T) additive mask over the keys.

    The queries are the last `num_queries` positions (all of them in a plain pass, the newest ones with a cache).
    Bidirectional (OpenVLA-OFT): every query sees every real key. Causal (OpenVLA): only the real keys at or before
    its own position.
    """
    blocked = ~key_mask.bool()[:, None, None, :].expand(-1, 1, num_queries, -1)
    if causal:
        total = key_mask.shape[1]
        query_at = torch.arange(total - num_queries, total, device=key_mask.device)
        later = torch.arange(total, device=key_mask.device)[None, :] > query_at[:, None]
        blocked = blocked | later[None, None]
    bias = torch.zeros(blocked.shape, dtype=dtype, device=key_mask.device)
    return bias.masked_fill(blocked, torch.finfo(dtype).min)


class PrefixKV(CacheLayerMixin):
    """One decoder layer's keys and values at the prefix positions (post-RoPE, as the attention reads them).

    The no-grad pass over the whole sequence records them: `update` keeps the first `length` positions and returns its
    input as is, so that pass attends exactly as the plain one. The action pass then reads them: `update` puts them in
    front of the action tokens' own keys and values and stores nothing, so a checkpointed layer's recompute in the
    backward sees the same keys as its forward.
    """

    is_sliding = False

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = length

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Nothing to allocate: the recording `update` sets the keys and values."""

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys is None:
            self.keys = key_states[:, :, : self.length].clone()
            self.values = value_states[:, :, : self.length].clone()
            self.is_initialized = True
            return key_states, value_states
        return torch.cat([self.keys, key_states], dim=2), torch.cat([self.values, value_states], dim=2)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_seq_length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def get_max_length(self) -> int:
        return -1


def run_decoder(
    lm: LlamaModel,
    embeds: torch.Tensor,
    key_mask: torch.Tensor,
    position_ids: torch.Tensor,
    cache: Cache | None = None,
    checkpoint: bool = False,
    causal: bool = False,
) -> torch.Tensor:
    """The LM's decoder layers and final norm over `embeds` (the last embeds.shape[1] positions of the sequence that
    `key_mask` describes; `position_ids` theirs): what `LlamaModel.forward` does with a 4D mask, written out so that
    each layer can be checkpointed whatever the module's train/eval mode (the trainer scores in eval mode, where
    transformers' own checkpointing is off) and with a read-only cache (transformers drops the cache of a
    checkpointed layer). `checkpoint` applies only while gradients are recorded; `causal` picks the mask
    (`attention_bias`)."""
    mask = attention_bias(key_mask, embeds.dtype, embeds.shape[1], causal)
    position_embeddings = lm.rotary_emb(embeds, position_ids=position_ids)
    hidden = embeds
    for layer in lm.layers:
        kwargs = {"attention_mask": mask, "position_embeddings": position_embeddings, "cache": cache}
        if checkpoint and torch.is_grad_enabled():
            hidden = torch.utils.checkpoint.checkpoint(layer, hidden, use_reentrant=False, **kwargs)
        else:
            hidden = layer(hidden, **kwargs)
    return lm.norm(hidden)


def cached_prefix_pass(
    lm: LlamaModel, seq: LMSequence, length: int, checkpoint: bool = False, causal: bool = False
) -> torch.Tensor:
    """The final hidden states of the last `length` positions of `seq`, with gradients through them only.

    Under no_grad the plain pass over the whole sequence records every layer's keys and values at the positions
    before them (`PrefixKV`); then those `length` positions run alone with gradients, attending to the recorded
    keys and values and their own: the plain pass's values, without the gradient through the prefix's K/V.
    """
    cache = Cache(layers=[PrefixKV(seq.embeds.shape[1] - length) for _ in lm.layers])
    with torch.no_grad():
        run_decoder(lm, seq.embeds, seq.key_mask, seq.position_ids, cache=cache, causal=causal)
    tail, positions = seq.embeds[:, -length:], seq.position_ids[:, -length:]
    return run_decoder(lm, tail, seq.key_mask, positions, cache=cache, checkpoint=checkpoint, causal=causal)


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

    @property
    def action_pass_len(self) -> int:
        """The positions of the action pass: the last prompt token (29871, the first the head reads), the action
        slots and `</s>`; the same split as the released RIPT code's."""
        return self.num_action_tokens + 2

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

    def lm_sequence(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        proprio: torch.Tensor | None = None,
    ) -> LMSequence:
        """[BOS] [vision] [proprio] [pad]* [prompt ... 29871] [0]*(C*A) [</s>]: embeddings, key mask, positions."""
        if not bool((input_ids[:, -1] == EMPTY_TOKEN_ID).all()):
            raise ValueError(f"every prompt must end with the empty token {EMPTY_TOKEN_ID} (see tokenize_prompts)")
        embed = self.vlm.language_model.get_input_embeddings()
        text = embed(input_ids)
        b, d = text.shape[0], text.shape[2]
        prefix = self.prefix_embeddings(pixel_values, proprio)
        slots = text.new_zeros(b, self.num_action_tokens, d)
        stop = embed(torch.full((b, 1), STOP_TOKEN_ID, dtype=input_ids.dtype, device=input_ids.device))
        return multimodal_sequence(text, attention_mask, prefix, torch.cat([slots, stop], dim=1))

    def action_hidden_states(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        proprio: torch.Tensor | None = None,
        prefix_grad: bool = True,
        checkpoint: bool = False,
    ) -> torch.Tensor:
        """The final hidden states the action head reads: (B, chunk_len * action_dim, llm_dim).

        input_ids / attention_mask: (B, L) prompts from `sequence.tokenize_prompts` ([BOS] [pad]* [tokens] [29871]).
        prefix_grad=False (used only while gradients are recorded): the prefix runs once without gradients and only
        the action pass carries them (`prefix_cached_pass`); the values are those of the plain pass.
        checkpoint: recompute each LM layer in the backward instead of keeping its activations.
        """
        if prefix_grad or not torch.is_grad_enabled():
            seq = self.lm_sequence(pixel_values, input_ids, attention_mask, proprio)
            lm = self.vlm.language_model.model
            hidden = run_decoder(lm, seq.embeds, seq.key_mask, seq.position_ids, checkpoint=checkpoint)
            hidden = hidden[:, -self.action_pass_len :]
        else:
            with torch.no_grad():
                seq = self.lm_sequence(pixel_values, input_ids, attention_mask, proprio)
            hidden = self.prefix_cached_pass(seq, checkpoint)
        return hidden[:, : self.num_action_tokens]

    def prefix_cached_pass(self, seq: LMSequence, checkpoint: bool = False) -> torch.Tensor:
        """The final hidden states of the action pass's positions, with gradients through the action pass only.

        1. Under no_grad, the plain pass over the whole sequence, recording every layer's keys and values at the
           prefix positions (everything before the last prompt token). Attention is bidirectional, so these depend on
           the action tokens too; taking them from the whole sequence keeps them exactly the plain pass's.
        2. With gradients, the action pass's positions alone, each layer attending to [recorded prefix K/V; their own
           K/V]: the same values as the plain pass (same keys, same masks, same positions).

        Gradient path dropped (what the released RIPT code drops too): through the prefix's keys and values, i.e.
        LoRA's effect on the prefix positions and the action tokens' effect on them (through the prefix queries).
        The gradients are those of the plain pass with the prefix's K/V detached at every layer. The inputs of the
        action pass (the embeddings of 29871 and `</s>`, zero slots) come from the frozen embedding table.

        The released code differs in step 1: it runs the prefix alone (attending to itself only), so its action-token
        values are not the plain pass's; here they are.
        """
        return cached_prefix_pass(self.vlm.language_model.model, seq, self.action_pass_len, checkpoint)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        proprio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The mean action chunk in normalized action space: (B, chunk_len, action_dim)."""
        return self.action_head(self.action_hidden_states(pixel_values, input_ids, attention_mask, proprio))
