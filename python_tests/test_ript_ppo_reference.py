"""On a frozen batch, the trainer's PPO loss and gradients equal a plain-PyTorch Algorithm 1 reference.

The reference is written from the paper: per-rollout sequence log-prob = sum of token log-probs (Eq. 7),
RLOO advantages (Eq. 5), clipped objective (Eq. 6) averaged over rollouts; and the released code's variant
with per-token ratios averaged over all valid tokens, or over each rollout's tokens and then rollouts.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from python_tests.ppo_fixtures import frozen_batch, oft_policy, perturb, smoke_policy
from ript_fast import ops
from ript_fast.config import from_dict
from ript_fast.data.contexts import ContextDataset
from ript_fast.envs import make_vec_env
from ript_fast.policies.base import Policy
from ript_fast.train import ript
from ript_fast.train.checkpoint import load_policy
from ript_fast.train.ppo import PPOSettings, ppo_loss
from ript_fast.train.rollout import RolloutBatch, RolloutTiming
from ript_fast.train.run_config import RiptConfig
from ript_fast.train.trainer_checkpoints import TrainerCheckpoints

K = 4


@pytest.fixture
def policy():
    return smoke_policy()


def reference_logprobs(policy, batch: RolloutBatch, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rollout r's per-element log-probs (per token, or per chunk step summed over action dims), new (float64,
    with gradients, re-scored query by query) and old (as stored at sampling time), over its valid queries."""
    new, old = [], []
    for q in range(batch.num_queries):
        if not batch.query_mask[r, q]:
            continue
        cond = {k: v[r, q : q + 1] for k, v in batch.cond.items()}
        decision = batch.decisions[r, q : q + 1]
        scores = policy.score(cond, decision)
        if policy.action_kind == "categorical":
            logp = torch.log_softmax(scores.logits.double(), dim=-1).gather(-1, decision[..., None]).squeeze(-1)
        else:
            x, loc, log_scale = decision.double(), scores.loc.double(), scores.log_scale.double()
            if policy.action_kind == "laplace":  # log(1 / 2b exp(-|x - mu| / b))
                per_dim = -math.log(2.0) - log_scale - (x - loc).abs() / log_scale.exp()
            else:  # log N(x; mu, s^2)
                per_dim = -0.5 * math.log(2 * math.pi) - log_scale - 0.5 * ((x - loc) / log_scale.exp()) ** 2
            logp = per_dim.sum(-1)
        new.append(logp.flatten())
        old.append(batch.logprob_old[r, q].double())
    return torch.cat(new), torch.cat(old)


def reference_loss(
    policy,
    batch: RolloutBatch,
    adv: torch.Tensor,
    level: str,
    eps: float,
    average: str = "tokens",
    rows: list[int] | None = None,
) -> torch.Tensor:
    """Eq. 6 over the rollouts `rows` of `batch` (default all): one ratio per rollout of its summed log-probs
    (Eq. 7), or one per element, averaged over all elements or per rollout then over rollouts."""
    rows = list(range(len(batch))) if rows is None else rows
    terms, weights = [], []
    for r in rows:
        new, old = reference_logprobs(policy, batch, r)
        if level == "sequence":
            new, old = new.sum()[None], old.sum()[None]
        ratio = torch.exp(new - old)
        term = -torch.minimum(ratio * adv[r], torch.clamp(ratio, 1 - eps, 1 + eps) * adv[r])
        terms.append(term.mean() if average == "rollouts" else term.sum())
        weights.append(len(term))
    total = torch.stack(terms).sum()
    return total / sum(weights) if level == "token" and average == "tokens" else total / len(rows)


@pytest.mark.parametrize(("level", "average"), [("sequence", "tokens"), ("token", "tokens"), ("token", "rollouts")])
def test_trainer_loss_and_grads_match_reference(policy, level: str, average: str) -> None:
    batch = frozen_batch(policy, 2 * K)
    assert len(set(batch.query_mask.sum(dim=1).tolist())) > 1, "rollouts of different lengths"
    adv = ops.rloo_advantage(batch.rewards.view(-1, K)).flatten()
    settings = PPOSettings(
        epochs=1,
        minibatch_rollouts=len(batch),
        clip_eps=0.2,
        clip_eps_high=None,
        ratio_level=level,
        max_grad_norm=1.0,
        token_average=average,
    )
    perturb(policy, 0.05)  # ratios away from 1, some clipped: the state after a few PPO steps
    _, stats = loss_matches_reference(policy, batch, adv, settings)
    assert 0.0 < float(stats["clip_fraction"]) < 1.0, "both the clipped and the unclipped branch are exercised"
    assert float(stats["approx_kl"]) > 0.0


def loss_matches_reference(
    policy: Policy, batch: RolloutBatch, adv: torch.Tensor, settings: PPOSettings
) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """ppo_loss and its gradients equal the float64 reference's; returns the gradients and the loss stats."""
    params = [p for g in policy.rl_param_groups() for p in g["params"]]
    loss, stats = ppo_loss(policy, batch, adv, settings)
    grads = torch.autograd.grad(loss, params)
    expected = reference_loss(
        policy, batch, adv.double(), settings.ratio_level, settings.clip_eps, settings.token_average
    )
    expected_grads = torch.autograd.grad(expected, params)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g.double(), e.double(), rtol=1e-4, atol=1e-6)
    return grads, stats


def test_unperturbed_policy_has_unit_ratio(policy) -> None:
    """Old log-probs stored at sampling time equal the recomputed ones: ratio 1, nothing clipped."""
    batch = frozen_batch(policy, 2 * K)
    adv = ops.rloo_advantage(batch.rewards.view(-1, K)).flatten()
    for level in ("sequence", "token"):
        settings = PPOSettings(1, len(batch), 0.2, None, level, 1.0)
        _, stats = ppo_loss(policy, batch, adv, settings)
        assert float(stats["ratio"]) == pytest.approx(1.0, abs=1e-5)
        assert float(stats["clip_fraction"]) == 0.0


LEVELS = [("sequence", "tokens"), ("token", "tokens"), ("token", "rollouts")]


# OpenVLA-OFT at its released setting, one ratio per chunk step: at sequence level one ratio is exp of a float32
# sum of 8 x 7 log-probs, ~1e-4 relative off the float64 reference (more after an AdamW step), beyond these bounds.
TOKEN_LEVELS = [setting for setting in LEVELS if setting[0] == "token"]


@pytest.mark.parametrize("distribution", ["laplace", "gaussian"])
@pytest.mark.parametrize(("level", "average"), TOKEN_LEVELS)
def test_continuous_trainer_loss_and_grads_match_reference(
    oft_folder: Path, distribution: str, level: str, average: str
) -> None:
    """The OpenVLA-OFT family's Gaussian/Laplace branch of `ppo_loss` (ops.gaussian/laplace_logprob + ppo_clip_loss)
    against the densities written out in float64."""
    policy = oft_policy(oft_folder, distribution)
    batch = frozen_batch(policy, 2 * K)
    assert batch.decisions.dim() == 4, "continuous decisions (R, Q, chunk, action_dim)"
    adv = ops.rloo_advantage(batch.rewards.view(-1, K)).flatten()
    settings = PPOSettings(1, len(batch), 0.2, None, level, 1.0, average)
    # Gaussian log-probs move quadratically: a smaller step keeps some of its 56-dim chunk ratios inside the clip
    perturb(policy, 0.05 if distribution == "laplace" else 0.002)
    grads, stats = loss_matches_reference(policy, batch, adv, settings)
    assert any(float(g.abs().max()) > 0 for g in grads)
    assert 0.0 < float(stats["clip_fraction"]) < 1.0, "both the clipped and the unclipped branch are exercised"


# ---- one whole trainer iteration (RiptTrainer.step) against Algorithm 1 written out -------------------
# Rewards of the rounds the collection is handed (K = 4, 3 contexts a round, B = 8: two informative groups
# needed). Round 1 keeps its first group and rejects an all-fail and an all-success group; round 2 rejects an
# all-fail group and keeps the first of its two mixed groups.
ROUNDS = [
    [[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]],
    [[0, 0, 0, 0], [1, 1, 0, 1], [0, 1, 1, 0]],
]
EPOCHS, MINIBATCH, LR, MAX_NORM = 2, 4, 1e-3, 0.05


def _rounds(policy) -> list[RolloutBatch]:
    batches = []
    for i, rewards in enumerate(ROUNDS):
        batch = frozen_batch(policy, 3 * K, seed=10 + i)
        r = torch.tensor(rewards, dtype=torch.float32).flatten()
        batches.append(dataclasses.replace(batch, success=r > 0, rewards=r))  # the default reward: success as 0/1
    return batches


def reference_iteration(policy, rounds: list[RolloutBatch], seed: int, level: str, average: str) -> dict:
    """Algorithm 1, lines 5-18, in plain PyTorch: reject groups whose K rewards are all equal until B/K groups
    are kept; leave-one-out advantages A_k = R_k - mean of the other K - 1 (Eq. 5); N epochs, each a shuffle of
    the kept rollouts cut into minibatches (the trainer's shuffle: randperm from the iteration's seed); per
    minibatch the clipped loss, the gradient scaled to a global norm <= MAX_NORM, an AdamW step."""
    kept, rejected = [], 0
    for batch in rounds:
        for g in range(len(batch) // K):
            rewards = batch.rewards[g * K : (g + 1) * K].tolist()
            if len(set(rewards)) == 1:
                rejected += 1
            elif len(kept) < 8 // K:
                kept.append((batch, list(range(g * K, (g + 1) * K))))
    # one batch of the kept rollouts, as (source batch, row) pairs
    rows = [(b, r) for b, rs in kept for r in rs]
    rewards = torch.tensor([float(b.rewards[r]) for b, r in rows], dtype=torch.float64).view(-1, K)
    adv = (rewards - (rewards.sum(dim=1, keepdim=True) - rewards) / (K - 1)).flatten()
    groups = policy.rl_param_groups()
    for group in groups:
        group["lr"] = LR
    optimizer = torch.optim.AdamW(groups)
    params = [p for g in groups for p in g["params"]]
    generator = torch.Generator().manual_seed(ript._derive_seed(seed, 1, salt=1))
    norms, losses = [], []
    for _ in range(EPOCHS):
        order = torch.randperm(len(rows), generator=generator).tolist()
        for start in range(0, len(rows), MINIBATCH):
            mb = order[start : start + MINIBATCH]
            loss = _reference_minibatch_loss(policy, rows, mb, adv, level, average)
            optimizer.zero_grad()
            loss.backward()
            norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params if p.grad is not None))
            if norm > MAX_NORM:
                for p in params:
                    if p.grad is not None:
                        p.grad.mul_(float(MAX_NORM / (norm + 1e-6)))
            optimizer.step()
            norms.append(float(norm))
            losses.append(float(loss.detach()))
    return {"kept": len(kept), "rejected": rejected, "adv": adv, "norms": norms, "losses": losses}


def _reference_minibatch_loss(policy, rows, mb: list[int], adv: torch.Tensor, level: str, average: str):
    terms, weights = [], []
    for i in mb:
        batch, r = rows[i]
        new, old = reference_logprobs(policy, batch, r)
        if level == "sequence":
            new, old = new.sum()[None], old.sum()[None]
        ratio = torch.exp(new - old)
        term = -torch.minimum(ratio * adv[i], torch.clamp(ratio, 0.8, 1.2) * adv[i])
        terms.append(term.mean() if average == "rollouts" else term.sum())
        weights.append(len(term))
    total = torch.stack(terms).sum()
    return total / sum(weights) if level == "token" and average == "tokens" else total / len(mb)


def _trainer(policy, level: str, average: str) -> ript.RiptTrainer:
    """A trainer over 3 groups of K reach-v3 envs (never stepped here: the tests hand it its rounds)."""
    config = from_dict(
        RiptConfig,
        {
            "iterations": 2,
            "group_size": K,
            "batch_rollouts": 8,
            "contexts_per_round": 3,
            "max_rounds": 4,
            "dynamic_sampling": True,
            "ppo_epochs": EPOCHS,
            "minibatch_rollouts": MINIBATCH,
            "clip_eps": 0.2,
            "ratio_level": level,
            "token_average": average,
            "lr": LR,
            "max_grad_norm": MAX_NORM,
        },
    )
    contexts = ContextDataset.from_env("metaworld/reach-v3", 3, seed=1_000)
    env = make_vec_env("metaworld/reach-v3", 3 * K, seed=3, autoreset=False)
    return ript.RiptTrainer(policy, env, contexts, config, seed=3)


ITERATION_CASES = [("quest", *setting) for setting in LEVELS] + [("openvla_oft", *s) for s in TOKEN_LEVELS]


@pytest.mark.parametrize(("family", "level", "average"), ITERATION_CASES)
def test_trainer_iteration_matches_reference_algorithm(family: str, level: str, average: str, oft_folder: Path) -> None:
    """RiptTrainer.step on handed-in rollouts (rejection, the trainer's own RLOO step, 2 epochs x 2
    minibatches, gradient clipping, AdamW) ends with the weights of the reference loop above."""
    policy = smoke_policy() if family == "quest" else oft_policy(oft_folder, "laplace")
    rounds = _rounds(policy)
    perturb(policy, 0.02)  # ratios away from 1 from the first step (as if rollouts came from an older policy)
    expected_policy = copy.deepcopy(policy)
    start = {name: p.detach().clone() for name, p in policy.named_parameters()}
    trainer = _trainer(policy, level, average)
    handed = iter(rounds)
    trainer._collect = lambda group_rows, seed: (next(handed), RolloutTiming())
    trainer.iteration = 1
    record = trainer.step()
    trainer.env.close()
    expected_policy.freeze_for_rl()
    ref = reference_iteration(expected_policy, rounds, trainer.seed, level, average)

    assert record["kept_groups"] == ref["kept"] == 2 and record["rejected_groups"] == ref["rejected"] == 3
    assert record["rounds"] == 2
    assert ref["adv"].abs().sum() > 0
    assert max(ref["norms"]) > MAX_NORM, "clipping is exercised"
    assert record["grad_norm"] == pytest.approx(np.mean(ref["norms"]), rel=1e-4)
    assert record["loss"] == pytest.approx(np.mean(ref["losses"]), rel=1e-4, abs=1e-7)
    got = dict(policy.named_parameters())
    for name, p in expected_policy.named_parameters():
        # atol: the attention's key bias has an exactly-zero gradient (softmax ignores a shift), so Adam turns the
        # float noise of either side into steps of up to ~1e-5
        torch.testing.assert_close(got[name].detach(), p.detach(), rtol=1e-4, atol=2e-5, msg=name)
    moved = max(float((p.detach() - start[n]).abs().max()) for n, p in got.items())
    assert moved > 10 * LR * 0.1, "the update moved the weights"


@pytest.mark.parametrize("family", ["quest", "openvla_oft"])
def test_a_resumed_trainer_continues_as_the_uninterrupted_one(family: str, oft_folder: Path, tmp_path: Path) -> None:
    """Two informative iterations on handed-in rounds, straight through; or checkpointed after the first (policy
    file + trainer state, as a killed run leaves them) and continued by a new trainer on the policy loaded from
    that file: the final weights are equal bit for bit, and the second iteration did move them."""

    def make_policy() -> Policy:
        return smoke_policy() if family == "quest" else oft_policy(oft_folder, "laplace")

    def run(trainer: ript.RiptTrainer, iterations: range) -> None:
        handed = iter(rounds * len(iterations))
        trainer._collect = lambda group_rows, seed: (next(handed), RolloutTiming())
        for i in iterations:
            trainer.iteration = i
            trainer.step()
        trainer.env.close()

    rounds = _rounds(make_policy())
    straight = make_policy()
    run(_trainer(straight, "token", "tokens"), range(1, 3))

    first = _trainer(make_policy(), "token", "tokens")
    run(first, range(1, 2))
    saved = TrainerCheckpoints(tmp_path / "killed" / "checkpoints", keep=1)
    saved.save(1, first.policy, first.state_dict())
    resumed_policy = load_policy(saved.latest().policy_path)
    after_first = {n: p.detach().clone() for n, p in resumed_policy.named_parameters()}
    resumed = _trainer(resumed_policy, "token", "tokens")
    resumed.load_state_dict(saved.latest().load_state())
    run(resumed, range(2, 3))

    got = dict(resumed_policy.named_parameters())
    for name, p in straight.named_parameters():
        assert torch.equal(got[name], p), name
    assert any(not torch.equal(got[n], after_first[n]) for n in got), "the second iteration moved the weights"
