"""Our batched MetaWorld against MetaWorld itself: same task, same initial state, same actions ->
the same observations (<= 1e-6), success flags and truncation; scripted experts succeed through our env, at the
same step as through MetaWorld's (11 tasks in CI, every task under `-m slow`)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ript_fast.envs import TASK_NAMES, expert_actions, make_vec_env
from ript_fast.envs.metaworld.task_env import reference_env

FAST_TASKS = [
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "button-press-v3",
    "drawer-open-v3",
    "door-open-v3",
    "basketball-v3",  # goal read live from mjData
    "stick-push-v3",  # contact rule
    "dial-turn-v3",  # joint-arc object position
    "lever-pull-v3",  # qpos rule
    "assembly-v3",  # two-condition rule
]


def compare_rollout(task: str, steps: int, seed: int, policy: str) -> None:
    ref = reference_env(task, seed, max_steps=steps)
    ours = make_vec_env(f"metaworld/{task}", num_envs=1, seed=seed, max_episode_steps=steps, terminate_on_success=False)
    ref_obs, _ = ref.reset()
    obs, _ = ours.reset()
    np.testing.assert_array_equal(obs[0], ref_obs, err_msg=f"{task}: reset observation")
    rng = np.random.default_rng(seed)
    for t in range(steps):
        if policy == "random" or (policy == "mixed" and t % 3 == 2):
            action = rng.uniform(-1, 1, size=(1, 4)).astype(np.float32)
        else:
            action = expert_actions(obs, [task])
            action = np.clip(action + rng.normal(0, 0.1, action.shape), -1, 1).astype(np.float32)
        ref_obs, _, _, ref_trunc, ref_info = ref.step(action[0])
        obs, reward, terminated, truncated, info = ours.step(action)
        np.testing.assert_allclose(obs[0], ref_obs, rtol=0, atol=1e-6, err_msg=f"{task}: obs at step {t}")
        assert bool(info["success"][0]) == bool(ref_info["success"]), f"{task}: success at step {t}"
        assert reward[0] == float(bool(ref_info["success"]))
        assert bool(truncated[0]) == bool(ref_trunc), f"{task}: truncation at step {t}"
        assert not terminated[0]
    assert truncated[0]


@pytest.fixture(autouse=True)
def _quiet_experts():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the experts warn about their own gains
        yield


@pytest.mark.parametrize("task", FAST_TASKS)
def test_matches_metaworld(task: str) -> None:
    compare_rollout(task, steps=80, seed=3, policy="mixed")


def compare_expert_to_success(task: str, seed: int, after: int = 10) -> int:
    """MetaWorld's scripted expert (no noise) drives our env and MetaWorld's own with the same actions until
    both report success, then `after` steps more: observations agree at every step (<= 1e-6), so do the
    success flags and rewards, and success first comes at the same step. Returns that step."""
    ref = reference_env(task, seed, max_steps=500)
    ours = make_vec_env(f"metaworld/{task}", num_envs=1, seed=seed, max_episode_steps=500, terminate_on_success=False)
    obs, _ = ours.reset()
    ref_obs, _ = ref.reset()
    np.testing.assert_array_equal(obs[0], ref_obs, err_msg=f"{task}: reset observation")
    first = None
    for t in range(500):
        action = expert_actions(obs, [task])
        ref_obs, _, _, _, ref_info = ref.step(action[0])
        obs, reward, _, _, info = ours.step(action)
        np.testing.assert_allclose(obs[0], ref_obs, rtol=0, atol=1e-6, err_msg=f"{task}: obs at step {t}")
        assert bool(info["success"][0]) == bool(ref_info["success"]), f"{task}: success at step {t}"
        assert reward[0] == float(bool(ref_info["success"]))
        if first is None and ref_info["success"]:
            first = t
        if first is not None and t >= first + after:
            break
    assert first is not None, f"{task}: the expert never succeeded in 500 steps in MetaWorld"
    ours.close()
    return first


@pytest.mark.parametrize("seed", [3, 7])
@pytest.mark.parametrize("task", FAST_TASKS)
def test_experts_reach_success_at_the_same_step(task: str, seed: int) -> None:
    """The success predicates compared where it matters: through the step at which they turn true."""
    assert compare_expert_to_success(task, seed) < 490


@pytest.mark.slow
@pytest.mark.parametrize("task", TASK_NAMES)
@pytest.mark.parametrize("policy", ["expert", "random"])
def test_matches_metaworld_full_episode(task: str, policy: str) -> None:
    compare_rollout(task, steps=500, seed=11, policy=policy)


def expert_success_rate(task: str, num_envs: int, seed: int) -> float:
    env = make_vec_env(f"metaworld/{task}", num_envs=num_envs, seed=seed, autoreset=False)
    obs, _ = env.reset()
    solved = np.zeros(num_envs, dtype=bool)
    for _ in range(500):
        obs, _, terminated, truncated, info = env.step(expert_actions(obs, env.task_names))
        solved |= info["success"]
        if np.all(terminated | truncated):
            break
    return float(solved.mean())


def metaworld_expert_success_rate(task: str, num_envs: int, seed: int) -> float:
    solved = 0
    for i in range(num_envs):
        env = reference_env(task, seed + i)
        obs, _ = env.reset()
        for _ in range(500):
            obs, _, _, truncated, info = env.step(expert_actions(obs[None], [task])[0])
            if info["success"]:
                solved += 1
                break
            if truncated:
                break
    return solved / num_envs


@pytest.mark.parametrize("task", ["reach-v3", "button-press-v3", "drawer-open-v3", "door-open-v3"])
def test_experts_solve_through_our_env(task: str) -> None:
    assert expert_success_rate(task, num_envs=6, seed=0) >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("task", TASK_NAMES)
def test_experts_match_metaworld_rate(task: str) -> None:
    ours = expert_success_rate(task, num_envs=10, seed=100)
    theirs = metaworld_expert_success_rate(task, num_envs=10, seed=100)
    assert ours == theirs
    if theirs >= 0.9:
        assert ours >= 0.9
