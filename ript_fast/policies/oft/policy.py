"""The OFT-style regression policy: LoRA-adapted causal LM + MLP action head + scale head (Sec. 4.3).

Sequence fed to the LM decoder as embeddings: [observation tokens (state, one per camera), instruction
tokens (right-padded to `max_instruction_tokens`, padding masked), chunk * action_dim learned action
queries]; position ids skip the padding. The action queries' final hidden states go to the action head
(the mean, in normalized action space) and the scale head (log-scale). The policy is a factorized Laplace
(L1 head) or Gaussian (MSE head) over the normalized chunk.

Sampling draws from scale * `sampling_scale_factor` (the released code's exploration, 5.0); with
`score_with_sampling_scale` (default) the log-probs are those of that very distribution, so the stored and
recomputed log-probs describe the behaviour policy. The released code scores with the unscaled scale
(`score_with_sampling_scale=False`). Log-scales are clipped to `log_scale_clip` before either use.

`cond` = the raw inputs (`state`, `input_ids`, `attention_mask`, `image/<key>`): LoRA changes the whole
forward pass, so nothing before the heads can be cached for re-scoring.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ript_fast.policies.base import (
    ACTION_HIGH,
    ACTION_LOW,
    ChunkSample,
    Observation,
    Policy,
    PolicySpec,
    Scores,
    SupervisedBatch,
)
from ript_fast.policies.logprob import continuous_logprob
from ript_fast.policies.normalizer import Normalizer
from ript_fast.policies.obs_encoder import ObsConfig, ObsEncoder, images_from_cond, images_to_cond
from ript_fast.policies.oft.backbone import InstructionTokenizer, decoder_of, load_backbone
from ript_fast.policies.oft.config import OftConfig
from ript_fast.policies.oft.heads import MLPResNet, ScaleHead
from ript_fast.policies.param_groups import decay_groups


class OftPolicy(Policy):
    family = "oft"
    sft_stages = ("action", "scale")
    samples_in_eval = False  # OFT is evaluated with the mean action

    def __init__(self, cfg: OftConfig, obs_cfg: ObsConfig, spec: PolicySpec) -> None:
        super().__init__()
        if cfg.action_horizon > cfg.chunk_size:
            raise ValueError(f"action_horizon {cfg.action_horizon} exceeds chunk_size {cfg.chunk_size}")
        self.cfg = cfg
        self.action_kind = cfg.distribution
        self.action_dim = spec.action_dim
        self.action_horizon = cfg.action_horizon
        self.chunk_size = cfg.chunk_size
        self.task_names = list(spec.task_names)
        self.backbone = load_backbone(cfg)
        lm_config = self.backbone.get_base_model().config
        hidden = int(lm_config.hidden_size)
        self.tokenizer = InstructionTokenizer(cfg.backbone_path, int(lm_config.vocab_size), cfg.max_instruction_tokens)
        self.obs_encoder = ObsEncoder(obs_cfg, spec.state_dim, hidden, reduction="stack")
        self.action_queries = nn.Parameter(torch.randn(cfg.chunk_size * spec.action_dim, hidden) * 0.02)
        head_in, head_hidden = spec.action_dim * hidden, cfg.head_hidden_dim or hidden
        self.action_head = MLPResNet(cfg.head_blocks, head_in, head_hidden, spec.action_dim)
        self.scale_head = ScaleHead(cfg.head_blocks, head_in, head_hidden, spec.action_dim, cfg.scale_init_bias)
        self.action_norm = Normalizer(spec.action_dim)

    # ---- forward -------------------------------------------------------------------------------------
    def _raw_cond(self, obs: Observation) -> dict[str, torch.Tensor]:
        if obs.state is None:
            raise ValueError("the OFT policy needs a state vector in every observation (Observation.state is None)")
        ids, mask = self.tokenizer(list(obs.instructions))
        device = self.device
        cond = {"state": obs.state.to(device).float(), "input_ids": ids.to(device), "attention_mask": mask.to(device)}
        cond.update(images_to_cond(obs.images, device))
        return cond

    def _heads(self, cond: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loc, clipped log-scale), each (n, chunk, action_dim), in normalized action space."""
        images = images_from_cond(cond)
        obs_tokens = self.obs_encoder(cond["state"], images)
        n = obs_tokens.shape[0]
        embed = self.backbone.get_input_embeddings()
        text = embed(cond["input_ids"]).float()
        queries = self.action_queries.unsqueeze(0).expand(n, -1, -1)
        inputs = torch.cat([obs_tokens, text, queries], dim=1)
        ones = torch.ones(n, obs_tokens.shape[1], dtype=torch.bool, device=inputs.device)
        mask = torch.cat([ones, cond["attention_mask"].bool(), ones.new_ones(n, queries.shape[1])], dim=1)
        positions = (mask.long().cumsum(1) - 1).clamp_min(0)
        hidden = decoder_of(self.backbone)(
            inputs_embeds=inputs.to(embed.weight.dtype), attention_mask=mask.long(), position_ids=positions
        ).last_hidden_state
        per_step = hidden[:, -queries.shape[1] :].float().reshape(n, self.chunk_size, -1)
        log_scale = self.scale_head(per_step)
        if self.cfg.log_scale_clip is not None:
            low, high = self.cfg.log_scale_clip
            log_scale = log_scale.clamp(low, high)
        return self.action_head(per_step), log_scale

    # ---- acting and scoring --------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Observation, sample: bool = True) -> ChunkSample:
        cond = self._raw_cond(obs)
        loc, log_scale = self._heads(cond)
        decision = loc
        if sample:
            scale = torch.exp(log_scale) * self.cfg.sampling_scale_factor
            decision = loc + scale * self._unit_noise(loc)
        actions = self.action_norm.unnormalize(decision[:, : self.action_horizon])
        logprob = self.sequence_logprob(cond, decision)
        return ChunkSample(actions.clamp(ACTION_LOW, ACTION_HIGH), decision, logprob, cond)

    def _unit_noise(self, like: torch.Tensor) -> torch.Tensor:
        """Standard Laplace (scale 1) or standard normal noise."""
        if self.action_kind == "gaussian":
            return torch.randn_like(like)
        return torch.distributions.Laplace(torch.zeros_like(like), torch.ones_like(like)).sample()

    def score(self, cond: dict[str, torch.Tensor], decision: torch.Tensor) -> Scores:
        loc, log_scale = self._heads(cond)
        if self.cfg.score_with_sampling_scale:
            log_scale = log_scale + math.log(self.cfg.sampling_scale_factor)
        return Scores(loc=loc, log_scale=log_scale)

    def _lora_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.backbone.named_parameters() if "lora_" in name]

    def rl_param_groups(self) -> list[dict[str, Any]]:
        heads = list(self.action_head.parameters())
        if self.cfg.rl_train_scale_head:
            heads += list(self.scale_head.parameters())
        wd = self.cfg.rl_weight_decay
        return [
            *decay_groups(self._lora_parameters(), self, self.cfg.lora_lr, wd, "lora"),
            *decay_groups(heads, self, self.cfg.head_lr, wd, "heads"),
        ]

    # ---- supervised stages ---------------------------------------------------------------------------
    def sft_parameters(self, stage: str) -> list[nn.Parameter]:
        if stage == "action":
            rest = [*self.obs_encoder.parameters(), self.action_queries, *self.action_head.parameters()]
            return [*self._lora_parameters(), *rest]
        if stage == "scale":
            return list(self.scale_head.parameters())
        raise ValueError(f"OFT has no supervised stage {stage!r}; its stages are {self.sft_stages}")

    def sft_loss(self, stage: str, batch: SupervisedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """`action`: L1 (Laplace) or MSE (Gaussian) regression of the mean; `scale`: NLL of the demo actions
        under (mean, predicted scale) with the mean held fixed (the paper's scale-head pretraining)."""
        if stage not in self.sft_stages:
            raise ValueError(f"OFT has no supervised stage {stage!r}; its stages are {self.sft_stages}")
        target = self.action_norm.normalize(batch.actions.to(self.device).float())
        mask = batch.action_mask.to(self.device).float()
        cond = self._raw_cond(batch.obs)
        if stage == "action":
            loc, _ = self._heads(cond)
            err = (loc - target).abs() if self.action_kind == "laplace" else (loc - target) ** 2
            loss = (err.mean(-1) * mask).sum() / mask.sum()
            return loss, {
                "loss": loss.item(),
                "l1": ((loc - target).abs().mean(-1) * mask).sum().item() / mask.sum().item(),
            }
        loc, log_scale = self._heads(cond)
        per_step = continuous_logprob(self.action_kind, loc.detach(), log_scale, target)
        nll = -(per_step * mask).sum() / mask.sum() / self.action_dim
        return nll, {"loss": nll.item(), "nll_per_dim": nll.item(), "mean_log_scale": log_scale.mean().item()}

    def fit_normalizers(self, states: torch.Tensor, actions: torch.Tensor) -> None:
        self.obs_encoder.fit_state_normalizer(states)
        self.action_norm.fit(actions, self.cfg.action_normalization)

    # ---- checkpoints: the frozen base LM is re-read from backbone_path, not stored ---------------------
    def is_base_weight(self, key: str) -> bool:
        return key.startswith("backbone.") and "lora_" not in key
