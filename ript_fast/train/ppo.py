"""The policy-optimisation half of Algorithm 1 (lines 16-18): N PPO epochs over the collected rollouts.

The loss is the clipped objective of Eq. 6 with RLOO advantages (Eq. 5), computed by the fused ops:
`categorical_ppo_loss` for token policies (log-prob and clipped loss in one kernel, no (B, T, V) softmax) and
`gaussian/laplace_logprob` + `ppo_clip_loss` for regression policies with a scale head (Sec. 4.3).

`ratio_level="sequence"` is Eq. 6 as written: one ratio per rollout, of the summed log-probs of everything
it sampled (Eq. 7). `ratio_level="token"` is what the released code trains with: one ratio per token (or
per chunk step for regression heads), averaged over the valid tokens of the minibatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ript_fast import ops
from ript_fast.policies.base import Policy
from ript_fast.train.rollout import RolloutBatch

RatioLevel = Literal["sequence", "token"]


@dataclass
class PPOSettings:
    epochs: int  # N in Algorithm 1
    minibatch_rollouts: int
    clip_eps: float
    clip_eps_high: float | None
    ratio_level: RatioLevel
    max_grad_norm: float


def ppo_loss(
    policy: Policy, batch: RolloutBatch, advantages: torch.Tensor, settings: PPOSettings
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped PPO loss of `batch` under the current policy, with its statistics (clip fraction, KL, ratio)."""
    b, q = batch.query_mask.shape
    valid = torch.nonzero(batch.query_mask.flatten()).flatten()
    cond = {k: v.flatten(0, 1)[valid] for k, v in batch.cond.items()}
    decisions = batch.decisions.flatten(0, 1)
    scores = policy.score(_to(cond, policy), decisions[valid].to(_device(policy)))
    per_elem = batch.decisions.shape[2]
    elem_mask = batch.query_mask[:, :, None].expand(b, q, per_elem).reshape(b, q * per_elem)
    logp_old = batch.logprob_old.reshape(b, q * per_elem)
    if settings.ratio_level == "sequence":
        logp_old = (logp_old * elem_mask).sum(dim=1)
    device = _device(policy)
    elem_mask, logp_old, advantages = elem_mask.to(device), logp_old.to(device), advantages.to(device)
    clip = {"clip_eps": settings.clip_eps, "clip_eps_high": settings.clip_eps_high}

    if policy.action_kind == "categorical":
        assert scores.logits is not None
        logits = _unflatten(scores.logits, valid, b, q)
        tokens = batch.decisions.reshape(b, q * per_elem).to(device)
        loss, clip_frac, kl, ratio = ops.categorical_ppo_loss(
            logits, tokens, logp_old, advantages, mask=elem_mask, return_stats=True, **clip
        )
    else:
        assert scores.loc is not None and scores.log_scale is not None
        loc = _unflatten(scores.loc, valid, b, q)
        log_scale = _unflatten(scores.log_scale, valid, b, q)
        actions = batch.decisions.reshape(b, q * per_elem, -1).to(device)
        logp_new = _continuous_logprob(policy.action_kind, loc, log_scale, actions, elem_mask, settings.ratio_level)
        mask = elem_mask if settings.ratio_level == "token" else None
        loss, clip_frac, kl, ratio = ops.ppo_clip_loss(
            logp_new, logp_old, advantages, mask=mask, return_stats=True, **clip
        )
    return loss, {"clip_fraction": clip_frac, "approx_kl": kl, "ratio": ratio}


def ppo_update(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    batch: RolloutBatch,
    advantages: torch.Tensor,
    settings: PPOSettings,
    generator: torch.Generator,
) -> dict[str, float]:
    """N epochs over shuffled minibatches of rollouts; returns the mean of each statistic."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    totals: dict[str, float] = {}
    steps = 0
    for _ in range(settings.epochs):
        order = torch.randperm(len(batch), generator=generator)
        for start in range(0, len(batch), settings.minibatch_rollouts):
            idx = order[start : start + settings.minibatch_rollouts]
            loss, stats = ppo_loss(policy, batch.select(idx), advantages[idx], settings)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            optimizer.step()
            stats = {"loss": loss.detach(), "grad_norm": grad_norm, **stats}
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            steps += 1
    return {k: v / max(steps, 1) for k, v in totals.items()}


def _continuous_logprob(
    kind: str,
    loc: torch.Tensor,
    log_scale: torch.Tensor,
    actions: torch.Tensor,
    mask: torch.Tensor,
    level: RatioLevel,
) -> torch.Tensor:
    fn = ops.gaussian_logprob if kind == "gaussian" else ops.laplace_logprob
    if level == "sequence":
        return fn(loc, log_scale, actions, mask=mask)
    b, t, d = loc.shape
    flat = fn(loc.reshape(b * t, 1, d), log_scale.reshape(b * t, 1, d), actions.reshape(b * t, 1, d))
    return flat.view(b, t)


def _unflatten(x: torch.Tensor, valid: torch.Tensor, b: int, q: int) -> torch.Tensor:
    """(n_valid, L, ...) per-query outputs -> (b, q * L, ...) padded per rollout (padding masked out later)."""
    full = x.new_zeros((b * q, *x.shape[1:])).index_copy(0, valid.to(x.device), x)
    return full.reshape(b, q * x.shape[1], *x.shape[2:])


def _device(policy: Policy) -> torch.device:
    return next(policy.parameters()).device


def _to(tensors: dict[str, torch.Tensor], policy: Policy) -> dict[str, torch.Tensor]:
    device = _device(policy)
    return {k: v.to(device) for k, v in tensors.items()}
