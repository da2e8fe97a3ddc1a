"""The QueST-style tokenized policy: skill autoencoder + observation/goal context + autoregressive prior.

`act` embeds the observations and goals into a 2-token context [goal, obs], samples `chunk_size/downsample`
skill tokens autoregressively (top-k, temperature), decodes them to a chunk of actions and returns the
first `action_horizon`. What `cond` holds depends on `rl_trainable`:
- only the prior trains (the paper's setting): `cond = {"context": (n, 2, embed_dim)}`, the cached context
  embeddings, so re-scoring is one prior pass, like the released code;
- the observation or goal encoder trains too: the raw inputs (`state`, `goal_features`, `image/<key>`), so
  re-scoring re-runs the encoders and gradients reach them.
With `score_support="sampled_topk"` cond also holds `support` (n, L, k): the top-k set of every step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
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
from ript_fast.policies.language import GoalEncoder
from ript_fast.policies.obs_encoder import ObsConfig, ObsEncoder, images_from_cond, images_to_cond
from ript_fast.policies.param_groups import decay_groups
from ript_fast.policies.quest.config import QuestConfig
from ript_fast.policies.quest.fsq import levels_for_codebook
from ript_fast.policies.quest.prior import SkillPrior
from ript_fast.policies.quest.sampling import draw, restrict_to_support, top_k_support
from ript_fast.policies.quest.skill_autoencoder import SkillAutoencoder


class QuestPolicy(Policy):
    family = "quest"
    action_kind = "categorical"
    sft_stages = ("autoencoder", "prior")
    samples_in_eval = True  # the paper evaluates QueST with the same top-k sampler it rolls out with

    def __init__(self, cfg: QuestConfig, obs_cfg: ObsConfig, spec: PolicySpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.action_dim = spec.action_dim
        self.action_horizon = cfg.action_horizon
        self.chunk_size = cfg.chunk_size
        self.task_names = list(spec.task_names)
        levels = cfg.fsq_levels or levels_for_codebook(cfg.codebook_size)
        self.autoencoder = SkillAutoencoder(
            spec.action_dim,
            cfg.chunk_size,
            cfg.downsample,
            levels,
            cfg.encoder_dim,
            cfg.decoder_dim,
            cfg.encoder_heads,
            cfg.encoder_layers,
            cfg.decoder_heads,
            cfg.decoder_layers,
            cfg.dropout,
        )
        self.obs_encoder = ObsEncoder(obs_cfg, spec.state_dim, cfg.embed_dim, reduction="cat")
        self.goal_encoder = GoalEncoder(obs_cfg.language, len(spec.task_names), cfg.embed_dim)
        self.prior = SkillPrior(
            self.autoencoder.codebook_size, cfg.embed_dim, cfg.prior_heads, cfg.prior_layers, cfg.dropout
        )
        self.num_tokens = cfg.chunk_size // cfg.downsample

    # ---- context -------------------------------------------------------------------------------------
    def _caches_context(self) -> bool:
        return set(self.cfg.rl_trainable) == {"prior"}

    def _raw_cond(self, obs: Observation) -> dict[str, torch.Tensor]:
        """The encoders' inputs as tensors (instructions become their frozen goal features)."""
        if obs.state is None:
            raise ValueError("QueST needs a state vector in every observation (Observation.state is None)")
        device = self.device
        goal = self.goal_encoder.features(obs.instructions, obs.task_ids).to(device)
        cond = {"state": obs.state.to(device).float(), "goal_features": goal}
        cond.update(images_to_cond(obs.images, device))
        return cond

    def _context(self, raw: dict[str, torch.Tensor]) -> torch.Tensor:
        """(n, 2, embed_dim): [goal token, observation token]."""
        images = images_from_cond(raw)
        goal = self.goal_encoder.project(raw["goal_features"]).unsqueeze(1)
        return torch.cat([goal, self.obs_encoder(raw["state"], images)], dim=1)

    def context(self, obs: Observation) -> torch.Tensor:
        return self._context(self._raw_cond(obs))

    # ---- acting and scoring --------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Observation, sample: bool = True) -> ChunkSample:
        raw = self._raw_cond(obs)
        context = self._context(raw)
        tokens, support, logprob = self._generate(context, greedy=not sample)
        cond = {"context": context} if self._caches_context() else raw
        if self.cfg.score_support == "sampled_topk":
            cond["support"] = support
        actions = self.autoencoder.decode_tokens(tokens, steps=self.action_horizon)  # the executed head only
        return ChunkSample(actions.clamp(ACTION_LOW, ACTION_HIGH), tokens, logprob, cond)

    def _generate(self, context: torch.Tensor, greedy: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Autoregressive top-k sampling (key/value-cached): (n, L) tokens, (n, L, k) each step's support, and
        (n, L) each token's log-prob under the distribution `score` recomputes (equal up to float rounding:
        the cached pass and teacher forcing sum in different orders)."""
        supports, logprobs = [], []

        def pick(logits: torch.Tensor) -> torch.Tensor:
            logits = logits / self.cfg.temperature
            support = top_k_support(logits, self.cfg.top_k)
            restricted = restrict_to_support(logits, support)
            token = draw(restricted, greedy)
            scored = restricted if self.cfg.score_support == "sampled_topk" else logits
            logprobs.append(torch.log_softmax(scored.float(), dim=-1).gather(-1, token[:, None]).squeeze(-1))
            supports.append(support)
            return token

        tokens = self.prior.generate(context, self.num_tokens, pick)
        return tokens, torch.stack(supports, dim=1), torch.stack(logprobs, dim=1)

    def score(self, cond: dict[str, torch.Tensor], decision: torch.Tensor) -> Scores:
        context = cond["context"] if "context" in cond else self._context(cond)
        logits = self.prior(self.prior.teacher_forcing_inputs(decision), context) / self.cfg.temperature
        if "support" in cond:
            logits = restrict_to_support(logits, cond["support"])
        return Scores(logits=logits)

    def rl_param_groups(self) -> list[dict[str, Any]]:
        parts = {"prior": self.prior, "obs_encoder": self.obs_encoder, "goal_encoder": self.goal_encoder}
        params = [p for name in self.cfg.rl_trainable for p in parts[name].parameters()]
        return decay_groups(params, self, self.cfg.rl_lr, self.cfg.rl_weight_decay, "prior")

    # ---- supervised stages ---------------------------------------------------------------------------
    def sft_parameters(self, stage: str) -> list[nn.Parameter]:
        if stage == "autoencoder":
            return list(self.autoencoder.parameters())
        if stage == "prior":
            modules: list[nn.Module] = [self.prior, self.obs_encoder, self.goal_encoder]
            if self.cfg.l1_loss_scale > 0:
                modules.append(self.autoencoder.decoder)
            return [p for m in modules for p in m.parameters()]
        raise ValueError(f"QueST has no supervised stage {stage!r}; its stages are {self.sft_stages}")

    def sft_loss(self, stage: str, batch: SupervisedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        actions = batch.actions.to(self.device).float()
        if stage == "autoencoder":
            recon, tokens = self.autoencoder(actions)
            loss = F.l1_loss(recon, actions)
            used = tokens.unique().numel() / self.autoencoder.codebook_size
            return loss, {"loss": loss.item(), "recon_l1": loss.item(), "codebook_usage": used}
        if stage == "prior":
            return self._prior_loss(batch.obs, actions)
        raise ValueError(f"QueST has no supervised stage {stage!r}; its stages are {self.sft_stages}")

    def _prior_loss(self, obs: Observation, actions: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy of the autoencoder's tokens (computed in eval mode: deterministic targets), plus
        QueST's optional decoder L1 on decoded samples of the prior's own predictions."""
        with torch.no_grad():
            was_training = self.autoencoder.training
            self.autoencoder.eval()
            targets = self.autoencoder.tokens(actions)
            self.autoencoder.train(was_training)
        logits = self.prior(self.prior.teacher_forcing_inputs(targets), self.context(obs))
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        metrics = {"prior_ce": ce.item(), "token_acc": (logits.argmax(-1) == targets).float().mean().item()}
        loss = ce
        if self.cfg.l1_loss_scale > 0:
            with torch.no_grad():
                sampled = torch.multinomial(torch.softmax(logits.reshape(-1, logits.shape[-1]), -1), 1)
            l1 = F.l1_loss(self.autoencoder.decode_tokens(sampled.view_as(targets)), actions)
            loss = ce + self.cfg.l1_loss_scale * l1
            metrics["decoder_l1"] = l1.item()
        metrics["loss"] = loss.item()
        return loss, metrics

    def fit_normalizers(self, states: torch.Tensor, actions: torch.Tensor) -> None:
        self.obs_encoder.fit_state_normalizer(states)
