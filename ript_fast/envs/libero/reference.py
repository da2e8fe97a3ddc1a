"""LIBERO's own env, set up as the engine's baseline: what tests compare against and the benchmark races.

Built exactly as the engine builds its template (same fixed seed, so the same fixture placements), stepped by
robosuite's Python. `start(env, state)` is what RIPT's runners do (env.reset(), then set_init_state) without
the reset's rebuild of the scene (a hard reset re-samples fixture placements): the controller and gripper are
put back as a fresh env has them, the two things the state does not hold but the physics reads (the solver's
warm start and the controls) are cleared as the engine's load_init_states does, then set_init_state. From
there the two see the same physics.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ript_fast.envs.libero.compiler import build_libero_env
from ript_fast.envs.libero.suites import LiberoTask


def reference_env(task: LiberoTask, cameras: bool = False, size: int = 128) -> Any:
    """LIBERO's ControlEnv for `task`; with `cameras`, its OffScreenRenderEnv with agentview + wrist images."""
    if cameras:
        env = build_libero_env(
            task, has_offscreen_renderer=True, use_camera_obs=True, camera_heights=size, camera_widths=size
        )
    else:
        env = build_libero_env(task)
    robot = env.env.robots[0]
    env.fresh_controller = _plain_fields(robot.controller)
    env.fresh_gripper = np.array(robot.gripper.current_action)
    return env


def _plain_fields(obj: Any) -> dict[str, Any]:
    """An object's array and scalar attributes (the controller's state; not its simulator handle)."""
    kinds = (np.ndarray, bool, int, float, type(None))
    return {k: copy.deepcopy(v) for k, v in vars(obj).items() if isinstance(v, kinds)}


def start(env: Any, state: np.ndarray) -> Any:
    """A fresh episode of `env` (from reference_env) at LIBERO init state `state`; returns its observation."""
    robot = env.env.robots[0]
    for key, value in env.fresh_controller.items():
        setattr(robot.controller, key, copy.deepcopy(value))
    robot.gripper.current_action = env.fresh_gripper.copy()
    data = env.sim.data._data
    data.qacc_warmstart[:] = 0.0
    data.ctrl[:] = 0.0
    return env.set_init_state(np.asarray(state, dtype=np.float64))


def image_distances(name: str, size: int, init: int = 0) -> dict[str, tuple[float, float]]:
    """How far our camera images are from LIBERO's own (robosuite's renderer, its default quality) at task `name`'s
    shipped init state `init`: per camera (our key), the mean absolute difference per channel (0-255) and the
    share of pixels off by more than 48 in some channel. Ours draw in the light profile (no shadows), so the two
    are close, not equal; the scene (which geoms are drawn) must be the same."""
    from ript_fast.envs import make_vec_env
    from ript_fast.envs.libero.suites import resolve
    from ript_fast.envs.libero.vec_env import CAMERAS

    options = {"autoreset": False, "terminate_on_success": False, "render_size": (size, size)}
    env = make_vec_env(name, 1, seed=0, obs_mode="rgb", **options)
    theirs = reference_env(resolve(name)[0], cameras=True, size=size)
    try:
        state = np.asarray(env.shipped_init_states[0][init])
        their_obs = start(theirs, state)
        our_obs, _ = env.reset(options={"init_state": state[None]})
        out = {}
        for key, camera in CAMERAS.items():  # robosuite's observation of a camera: "<camera>_image"
            diff = np.abs(our_obs[key][0].astype(np.int32) - np.asarray(their_obs[f"{camera}_image"]).astype(np.int32))
            out[key] = (float(diff.mean()), float((diff.max(-1) > 48).mean()))
        return out
    finally:
        theirs.close()
        env.close()
