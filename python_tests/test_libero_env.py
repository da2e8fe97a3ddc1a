"""LIBERO through make_vec_env: names, the env contract (spaces, contexts, autoreset, errors), determinism."""

from __future__ import annotations

import numpy as np
import pytest

from python_tests.libero_helpers import requires_gl, requires_libero

pytestmark = requires_libero

NAME = "libero/goal/open_the_middle_drawer_of_the_cabinet"


@pytest.fixture(scope="module")
def env():
    from ript_fast.envs import make_vec_env

    env = make_vec_env(NAME, num_envs=3, seed=0)
    yield env
    env.close()


def _random_actions(n: int, steps: int, seed: int) -> np.ndarray:
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(steps, n, 7))
    actions[..., 6] = np.sign(actions[..., 6])
    return actions


def test_names_resolve_by_name_index_and_suite() -> None:
    from ript_fast.envs.registry import resolve_libero, resolve_tasks

    assert resolve_tasks(NAME) == [NAME.removeprefix("libero/")]
    by_name = resolve_libero(NAME)
    assert resolve_libero("libero/goal/" + str(by_name[0].index)) == by_name
    assert [len(resolve_libero(f"libero/{s}")) for s in ("spatial", "object", "goal", "10", "90")] == [
        10,
        10,
        10,
        10,
        90,
    ]
    assert resolve_libero("libero/long/0") == resolve_libero("libero/10/0")
    with pytest.raises(ValueError, match=r"name: .*did you mean"):
        resolve_libero("libero/goal/open_the_middle_drawer_of_the_cabinett")
    with pytest.raises(ValueError, match="name: unknown LIBERO suite"):
        resolve_libero("libero/spacial/0")
    with pytest.raises(ValueError, match="out of range"):
        resolve_libero("libero/goal/10")
    with pytest.raises(ValueError, match="mix LIBERO and MetaWorld"):
        from ript_fast.envs import make_vec_env

        make_vec_env(["libero/goal/0", "metaworld/reach-v3"], 2)


def test_spaces_obs_and_info(env) -> None:
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 16) and obs.dtype == np.float64
    assert env.single_action_space.shape == (7,)
    assert env.task_names == [NAME.removeprefix("libero/")] * 3
    assert env.instructions[0] == "open the middle drawer of the cabinet"
    np.testing.assert_array_equal(obs[:, :7], np.stack([d.qpos[:7] for d in env.datas]))
    _, reward, terminated, _, info = env.step(np.zeros((3, 7), np.float32))
    assert reward.shape == (3,) and terminated.dtype == bool and set(info) >= {"success", "sim_error", "active"}


def test_plain_reset_draws_shipped_init_states(env) -> None:
    env.reset(seed=5)
    shipped = env.shipped_init_states[0]
    for data in env.datas:
        assert np.any(np.all(shipped[:, 1 : 1 + data.qpos.size] == data.qpos, axis=1))


def test_context_round_trip_is_exact(env) -> None:
    env.reset(seed=1)
    contexts = env.get_state()
    actions = _random_actions(3, 15, 0)
    first = [env.step(a)[0].copy() for a in actions]
    env.reset(options={"init_state": contexts})
    again = [env.step(a)[0].copy() for a in actions]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))


def test_envs_of_a_task_share_one_model_never_written(env) -> None:
    from ript_fast.envs import contexts as ctx

    assert env.models[0] is env.models[1] is env.models[2]
    env.reset(seed=2)
    rows = env.get_state()
    rows[0, ctx.section_start(rows[0], "body_pos") + 5] += 0.01
    with pytest.raises(ValueError, match=r"init_state: row 0 \(for env 0\) was captured with other fixture"):
        env.reset(options={"init_state": rows})


def test_libero_rows_and_contexts_start_the_same_episode(env) -> None:
    rows = env.shipped_init_states[0][:3]
    env.reset(options={"init_state": rows})
    contexts = env.get_state()
    actions = _random_actions(3, 5, 1)
    first = [env.step(a)[0].copy() for a in actions]
    env.reset(options={"init_state": contexts})
    np.testing.assert_array_equal(np.stack(first), np.stack([env.step(a)[0].copy() for a in actions]))


def test_context_noise_moves_objects_reproducibly(env) -> None:
    rows = env.shipped_init_states[0][:3]
    env.reset(seed=3, options={"init_state": rows, "context_noise_std": 0.01})
    noisy = np.stack([d.qpos.copy() for d in env.datas])
    env.reset(seed=3, options={"init_state": rows, "context_noise_std": 0.01})
    np.testing.assert_array_equal(noisy, np.stack([d.qpos for d in env.datas]))
    moved = np.abs(noisy - rows[:, 1 : 1 + noisy.shape[1]]) > 0
    assert not moved[:, :9].any() and moved.any()  # the robot stays, objects move


def test_deterministic_across_thread_counts() -> None:
    from ript_fast._core import _C
    from ript_fast.envs import make_vec_env

    results = []
    before = _C.num_threads()
    try:
        for threads in (1, 2):
            _C.set_num_threads(threads)
            env = make_vec_env("libero/goal/0", num_envs=3, seed=0)
            env.reset(seed=0)
            results.append(np.stack([env.step(a)[0].copy() for a in _random_actions(3, 10, 2)]))
    finally:
        _C.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])


def test_truncation_and_frozen_envs() -> None:
    from ript_fast.envs import make_vec_env

    env = make_vec_env("libero/goal/0", num_envs=2, seed=0, max_episode_steps=3, autoreset=False)
    env.reset()
    for _ in range(3):
        _, _, _, truncated, _ = env.step(np.zeros((2, 7)))
    assert truncated.all()
    time_at_end = env.datas[0].time
    _, reward, _, truncated, info = env.step(np.ones((2, 7)))
    assert env.datas[0].time == time_at_end and not info["active"].any() and (reward == 0).all() and truncated.all()


def test_suite_batch_and_default_lengths() -> None:
    from ript_fast.envs import make_vec_env
    from ript_fast.envs.libero.suites import MAX_STEPS

    env = make_vec_env(["libero/goal/0", "libero/spatial/0"], num_envs=3, seed=0, max_episode_steps=None)
    assert env.task_names[2] == env.task_names[0] != env.task_names[1]
    assert env._sim.size == 3 and MAX_STEPS["goal"] == 300
    env.reset()
    with pytest.raises(ValueError, match=r"init_state: row 1 \(for env 1\) belongs to task id"):
        env.reset(options={"init_state": np.roll(env.get_state(), 1, axis=0)})


def test_bad_actions_name_the_argument(env) -> None:
    env.reset()
    with pytest.raises(ValueError, match="actions: expected shape"):
        env.step(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="actions: dtype"):
        env.step(np.zeros((3, 7), np.int64))
    bad = np.zeros((3, 7))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="actions: non-finite value at env 1, component 2"):
        env.step(bad)


@requires_gl
def test_demo_files_in_libero_layout_load_and_replay(tmp_path) -> None:
    from ript_fast.data.demo_file import read_demo_file
    from ript_fast.envs import make_vec_env
    from ript_fast.envs.libero.demos import OBS_KEYS, record_demos

    actions = [_random_actions(1, 6, 7)[:, 0], _random_actions(1, 4, 8)[:, 0]]
    path = record_demos("libero/goal/0", actions, tmp_path / "demo.hdf5", render_size=(32, 32))
    demos = read_demo_file(path)
    assert demos.task_name.startswith("goal/") and demos.instruction == "open the middle drawer of the cabinet"
    assert [len(ep) for ep in demos.episodes] == [6, 4]
    ep = demos.episodes[0]
    assert set(ep.obs) >= set(OBS_KEYS) and ep.obs["agentview_rgb"].shape == (6, 32, 32, 3)
    env = make_vec_env("libero/goal/0", 1, autoreset=False, terminate_on_success=False)
    np.testing.assert_array_equal(env.shipped_init_states[0][0], ep.states[0])
    obs, _ = env.reset(options={"init_state": ep.states[:1]})
    for t in range(len(ep)):
        np.testing.assert_array_equal(obs[0, :7], ep.obs["joint_states"][t])
        obs, *_ = env.step(ep.actions[t : t + 1].astype(np.float64))


@pytest.mark.slow
@pytest.mark.parametrize("suite", ["spatial", "object", "goal", "10", "90"])
def test_every_task_of_every_suite_builds_and_steps(suite: str) -> None:
    """Every task compiles (model, controller, goal) and steps from its first shipped init state (~4 s a task)."""
    from ript_fast.envs import make_vec_env
    from ript_fast.envs.registry import resolve_libero

    for task in resolve_libero(f"libero/{suite}"):
        env = make_vec_env(f"libero/{suite}/{task.name}", 1, seed=0, autoreset=False)
        env.reset(options={"init_state": env.shipped_init_states[0][:1]})
        _, _, _, _, info = env.step(np.zeros((1, 7)))
        assert not info["sim_error"][0] and not info["success"][0], task.name
        env.close()
