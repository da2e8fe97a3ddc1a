"""The policy-optimisation half of Algorithm 1 (lines 16-18): N PPO epochs over the collected rollouts.

The loss is the clipped objective of Eq. 6 with RLOO advantages (Eq. 5), computed by the fused ops:
`categorical_ppo_loss` for token policies (log-prob and clipped loss in one kernel, no (B, T, V) softmax; its
linear form on the hidden states when a policy scores through a linear head, as OpenVLA's action rows) and
`gaussian/laplace_logprob` + `ppo_clip_loss` for regression policies with a scale head (Sec. 4.3).

`ratio_level="sequence"` is Eq. 6 as written: one ratio per rollout, of the summed log-probs of everything
it sampled (Eq. 7). `ratio_level="token"` is what the released code trains with: one ratio per token (or
per chunk step for regression heads). The per-token terms are averaged over the valid tokens of the minibatch
(`token_average="tokens"`, the released code's `use_token_level_loss_avg`) or within each rollout first and
then over rollouts (`token_average="rollouts"`), so that every rollout weighs the same, as in Eq. 6. The two
differ when rollout lengths differ: with sparse success rewards a successful episode ends early and a failed
one runs to the time limit, so under "tokens" a group's failures outweigh its success by their length.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import torch

from ript_fast import ops
from ript_fast.policies.base import Policy
from ript_fast.train.distributed import Dist
from ript_fast.train.rollout import RolloutBatch

RatioLevel = Literal["sequence", "token"]
TokenAverage = Literal["tokens", "rollouts"]


@dataclass
class PPOSettings:
    epochs: int  # N in Algorithm 1
    minibatch_rollouts: int
    clip_eps: float
    clip_eps_high: float | None
    ratio_level: RatioLevel
    max_grad_norm: float
    token_average: TokenAverage = "tokens"  # token level only: over the minibatch's tokens, or per rollout


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
    weights = elem_mask  # what each token's PPO term weighs in the loss (token level)
    if settings.ratio_level == "token" and settings.token_average == "rollouts":
        # weights 1 / (valid tokens of the rollout): the weighted token mean is the mean over rollouts of
        # each rollout's token mean
        weights = elem_mask.float() / elem_mask.sum(dim=1, keepdim=True).clamp(min=1)
    clip = {"clip_eps": settings.clip_eps, "clip_eps_high": settings.clip_eps_high}

    if policy.action_kind == "categorical":
        tokens = batch.decisions.reshape(b, q * per_elem).to(device)
        if scores.linear_head:  # a linear head: no (b, q*L, V) logits
            hidden = _unflatten(scores.hidden, valid, b, q)
            out = ops.linear_categorical_ppo_loss(
                hidden, scores.head_weight, tokens, logp_old, advantages, weights, **clip,
                temperature=scores.temperature, return_stats=True,
            )  # fmt: skip
        else:
            logits = _unflatten(scores.token_logits(), valid, b, q)
            out = ops.categorical_ppo_loss(
                logits, tokens, logp_old, advantages, mask=weights, return_stats=True, **clip
            )
    else:
        assert scores.loc is not None and scores.log_scale is not None
        loc = _unflatten(scores.loc, valid, b, q)
        log_scale = _unflatten(scores.log_scale, valid, b, q)
        actions = batch.decisions.reshape(b, q * per_elem, -1).to(device)
        # the log-probs take the 0/1 validity mask: a loss weight inside them would scale the ratio's exponent
        logp_new = _continuous_logprob(policy.action_kind, loc, log_scale, actions, elem_mask, settings.ratio_level)
        # token level: every valid chunk step, weighted; sequence level: every rollout with a valid query
        mask = weights if settings.ratio_level == "token" else elem_mask.any(dim=1)
        out = ops.ppo_clip_loss(logp_new, logp_old, advantages, mask=mask, return_stats=True, **clip)
    return out.loss, {"clip_fraction": out.clip_fraction, "approx_kl": out.approx_kl, "ratio": out.mean_ratio}


class PPOObjective(torch.nn.Module):
    """`ppo_loss` as a module over the policy, so DistributedDataParallel can wrap it and all-reduce the
    gradients of the trainable parameters during the backward (the policy's own `forward` is not the loss)."""

    def __init__(self, policy: Policy, settings: PPOSettings) -> None:
        super().__init__()
        self.policy = policy
        self.settings = settings

    def forward(self, batch: RolloutBatch, advantages: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return ppo_loss(self.policy, batch, advantages, self.settings)


def minibatch_schedule(
    num_rollouts: int, minibatch: int, epochs: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """The rollout indices of every minibatch step: `epochs` passes, each a fresh shuffle cut into minibatches."""
    steps = []
    for _ in range(epochs):
        order = torch.randperm(num_rollouts, generator=generator)
        steps.extend(order[i : i + minibatch] for i in range(0, num_rollouts, minibatch))
    return steps


def loss_weight(batch: RolloutBatch, settings: PPOSettings) -> float:
    """What the loss of `batch` averages over: valid tokens (token level, averaged over tokens) or rollouts."""
    if settings.ratio_level == "token" and settings.token_average == "tokens":
        return float(batch.query_mask.sum().item() * batch.decisions.shape[2])
    return float(len(batch))


def ppo_update(
    objective: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: RolloutBatch,
    advantages: torch.Tensor,
    schedule: list[torch.Tensor],
    settings: PPOSettings,
    dist: Dist,
) -> dict[str, float]:
    """One optimizer step per minibatch of `schedule` (Algorithm 1, lines 16-18).

    `objective` is a `PPOObjective`, or that wrapped in DDP when several ranks train together: each rank then
    holds its own share of every minibatch, and the loss is rescaled so that the all-reduced gradient is
    exactly the gradient of the loss over the whole minibatch (the same as one process holding all of it).

    Returns the mean of each statistic over the steps (averaged over ranks), and the seconds spent in the
    forward (log-prob recompute + loss), the backward and the optimizer (`time_forward`, ...).
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    totals: dict[str, float] = {}
    clock = {"time_forward": 0.0, "time_backward": 0.0, "time_optimizer": 0.0}
    for idx in schedule:
        minibatch = batch.select(idx)
        t0 = time.perf_counter()
        loss, stats = objective(minibatch, advantages[idx])
        local = loss_weight(minibatch, settings)
        total = dist.sum({"w": local})["w"]
        scale = local * dist.world / total if total > 0 else 0.0
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        (loss * scale).backward()
        t2 = time.perf_counter()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        optimizer.step()
        t3 = time.perf_counter()
        clock["time_forward"] += t1 - t0
        clock["time_backward"] += t2 - t1
        clock["time_optimizer"] += t3 - t2
        for k, v in {"loss": loss.detach(), "grad_norm": grad_norm, **stats}.items():
            totals[k] = totals.get(k, 0.0) + float(v)
    means = {k: v / max(len(schedule), 1) for k, v in totals.items()}
    return {**{k: v / dist.world for k, v in dist.sum(means).items()}, **clock}


def _continuous_logprob(
    kind: str,
    loc: torch.Tensor,
    log_scale: torch.Tensor,
    actions: torch.Tensor,
    mask: torch.Tensor,
    level: RatioLevel,
) -> torch.Tensor:
    fn = ops.gaussian_logprob if kind == "gaussian" else ops.laplace_logprob
    return fn(loc, log_scale, actions, mask=mask, reduction="sum" if level == "sequence" else "none")


def _unflatten(x: torch.Tensor, valid: torch.Tensor, b: int, q: int) -> torch.Tensor:
    """(n_valid, L, ...) per-query outputs -> (b, q * L, ...) padded per rollout (padding masked out later)."""
    full = x.new_zeros((b * q, *x.shape[1:])).index_copy(0, valid.to(x.device), x)
    return full.reshape(b, q * x.shape[1], *x.shape[2:])


def _device(policy: Policy) -> torch.device:
    return next(policy.parameters()).device


def _to(tensors: dict[str, torch.Tensor], policy: Policy) -> dict[str, torch.Tensor]:
    device = _device(policy)
    return {k: v.to(device) for k, v in tensors.items()}
