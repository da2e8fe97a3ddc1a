"""Image observations, every step or on demand; skipped cleanly where no OpenGL backend (EGL/OSMesa) can be
created, except under CI (CI=true), where that skip is a failure (conftest.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from python_tests.conftest import GL_SKIP_REASON, gl_error
from ript_fast.envs import make_vec_env
from ript_fast.envs.libero.setup import libero_available


def _gl_available() -> bool:
    return gl_error() is None


pytestmark = pytest.mark.skipif(
    not _gl_available(), reason=f"{GL_SKIP_REASON} (set MUJOCO_GL=egl with libegl1): {gl_error()}"
)


def test_rgb_and_state_modes() -> None:
    env = make_vec_env(["metaworld/reach-v3", "metaworld/button-press-v3"], num_envs=2, seed=0, obs_mode="state+rgb")
    try:
        obs, _ = env.reset()
        assert obs["state"].shape == (2, 39)
        assert obs["rgb"].shape == (2, 128, 128, 3) and obs["rgb"].dtype == np.uint8
        assert obs["rgb"].std() > 10  # a scene, not a blank frame
        assert not np.array_equal(obs["rgb"][0], obs["rgb"][1])  # each env rendered with its own task
        first = obs["rgb"].copy()
        obs, *_ = env.step(np.tile(np.array([[1.0, 0.0, 0.0, 1.0]], np.float32), (2, 1)))
        assert not np.array_equal(obs["rgb"], first)  # the arm moved
        assert env.single_observation_space["rgb"].shape == (128, 128, 3)
    finally:
        env.close()


def test_rgb_only_mode_and_size() -> None:
    env = make_vec_env("metaworld/reach-v3", num_envs=1, seed=0, obs_mode="rgb", render_size=(64, 96))
    try:
        obs, _ = env.reset()
        assert obs.shape == (1, 64, 96, 3)
    finally:
        env.close()


def _stack(images: dict[str, np.ndarray], keys: list[str]) -> np.ndarray:
    return np.stack([images[k] for k in keys])


def _compare_on_demand_with_every_step(make, action_dim: int, steps: int, seed: int = 0) -> None:
    """Steps an env rendering every step and one rendering on demand with the same actions, asking the second
    for the images of a random subset of envs at random steps (so it renders nothing for many steps in
    between): each image must equal, pixel for pixel, what the first returned for that env at that step."""
    every, lazy = make(True), make(False)
    rng = np.random.default_rng(seed)
    try:
        obs, _ = every.reset(seed=seed)
        lazy_obs, _ = lazy.reset(seed=seed)
        keys = list(every.image_cameras)
        assert not set(keys) & set(lazy_obs)  # nothing rendered with the observation
        asked = 0
        for t in range(steps):
            if t == steps // 2:  # a partial reset after rendering all: the reset envs' frames must be new
                lazy.render_observations()
                mask = np.arange(every.num_envs) % 2 == 0
                obs, _ = every.reset(options={"reset_mask": mask})
                lazy_obs, _ = lazy.reset(options={"reset_mask": mask})
                np.testing.assert_array_equal(_stack(lazy.render_observations(), keys), _stack(obs, keys))
            if rng.random() < 0.4:
                ids = np.sort(rng.choice(every.num_envs, size=int(rng.integers(1, every.num_envs + 1)), replace=False))
                asked_keys = [k for k in keys if rng.random() < 0.7] or keys
                images = lazy.render_observations(ids, asked_keys)
                assert sorted(images) == sorted(asked_keys)
                for k in asked_keys:
                    np.testing.assert_array_equal(images[k], obs[k][ids], err_msg=f"{k} step {t} envs {ids}")
                asked += 1
            np.testing.assert_array_equal(lazy_obs["state"], obs["state"])
            actions = rng.uniform(-1, 1, size=(every.num_envs, action_dim)).astype(np.float32)
            obs, *_ = every.step(actions)
            lazy_obs, *_ = lazy.step(actions)
        assert asked >= 3
    finally:
        every.close()
        lazy.close()


def test_frames_on_demand_equal_every_step_frames() -> None:
    """Mixed tasks, autoreset after 4 steps and a partial reset: every frame asked for is the every-step one."""

    def make(every_step: bool):
        names = ["metaworld/reach-v3", "metaworld/pick-place-v3", "metaworld/drawer-open-v3"]
        options = {"max_episode_steps": 4, "render_size": (48, 64), "render_every_step": every_step}
        return make_vec_env(names, 5, seed=0, obs_mode="state+rgb", **options)

    _compare_on_demand_with_every_step(make, action_dim=4, steps=14)


@pytest.mark.skipif(not libero_available(), reason="LIBERO is not installed (bash scripts/install_libero.sh)")
@pytest.mark.libero
def test_libero_frames_on_demand_equal_every_step_frames() -> None:
    """Both cameras, asked for separately or together."""

    def make(every_step: bool):
        return make_vec_env(
            "libero/goal/0", 3, seed=0, obs_mode="state+rgb", render_size=(32, 32), render_every_step=every_step
        )

    _compare_on_demand_with_every_step(make, action_dim=7, steps=8)


def test_only_asked_frames_are_rendered_once_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """On demand, reset and step render nothing; render_observations draws the envs asked for, once per state
    (asking again, or for an env that a partial reset or a step left as it was, reuses its frame)."""
    env = make_vec_env(
        "metaworld/reach-v3", 4, seed=0, obs_mode="rgb", autoreset=False, max_episode_steps=2, render_every_step=False
    )
    drawn: list[int] = []  # the envs each render call drew, in index order (they are drawn in parallel)
    renderer, render = env._renderer, env._renderer.render

    def recording(rows=None, cameras=None) -> None:
        stale = ~renderer.current["corner2"]
        render(rows, cameras)
        drawn.extend(np.flatnonzero(stale & renderer.current["corner2"]).tolist())

    monkeypatch.setattr(renderer, "render", recording)
    zeros = np.zeros((4, 4), np.float32)
    try:
        env.reset()
        obs, *_ = env.step(zeros)
        assert drawn == [] and set(obs) == {"state"}
        env.render_observations([3, 1])
        env.render_observations([1])
        assert drawn == [1, 3]
        env.reset(options={"reset_mask": np.array([True, False, True, True])})  # env 1 keeps its step count
        env.render_observations([1, 3])
        assert drawn == [1, 3, 3]
        _, _, _, truncated, _ = env.step(zeros)
        assert truncated.tolist() == [False, True, False, False]  # env 1 finished: it is not stepped again
        env.render_observations()
        env.step(zeros)
        env.render_observations()
        assert drawn == [1, 3, 3, 0, 1, 2, 3, 0, 2, 3]
        with env.rendering_mode(every_step=True):
            obs, _ = env.reset()
            assert obs.shape == (4, 128, 128, 3) and drawn[10:] == [0, 1, 2, 3]
        assert not env.render_every_step
    finally:
        env.close()


def test_render_observations_errors() -> None:
    env = make_vec_env("metaworld/reach-v3", 2, seed=0, obs_mode="state+rgb")
    try:
        env.reset()
        with pytest.raises(ValueError, match=r"ids: env indices must be in \[0, 2\)"):
            env.render_observations([2])
        with pytest.raises(ValueError, match="ids: must be a 1-D sequence"):
            env.render_observations([[0]])
        with pytest.raises(ValueError, match=r"keys: \['agentview_rgb'\] are not image keys.*\['rgb'\]"):
            env.render_observations(keys=["agentview_rgb"])
        assert env.render_observations([])["rgb"].shape == (0, 128, 128, 3)
    finally:
        env.close()
    with pytest.raises(ValueError, match="render_observations: this env has no cameras"):
        make_vec_env("metaworld/reach-v3", 1, seed=0).render_observations()
    with pytest.raises(gym.error.ClosedEnvironmentError, match="render_observations: this env was closed"):
        env.render_observations()
