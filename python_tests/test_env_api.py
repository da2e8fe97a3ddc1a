"""The vector-env contract: spaces, autoreset modes, info, names, and clear errors for bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from ript_fast.envs import expert_actions, make_vec_env


@pytest.fixture(scope="module")
def env():
    return make_vec_env("metaworld/reach-v3", num_envs=3, seed=0)


def test_shapes_and_metadata(env) -> None:
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 39) and obs.dtype == np.float64
    assert env.single_action_space.shape == (4,)
    assert env.task_names == ["reach-v3"] * 3
    assert all(isinstance(s, str) and s for s in env.instructions)
    obs, reward, terminated, truncated, info = env.step(np.zeros((3, 4), np.float32))
    assert reward.shape == (3,) and terminated.dtype == bool and truncated.dtype == bool
    assert set(info) >= {"success", "sim_error", "active"}


def test_seed_gives_same_episodes(env) -> None:
    first, _ = env.reset(seed=42)
    first = first.copy()
    env.reset(seed=7)
    again, _ = env.reset(seed=42)
    np.testing.assert_array_equal(again, first)
    assert not np.array_equal(first[0], first[1])  # env i draws from seed + i


def test_groups_and_lists_assign_tasks_round_robin() -> None:
    env = make_vec_env(["metaworld/reach-v3", "metaworld/push-v3"], num_envs=3, seed=0)
    assert env.task_names == ["reach-v3", "push-v3", "reach-v3"]


def test_next_step_autoreset() -> None:
    env = make_vec_env("metaworld/reach-v3", num_envs=2, seed=1, max_episode_steps=3)
    env.reset()
    for _ in range(3):
        _, _, _, truncated, _ = env.step(np.zeros((2, 4), np.float32))
    assert truncated.all()
    before = env.get_state().copy()
    obs, reward, terminated, truncated, info = env.step(np.ones((2, 4), np.float32))
    assert not truncated.any() and not terminated.any() and (reward == 0).all()
    assert not info["active"].any()
    assert not np.array_equal(env.get_state(), before)  # a fresh episode was sampled
    np.testing.assert_array_equal(obs[:, :18], obs[:, 18:36])  # a reset observation


def test_finished_envs_are_frozen_without_autoreset() -> None:
    env = make_vec_env("metaworld/button-press-v3", num_envs=2, seed=2, autoreset=False)
    obs, _ = env.reset()
    for _ in range(500):
        obs, _, terminated, _, info = env.step(expert_actions(obs, env.task_names))
        if terminated[0]:
            break
    assert terminated[0] and info["success"][0]
    time_at_end = env.datas[0].time
    frozen_obs = obs[0].copy()
    obs, reward, terminated, _, info = env.step(np.ones((2, 4), np.float32))
    assert env.datas[0].time == time_at_end  # not stepped: no physics spent on it
    np.testing.assert_array_equal(obs[0], frozen_obs)
    assert terminated[0] and reward[0] == 0 and not info["active"][0]
    obs, _ = env.reset(options={"reset_mask": np.array([True, False])})
    assert not np.array_equal(obs[0], frozen_obs)
    _, _, terminated, _, info = env.step(np.zeros((2, 4), np.float32))
    assert info["active"][0] and not terminated[0]


def test_copy_option_returns_fresh_arrays() -> None:
    env = make_vec_env("metaworld/reach-v3", num_envs=1, seed=0, copy=True)
    a, _ = env.reset()
    b, *_ = env.step(np.zeros((1, 4), np.float32))
    assert not np.shares_memory(a, b)


@pytest.mark.parametrize(
    ("actions", "error", "message"),
    [
        (np.zeros((2, 4), np.float32), ValueError, r"actions: expected shape \(3, 4\)"),
        (np.zeros((3, 3), np.float32), ValueError, r"actions: expected shape"),
        (np.zeros((3, 4), np.int64), TypeError, "actions: dtype must be floating"),
        (np.full((3, 4), np.nan, np.float32), ValueError, "actions: non-finite value at env 0"),
        (np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, np.inf, 0, 0]], np.float64), ValueError, "env 2"),
    ],
)
def test_bad_actions_are_named(env, actions, error, message) -> None:
    env.reset(seed=0)
    with pytest.raises(error, match=message):
        env.step(actions)


def test_stepping_some_envs_leaves_the_others_as_they_were() -> None:
    """`step(actions, env_ids=...)` moves those envs only; an env that finished waits for the step that includes it
    to be reset (autoreset), however many steps of other envs come first."""
    env = make_vec_env("metaworld/reach-v3", num_envs=3, seed=0, max_episode_steps=2)
    env.reset(seed=0)
    actions = np.full((3, 4), 0.5, np.float32)
    env.step(actions)
    obs, _, _, truncated, info = env.step(actions)
    assert truncated.all()  # all three are done: the next step that includes an env resets it
    times = [d.time for d in env.datas]
    finished_obs = obs.copy()
    obs, reward, _, truncated, info = env.step(actions, env_ids=[0])
    assert info["active"].tolist() == [False, False, False] and reward.tolist() == [0.0, 0.0, 0.0]
    assert env.datas[0].time < times[0] and [d.time for d in env.datas[1:]] == times[1:]  # 0 reset, 1 and 2 not
    np.testing.assert_array_equal(obs[1:], finished_obs[1:])
    obs, _, _, _, info = env.step(actions, env_ids=np.array([0, 2]))
    assert info["active"].tolist() == [True, False, False]  # 0 stepped, 2 reset, 1 still waiting
    assert env.datas[1].time == times[1] and env.datas[2].time < times[2]
    _, _, _, _, info = env.step(actions)
    assert info["active"].tolist() == [True, False, True]  # 1 reset by the step that included it
    with pytest.raises(ValueError, match=r"ids: env indices must be in \[0, 3\)"):
        env.step(actions, env_ids=[3])
    env.close()


def test_nan_action_changes_nothing(env) -> None:
    env.reset(seed=0)
    time_before = [d.time for d in env.datas]
    bad = np.zeros((3, 4), np.float32)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError):
        env.step(bad)
    assert [d.time for d in env.datas] == time_before


def test_unknown_task_lists_close_matches() -> None:
    with pytest.raises(ValueError, match=r"name: unknown environment 'metaworld/pick-plce-v3'.*pick-place-v3"):
        make_vec_env("metaworld/pick-plce-v3", num_envs=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_envs": 0}, "num_envs"),
        ({"num_envs": 2, "seed": -1}, "seed"),
        ({"num_envs": 1, "obs_mode": "depth"}, "obs_mode"),
        ({"num_envs": 1, "render_every_step": "no"}, "render_every_step: must be True or False"),
        *[
            ({"num_envs": 1, "obs_mode": mode, "render_size": size}, r"render_size: must be \(height, width\), two pos")
            for size in [(0, 128), (128, -1), (128,), (64, 64, 3), (12.5, 128), ("64", 64), (True, 64), 128, None]
            for mode in ["state", "rgb"]
        ],
        *[
            ({"num_envs": 1, "obs_mode": mode, "camera": cam}, r"camera: must be one of .*'corner2', .*got ")
            for cam in ["corner9", "", ["corner2"]]
            for mode in ["state", "rgb"]
        ],
    ],
)
def test_bad_construction_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_vec_env("metaworld/reach-v3", **kwargs)


def test_without_a_seed_each_env_draws_fresh_episodes() -> None:
    """seed=None (the default) is a random base seed, not an error from MetaWorld's own seed()."""
    first, _ = make_vec_env("metaworld/reach-v3", num_envs=2).reset()
    second, _ = make_vec_env("metaworld/reach-v3", num_envs=2).reset()
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first, second)


def test_a_closed_env_refuses_every_call() -> None:
    env = make_vec_env("metaworld/reach-v3", num_envs=2, seed=0)
    env.reset()
    env.close()
    env.close()  # closing twice is harmless
    for call in (
        env.reset,
        lambda: env.step(np.zeros((2, 4), np.float32)),
        env.get_state,
        env.render_observations,
    ):
        with pytest.raises(gym.error.ClosedEnvironmentError, match=r"^\w+: this env was closed"):
            call()


def test_bad_reset_options_are_named(env) -> None:
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.ones(2, bool)})
    with pytest.raises(ValueError, match="options: unknown keys"):
        env.reset(options={"init_states": None})
    with pytest.raises(ValueError, match="context_noise_std"):
        env.reset(options={"context_noise_std": -1.0})


def test_goal_hidden_mode_zeroes_the_goal() -> None:
    env = make_vec_env("metaworld/ML45-test", num_envs=5, seed=0, goal_observable=False)
    obs, _ = env.reset()
    assert env.task_names[0] == "bin-picking-v3"
    for _ in range(3):
        obs, *_ = env.step(np.zeros((5, 4), np.float32))
        assert np.all(obs[:, 36:39] == 0)
