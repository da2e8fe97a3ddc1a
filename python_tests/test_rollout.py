"""Batched rollout collection: finished envs are masked (never stepped or queried again), bad actions caught."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from python_tests.ppo_fixtures import smoke_policy
from ript_fast.envs import make_vec_env
from ript_fast.policies.base import ChunkSample
from ript_fast.train.rollout import NonFiniteActionError, collect_rollouts

N = 6


@pytest.fixture(scope="module")
def policy():
    return smoke_policy()


@pytest.fixture(scope="module")
def contexts() -> np.ndarray:
    env = make_vec_env("metaworld/reach-v3", num_envs=N, seed=3)
    env.reset(seed=3)
    states = np.array(env.get_state())
    env.close()
    return states


def run(policy, contexts: np.ndarray, max_episode_steps: int = 500):
    env = make_vec_env("metaworld/reach-v3", num_envs=N, seed=0, autoreset=False, max_episode_steps=max_episode_steps)
    try:
        return collect_rollouts(env, policy, contexts, np.arange(10, 10 + N), np.zeros(N, dtype=np.int64), seed=0)
    finally:
        env.close()


def test_queries_stop_when_an_env_finishes(policy, contexts: np.ndarray) -> None:
    batch, timing = run(policy, contexts, max_episode_steps=37)
    horizon = policy.action_horizon
    queries = batch.query_mask.sum(dim=1)
    assert torch.equal(queries, (batch.episode_steps + horizon - 1) // horizon)
    assert (batch.episode_steps <= 37).all()
    assert timing.env_steps == int(batch.episode_steps.sum())
    assert batch.context_ids.tolist() == list(range(10, 10 + N))
    # the mask is a prefix: no query after an env's last one
    for row in batch.query_mask:
        n = int(row.sum())
        assert row[:n].all() and not row[n:].any()


def test_successful_envs_finish_early_with_reward_one(policy, contexts: np.ndarray, monkeypatch) -> None:
    """An expert policy solves reach quickly: those rollouts end at success with reward 1 and stop querying."""
    from ript_fast.envs import expert_actions

    def expert_act(obs, sample=True):
        state = obs.state.double().numpy()
        actions = torch.as_tensor(expert_actions(state, ["reach-v3"] * len(state)), dtype=torch.float32)
        n = len(state)
        chunk = actions[:, None].repeat(1, policy.action_horizon, 1)
        return ChunkSample(chunk, torch.zeros(n, 2, dtype=torch.int64), torch.zeros(n, 2), {"c": torch.zeros(n, 1)})

    monkeypatch.setattr(policy, "act", expert_act)
    batch, _ = run(policy, contexts)
    assert batch.rewards.tolist() == [1.0] * N
    assert (batch.episode_steps < 500).all()


def test_nan_actions_are_reported_with_their_contexts(policy, contexts: np.ndarray, monkeypatch) -> None:
    real_act = policy.act

    def broken_act(obs, sample=True):
        chunk = real_act(obs, sample)
        chunk.actions[1] = float("nan")
        return chunk

    monkeypatch.setattr(policy, "act", broken_act)
    with pytest.raises(NonFiniteActionError, match=r"contexts \[11\]"):
        run(policy, contexts)


@pytest.mark.parametrize("sample", [True, False])
def test_nan_weights_are_reported_sampled_or_greedy(contexts: np.ndarray, sample: bool) -> None:
    """NaN weights make multinomial fail (sampling) or decode finite actions with NaN log-probs (greedy):
    both are reported as the policy's fault, with the contexts."""
    broken = smoke_policy()
    with torch.no_grad():
        for p in broken.prior.parameters():
            p.fill_(float("nan"))
    env = make_vec_env("metaworld/reach-v3", num_envs=N, seed=0, autoreset=False)
    with pytest.raises(NonFiniteActionError, match=r"NaN \(contexts \[10, 11, 12, 13, 14, 15\]\)"):
        collect_rollouts(env, broken, contexts, np.arange(10, 10 + N), np.zeros(N, dtype=np.int64), 0, sample=sample)
