"""Image observations; skipped cleanly where no OpenGL backend (EGL/OSMesa) can be created."""

from __future__ import annotations

import numpy as np
import pytest

from ript_fast.envs import make_vec_env


def _gl_available() -> bool:
    try:
        from ript_fast.envs.rendering import _gl_context_class

        context = _gl_context_class()(16, 16)
        context.free()
        return True
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _gl_available(), reason="no OpenGL backend (set MUJOCO_GL=egl with libegl1)")


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
