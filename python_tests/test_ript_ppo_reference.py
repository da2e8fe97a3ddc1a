"""On a frozen batch, the trainer's PPO loss and gradients equal a plain-PyTorch Algorithm 1 reference.

The reference is written from the paper: per-rollout sequence log-prob = sum of token log-probs (Eq. 7),
RLOO advantages (Eq. 5), clipped objective (Eq. 6) averaged over rollouts; and the released code's variant
with per-token ratios averaged over all valid tokens, or over each rollout's tokens and then rollouts.
"""

from __future__ import annotations

import pytest
import torch

from python_tests.ppo_fixtures import frozen_batch, perturb, smoke_policy
from ript_fast import ops
from ript_fast.train.ppo import PPOSettings, ppo_loss
from ript_fast.train.rollout import RolloutBatch

K = 4


@pytest.fixture
def policy():
    return smoke_policy()


def reference_loss(
    policy, batch: RolloutBatch, adv: torch.Tensor, level: str, eps: float, average: str = "tokens"
) -> torch.Tensor:
    terms, weights = [], []
    for r in range(len(batch)):
        logp_new_tokens, logp_old_tokens = [], []
        for q in range(batch.num_queries):
            if not batch.query_mask[r, q]:
                continue
            cond = {k: v[r, q : q + 1] for k, v in batch.cond.items()}
            tokens = batch.decisions[r, q : q + 1]
            logits = policy.score(cond, tokens).logits.double()
            logp = torch.log_softmax(logits, dim=-1).gather(-1, tokens[..., None]).squeeze(-1)
            logp_new_tokens.append(logp.flatten())
            logp_old_tokens.append(batch.logprob_old[r, q].double())
        new, old = torch.cat(logp_new_tokens), torch.cat(logp_old_tokens)
        if level == "sequence":
            new, old = new.sum()[None], old.sum()[None]
        ratio = torch.exp(new - old)
        term = -torch.minimum(ratio * adv[r], torch.clamp(ratio, 1 - eps, 1 + eps) * adv[r])
        terms.append(term.mean() if average == "rollouts" else term.sum())
        weights.append(len(term))
    total = torch.stack(terms).sum()
    return total / sum(weights) if level == "token" and average == "tokens" else total / len(batch)


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
    params = [p for g in policy.rl_param_groups() for p in g["params"]]
    loss, stats = ppo_loss(policy, batch, adv, settings)
    grads = torch.autograd.grad(loss, params)
    expected = reference_loss(policy, batch, adv.double(), level, 0.2, average)
    expected_grads = torch.autograd.grad(expected, params)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g.double(), e.double(), rtol=1e-4, atol=1e-6)
    assert 0.0 < float(stats["clip_fraction"]) < 1.0, "both the clipped and the unclipped branch are exercised"
    assert float(stats["approx_kl"]) > 0.0


def test_unperturbed_policy_has_unit_ratio(policy) -> None:
    """Old log-probs stored at sampling time equal the recomputed ones: ratio 1, nothing clipped."""
    batch = frozen_batch(policy, 2 * K)
    adv = ops.rloo_advantage(batch.rewards.view(-1, K)).flatten()
    for level in ("sequence", "token"):
        settings = PPOSettings(1, len(batch), 0.2, None, level, 1.0)
        _, stats = ppo_loss(policy, batch, adv, settings)
        assert float(stats["ratio"]) == pytest.approx(1.0, abs=1e-5)
        assert float(stats["clip_fraction"]) == 0.0
