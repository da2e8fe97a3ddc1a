"""Contexts (paper Sec. 4.1): get_state() -> reset(init_state) restarts an episode bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from ript_fast.envs import TASK_NAMES, contexts, make_vec_env
from ript_fast.envs.metaworld.task_env import make_task_env, reset_task_env

MIXED = ["metaworld/pick-place-v3", "metaworld/basketball-v3", "metaworld/stick-push-v3"]


def rollout(env, actions: list[np.ndarray]) -> np.ndarray:
    frames = []
    for a in actions:
        obs, *_ = env.step(a)
        frames.append(obs.copy())
    return np.stack(frames)


def random_actions(n: int, steps: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, size=(n, 4)).astype(np.float32) for _ in range(steps)]


@pytest.fixture(scope="module")
def mixed_env():
    return make_vec_env(MIXED, num_envs=6, seed=3, autoreset=False)


def test_round_trip_reproduces_trajectory(mixed_env) -> None:
    obs0, _ = mixed_env.reset(seed=5)
    states = mixed_env.get_state()
    actions = random_actions(6, 40)
    first = rollout(mixed_env, actions)
    obs1, _ = mixed_env.reset(options={"init_state": states})
    np.testing.assert_array_equal(obs1, obs0)
    np.testing.assert_array_equal(mixed_env.get_state(), states)
    np.testing.assert_array_equal(rollout(mixed_env, actions), first)


def test_context_moves_between_envs_of_a_task(mixed_env) -> None:
    mixed_env.reset(seed=6)
    states = mixed_env.get_state()
    actions = random_actions(6, 30)
    first = rollout(mixed_env, actions)
    swapped = states[[3, 4, 5, 0, 1, 2]]  # env i and i + 3 run the same task
    mixed_env.reset(options={"init_state": swapped})
    moved = [a[[3, 4, 5, 0, 1, 2]] for a in actions]
    np.testing.assert_array_equal(rollout(mixed_env, moved), first[:, [3, 4, 5, 0, 1, 2]])


def test_layout_is_self_describing(mixed_env) -> None:
    """Each part of a row is what a MetaWorld env seeded as env i holds after its reset."""
    mixed_env.reset(seed=7)
    states = mixed_env.get_state()
    for i, task in enumerate(mixed_env.task_names):
        row = states[i]
        assert contexts.task_id(row) == TASK_NAMES.index(task)
        parts = contexts.sections(row)
        env = make_task_env(task, True, 7 + i)
        reset_task_env(env)
        np.testing.assert_array_equal(parts["target"], env._target_pos)
        np.testing.assert_array_equal(parts["body_pos"], env.model.body_pos.ravel())
        np.testing.assert_array_equal(parts["body_pos"], mixed_env.models[i].body_pos.ravel())
        np.testing.assert_array_equal(parts["site_pos"], env.model.site_pos.ravel())
        np.testing.assert_array_equal(parts["rand_vec"], env._last_rand_vec)
        assert np.all(row[int(row[2]) :] == 0)


def test_masked_restart_with_narrow_rows(mixed_env) -> None:
    mixed_env.reset(seed=8)
    states = mixed_env.get_state()
    mixed_env.step(np.zeros((6, 4), np.float32))
    mask = np.array([False, True, False, False, False, False])
    width = int(states[1, 2])  # basketball's own length: rows may be narrower than the batch's widest
    obs, _ = mixed_env.reset(options={"reset_mask": mask, "init_state": states[1:2, :width]})
    np.testing.assert_array_equal(obs[1, :18], contexts.sections(states[1])["cur0"])


def test_context_noise_is_reproducible_and_moves_objects() -> None:
    env = make_vec_env("metaworld/pick-place-v3", num_envs=3, seed=0, autoreset=False)
    env.reset()
    states = env.get_state()
    env.reset(seed=1, options={"init_state": states, "context_noise_std": 0.025})
    noisy_a = env.get_state()
    env.reset(seed=1, options={"init_state": states, "context_noise_std": 0.025})
    noisy_b = env.get_state()
    np.testing.assert_array_equal(noisy_a, noisy_b)
    for before, after in zip(states, noisy_a, strict=True):
        shift = contexts.sections(after)["rand_vec"][:2] - contexts.sections(before)["rand_vec"][:2]
        assert 0 < np.abs(shift).max() < 0.2
        np.testing.assert_array_equal(contexts.sections(after)["target"], contexts.sections(before)["target"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((6, 5)), "not a context vector"),
        (np.zeros((2, 500)), "expected shape"),
        (np.zeros((6, 500), dtype=np.int64), "dtype must be floating"),
    ],
)
def test_bad_init_state_is_named(mixed_env, value, message) -> None:
    with pytest.raises((ValueError, TypeError), match=message) as err:
        mixed_env.reset(options={"init_state": value})
    assert "init_state" in str(err.value)


def test_cut_short_rows_are_rejected_not_padded(mixed_env) -> None:
    mixed_env.reset(seed=10)
    states = mixed_env.get_state()
    before = mixed_env.models[0].body_pos.copy()
    with pytest.raises(ValueError, match=r"init_state: row 0 is cut short: 30 values"):
        mixed_env.reset(options={"init_state": states[:, :30]})
    np.testing.assert_array_equal(mixed_env.models[0].body_pos, before)  # nothing was written


def test_init_state_of_wrong_task_is_rejected(mixed_env) -> None:
    mixed_env.reset(seed=9)
    states = mixed_env.get_state()
    with pytest.raises(ValueError, match=r"init_state: row 0 .*task id"):
        mixed_env.reset(options={"init_state": states[[1, 0, 2, 3, 4, 5]]})


def test_padded_rows_of_a_mixed_batch_are_whole_contexts(mixed_env) -> None:
    """Rows of different tasks share one zero-padded array: the padding is no damage; cutting a row is."""
    mixed_env.reset(seed=11)
    states = mixed_env.get_state()
    assert len({int(row[2]) for row in states}) > 1  # the shorter tasks' rows really are padded
    for row in states:
        assert contexts.declares_layout(row) and contexts.layout_problem(row) is None
        assert contexts.layout_problem(row[: int(row[2]) - 1]).startswith("is cut short")


def test_fresh_contexts_made_in_small_env_batches_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """from_env makes its envs a few at a time (memory); each context keeps its seed and task."""
    from ript_fast.data import contexts as context_data

    name = ["metaworld/reach-v3", "metaworld/push-v3"]
    whole = context_data.ContextDataset.from_env(name, 7, seed=11)
    monkeypatch.setattr(context_data, "FROM_ENV_BATCH", 3)  # 7 > 3: batches of 2 envs (a multiple of 2 tasks)
    pieces = context_data.ContextDataset.from_env(name, 7, seed=11)
    assert pieces.task_names == whole.task_names == ["reach-v3", "push-v3"] * 3 + ["reach-v3"]
    for a, b in zip(pieces.states, whole.states, strict=True):
        width = max(len(a), len(b))
        assert np.array_equal(np.pad(a, (0, width - len(a))), np.pad(b, (0, width - len(b))))
