"""The C++ batch engine itself: thread-count determinism, fault isolation, the C++ reset settling loop."""

from __future__ import annotations

import numpy as np
import pytest

from ript_fast._core import _C
from ript_fast.envs import make_vec_env
from ript_fast.envs.metaworld.task_env import make_task_env

MIXED = ["metaworld/pick-place-v3", "metaworld/door-open-v3", "metaworld/stick-pull-v3", "metaworld/hammer-v3"]


@pytest.fixture
def restore_threads():
    before = _C.num_threads()
    yield
    _C.set_num_threads(before)


def trajectory(threads: int, steps: int = 60) -> np.ndarray:
    _C.set_num_threads(threads)
    env = make_vec_env(MIXED, num_envs=8, seed=4, max_episode_steps=25)  # crosses autoresets
    obs, _ = env.reset()
    rng = np.random.default_rng(0)
    out = [np.concatenate([obs, np.zeros((8, 1))], axis=1)]
    for _ in range(steps):
        obs, reward, *_ = env.step(rng.uniform(-1, 1, size=(8, 4)).astype(np.float32))
        out.append(np.concatenate([obs, reward[:, None]], axis=1))
    return np.stack(out)


def test_bitwise_identical_for_any_thread_count(restore_threads) -> None:
    one = trajectory(1)
    np.testing.assert_array_equal(trajectory(2), one)
    np.testing.assert_array_equal(trajectory(3), one)


def test_diverging_env_fails_alone(restore_threads) -> None:
    _C.set_num_threads(2)
    env = make_vec_env("metaworld/pick-place-v3", num_envs=4, seed=1, autoreset=True)
    ref = make_vec_env("metaworld/pick-place-v3", num_envs=4, seed=1, autoreset=True)
    env.reset()
    ref.reset()
    actions = np.full((4, 4), 0.5, np.float32)
    for e in (env, ref):
        e.step(actions)
    env.datas[2].qvel[:] = 1e20  # a deliberately exploded state (envs share the model: break this one's data)
    last_obs = env._sim.obs[2].copy()
    obs, reward, terminated, truncated, info = env.step(actions)
    ref_obs, *_ = ref.step(actions)
    assert info["sim_error"].tolist() == [False, False, True, False]
    assert truncated[2] and not terminated[2] and reward[2] == 0 and not info["success"][2]
    np.testing.assert_array_equal(obs[2], last_obs)  # the last good observation is kept
    np.testing.assert_array_equal(obs[[0, 1, 3]], ref_obs[[0, 1, 3]])  # the others are untouched
    obs, reward, _, truncated, info = env.step(actions)  # next-step autoreset of the failed env
    assert not info["sim_error"].any() and not info["active"][2] and np.isfinite(obs).all()


def test_diverging_env_is_frozen_without_autoreset() -> None:
    env = make_vec_env("metaworld/reach-v3", num_envs=2, seed=1, autoreset=False)
    env.reset()
    env.datas[0].qvel[:] = 1e20
    _, _, _, truncated, info = env.step(np.ones((2, 4), np.float32))
    assert info["sim_error"][0] and truncated[0] and not info["sim_error"][1]
    _, _, _, _, info = env.step(np.ones((2, 4), np.float32))
    assert not info["active"][0] and info["active"][1]


def test_every_divergence_is_reported_after_context_restarts() -> None:
    """MuJoCo resets a diverged data and sets its warning count to 1: a second divergence from a restarted
    context must still be seen (comparing counts before and after would read 1 -> 1)."""
    env = make_vec_env("metaworld/reach-v3", num_envs=2, seed=1, autoreset=False)
    env.reset()
    contexts = env.get_state()
    for _ in range(3):
        env.reset(options={"init_state": contexts})
        env.datas[0].qvel[:] = 1e20
        _, _, _, truncated, info = env.step(np.ones((2, 4), np.float32))
        assert info["sim_error"].tolist() == [True, False] and truncated[0]


def test_settle_matches_metaworlds_python_loop() -> None:
    ours = make_task_env("drawer-open-v3", True, seed=0)
    theirs = make_task_env("drawer-open-v3", True, seed=0)
    for env in (ours, theirs):
        env.reset()
        env.data.qpos[:] = env.init_qpos
        env.data.qvel[:] = 0
    hand = np.asarray(theirs.hand_init_pos, dtype=np.float64)
    mocap = int(theirs.model.body_mocapid[theirs.data.body("mocap").id])
    for _ in range(50):  # SawyerXYZEnv._reset_hand, verbatim in behaviour
        theirs.data.mocap_pos[mocap][:] = hand
        theirs.data.mocap_quat[mocap][:] = np.array([1, 0, 1, 0])
        theirs.do_simulation([-1, 1], theirs.frame_skip)
    type(ours)._reset_hand(ours, 50)
    np.testing.assert_array_equal(ours.data.qpos, theirs.data.qpos)
    np.testing.assert_array_equal(ours.data.qvel, theirs.data.qvel)
    np.testing.assert_array_equal(ours.data.qacc_warmstart, theirs.data.qacc_warmstart)


def test_scipy_quaternion_convention() -> None:
    from scipy.spatial.transform import Rotation

    env = make_vec_env("metaworld/pick-place-v3", num_envs=1, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs, *_ = env.step(rng.uniform(-1, 1, (1, 4)).astype(np.float32))
    xmat = env.datas[0].geom("objGeom").xmat.reshape(3, 3)
    np.testing.assert_allclose(obs[0, 7:11], Rotation.from_matrix(xmat).as_quat(), atol=1e-12)


def test_engine_rejects_malformed_buffers() -> None:
    env = make_vec_env("metaworld/reach-v3", num_envs=2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match="actions"):
        env._sim.step(np.zeros((2, 4), np.float16), np.ones(2, bool))
    with pytest.raises(ValueError, match="active"):
        env._sim.step(np.zeros((2, 4), np.float32), np.ones(3, bool))
    with pytest.raises(ValueError, match="env_ids"):
        env._sim.restore(np.zeros((1, env._sim.context_dim)), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="outside the batch"):
        env._sim.restore(env.get_state()[:1], np.array([5], np.int64))
