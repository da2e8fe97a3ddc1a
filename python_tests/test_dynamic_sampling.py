"""Dynamic rejection (Sec. 4.2): all-equal groups dropped, new contexts drawn, a capped number of rounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ript_fast.train.context_sampling import ContextSampler, TaskGroupSampler
from ript_fast.train.dynamic_sampling import collect_informative_groups
from ript_fast.train.rollout import RolloutBatch, RolloutTiming

K = 4


def fake_batch(context_ids: np.ndarray, rewards_of: dict[int, list[float]]) -> RolloutBatch:
    """K rollouts per context with scripted rewards; one query each so shapes are real but tiny."""
    ids = np.repeat(context_ids, K)
    rewards = torch.tensor([r for c in context_ids for r in rewards_of[int(c)]], dtype=torch.float32)
    n = len(ids)
    return RolloutBatch(
        success=rewards > 0,
        rewards=rewards,
        context_ids=torch.as_tensor(ids),
        episode_steps=torch.full((n,), 10),
        query_mask=torch.ones(n, 1, dtype=torch.bool),
        decisions=torch.as_tensor(ids)[:, None, None].repeat(1, 1, 2),
        logprob_old=torch.zeros(n, 1, 2),
        cond={"ctx": torch.as_tensor(ids, dtype=torch.float32)[:, None, None]},
    )


def make_collect(rewards_of: dict[int, list[float]], calls: list[np.ndarray]):
    def collect(context_ids: np.ndarray) -> tuple[RolloutBatch, RolloutTiming]:
        calls.append(context_ids)
        return fake_batch(context_ids, rewards_of), RolloutTiming()

    return collect


# contexts 0-3: all fail / all succeed (uninformative); 4-7: mixed (informative)
REWARDS = {
    0: [0, 0, 0, 0],
    1: [1, 1, 1, 1],
    2: [0, 0, 0, 0],
    3: [1, 1, 1, 1],
    4: [1, 0, 0, 0],
    5: [0, 1, 1, 0],
    6: [1, 1, 1, 0],
    7: [0, 0, 1, 0],
}


def test_keeps_only_informative_groups_until_batch_full() -> None:
    calls: list[np.ndarray] = []
    sampler = ContextSampler(len(REWARDS), seed=0)
    batch, stats, _ = collect_informative_groups(
        make_collect(REWARDS, calls),
        sampler,
        contexts_per_round=2,
        group_size=K,
        target_rollouts=3 * K,
        dynamic=True,
        max_rounds=100,
    )
    assert batch is not None and len(batch) == 3 * K
    groups = batch.context_ids.view(-1, K)
    assert (groups == groups[:, :1]).all(), "a group's K rollouts stay together"
    assert set(groups[:, 0].tolist()) <= {4, 5, 6, 7}
    rewards = batch.rewards.view(-1, K)
    assert ((rewards.amax(1) - rewards.amin(1)) > 0).all()
    assert stats.groups_kept == 3 and stats.groups_tried == 2 * stats.rounds
    assert stats.groups_rejected == sum(int(c) < 4 for call in calls for c in call)
    assert not stats.cap_hit
    assert stats.rollouts_run == K * 2 * stats.rounds


def test_resamples_new_contexts_after_rejection() -> None:
    calls: list[np.ndarray] = []
    sampler = ContextSampler(len(REWARDS), seed=1)
    collect_informative_groups(
        make_collect(REWARDS, calls),
        sampler,
        contexts_per_round=2,
        group_size=K,
        target_rollouts=4 * K,
        dynamic=True,
        max_rounds=100,
    )
    drawn = np.concatenate(calls)
    # without replacement within a pass: the first 8 draws are a permutation of all contexts
    assert sorted(drawn[:8].tolist()) == list(range(8))


def test_cap_on_rounds_is_reported() -> None:
    hopeless = {i: [0.0] * K for i in range(5)}
    calls: list[np.ndarray] = []
    batch, stats, _ = collect_informative_groups(
        make_collect(hopeless, calls),
        ContextSampler(5, seed=0),
        contexts_per_round=3,
        group_size=K,
        target_rollouts=2 * K,
        dynamic=True,
        max_rounds=4,
    )
    assert batch is None and stats.cap_hit and stats.rounds == 4 and len(calls) == 4
    assert stats.groups_rejected == 12 and stats.success_rate == 0.0


def test_without_dynamic_sampling_every_group_is_kept() -> None:
    calls: list[np.ndarray] = []
    batch, stats, _ = collect_informative_groups(
        make_collect(REWARDS, calls),
        ContextSampler(len(REWARDS), seed=0),
        contexts_per_round=4,
        group_size=K,
        target_rollouts=4 * K,
        dynamic=False,
        max_rounds=10,
    )
    assert batch is not None and len(batch) == 4 * K and stats.rounds == 1 and stats.groups_rejected == 0
    assert batch.context_ids.view(-1, K)[:, 0].tolist() == calls[0].tolist()


def test_target_must_be_multiple_of_group_size() -> None:
    with pytest.raises(ValueError, match="multiple of group_size"):
        collect_informative_groups(
            make_collect(REWARDS, []), ContextSampler(8, 0), 2, K, 3 * K + 1, dynamic=True, max_rounds=1
        )


def test_sampler_state_round_trip() -> None:
    a = ContextSampler(7, seed=3)
    a.draw(5)
    state = a.state_dict()
    b = ContextSampler(7, seed=99)
    b.load_state_dict(state)
    assert a.draw(20).tolist() == b.draw(20).tolist()


def test_task_group_sampler_draws_each_group_from_its_task() -> None:
    tasks = ["a", "b", "a", "b", "b", "a"]
    sampler = TaskGroupSampler(tasks, ["a", "b", "a", "b"], seed=0)
    for _ in range(5):
        rows = sampler.draw(4)
        assert [tasks[r] for r in rows] == ["a", "b", "a", "b"]
    state = sampler.state_dict()
    twin = TaskGroupSampler(tasks, ["a", "b", "a", "b"], seed=5)
    twin.load_state_dict(state)
    assert sampler.draw(4).tolist() == twin.draw(4).tolist()
    with pytest.raises(ValueError, match="no contexts for task"):
        TaskGroupSampler(tasks, ["c"], seed=0)
