"""The engine against LIBERO's own env: from the same init state, the same actions give the same robot joint
trajectory (within ROBOT_TOL) and the same success flag at every step.

Two episodes per task: random actions (the controller and gripper under load), and zero actions from the init
state with the goal's objects moved onto their targets (so that the goal predicates are exercised, true and
false). Objects' own states agree closely too but contacts amplify float differences chaotically (the OSC's
linear algebra differs from numpy's in the last bits), so only the robot's joints carry a tolerance there.

And episodes that reach success: a scripted controller drives LIBERO's env until its goal holds (a drawer pushed
shut, a bowl carried onto a plate; under -m slow also a stove knob turned and a can put in a basket) while our
engine gets the same actions; every step, the robot's joints, every object's pose and articulations, the
observation the policy reads (against robosuite's own observables) and the success flag must agree, so success
comes at the same step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np
import pytest

from python_tests.libero_helpers import (
    SETTLE_STEPS,
    Waypoint,
    bowl_onto_plate,
    close_top_drawer,
    goal_state,
    object_poses,
    paired,
    proprio,
    proprio_reference,
    requires_libero,
    restart,
    scripted_actions,
    soup_into_basket,
    turn_on_stove,
)

pytestmark = requires_libero

ROBOT_TOL = 1e-6  # rad (arm) / m (fingers): measured <= 7e-8 after 60 random steps on every suite
# The success paths hold, push and carry objects, whose contact forces agree to the contact solver's tolerance
# (the controller's last-bit differences decide where its iterations stop), and that reaches the robot too.
# Measured over the four paths: robot joints and observation <= 5e-7 (object/0's can held; 3e-8 spatial/0's
# bowl), objects <= 4e-6 (spatial/0; 1e-10 for the drawer and the knob).
PATH_ROBOT_TOL = 1e-5  # rad / m: robot joints and the observation (joints, gripper site, hand orientation, fingers)
PATH_OBJECT_TOL = 1e-4  # m (position), quaternion, m or rad (articulation)
AFTER_SUCCESS = 3  # steps compared past the first success (the flag must stay in agreement)
STEPS = 60
FAST = ["libero/goal/0"]
EVERY_SUITE = [
    "libero/spatial/0",
    "libero/spatial/7",
    "libero/object/5",
    "libero/goal/5",
    "libero/10/0",
    "libero/10/5",
    "libero/90/0",
    "libero/90/40",
]


def _episode(name: str, mode: str) -> tuple[float, bool, int]:
    """(worst robot joint difference, success agreed at every step, steps LIBERO called a success)."""
    env, ref = paired(name, 3)
    if mode == "goal":
        restart(env, ref, goal_state(ref, env.shipped_init_states[0][3]))
    rng = np.random.default_rng(0)
    worst, agreed, successes = 0.0, True, 0
    for _ in range(STEPS):
        action = np.zeros(7)
        if mode == "random":
            action = rng.uniform(-1.0, 1.0, 7)
            action[6] = np.sign(action[6])
        _, _, _, _, info = env.step(action[None])
        ref.step(action)
        worst = max(worst, float(np.abs(env.datas[0].qpos[:9] - ref.sim.data.qpos[:9]).max()))
        ours, theirs = bool(info["success"][0]), bool(ref.check_success())
        agreed &= ours == theirs
        successes += theirs
    env.close()
    return worst, agreed, successes


@pytest.mark.parametrize("name", FAST + [pytest.param(name, marks=pytest.mark.slow) for name in EVERY_SUITE])
@pytest.mark.parametrize("mode", ["random", "goal"])
def test_matches_libero(name: str, mode: str) -> None:
    worst, agreed, successes = _episode(name, mode)
    assert worst <= ROBOT_TOL
    assert agreed
    if name in FAST and mode == "goal":
        assert successes > 0  # the predicates were exercised on true states too


SUCCESS_PATHS = [
    pytest.param("libero/90/0", close_top_drawer, id="libero/90/0"),
    pytest.param("libero/spatial/0", bowl_onto_plate, id="libero/spatial/0"),
    pytest.param("libero/goal/7", turn_on_stove, id="libero/goal/7", marks=pytest.mark.slow),
    pytest.param("libero/object/0", soup_into_basket, id="libero/object/0", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "plan"), SUCCESS_PATHS)
def test_success_path_matches_libero(name: str, plan: Callable[[Any], list[Waypoint]]) -> None:
    """LIBERO's env driven to success by a scripted controller, our engine given the same actions: the robot,
    every object, the observation and the success flag agree at every step (so success comes at one step)."""
    env, ref = paired(name, 0)
    model, data = env.models[0], env.datas[0]
    ref_model, ref_data = ref.sim.model._model, ref.sim.data._data
    assert (model.nq, model.nbody) == (ref_model.nq, ref_model.nbody)
    success_step: int | None = None
    step = 0
    for step, action in enumerate(scripted_actions(ref, plan), start=1):
        obs, _, _, _, info = env.step(action[None])
        ref.step(action)
        ours, theirs = bool(info["success"][0]), bool(ref.check_success())
        assert ours == theirs, f"step {step}: success ours {ours}, LIBERO {theirs}"
        # LIBERO's check_success read the state the last substep left, as ours did; the observation and the
        # poses are read where the step ended (our engine's observation is taken there), so refresh LIBERO's
        # kinematics: its next step recomputes them anyway (robosuite calls mj_forward before each substep).
        mujoco.mj_kinematics(ref_model, ref_data)
        _assert_close(data.qpos[:9], ref_data.qpos[:9], PATH_ROBOT_TOL, f"step {step}: robot joints")
        _assert_close(proprio(obs[0]), proprio_reference(ref), PATH_ROBOT_TOL, f"step {step}: observation")
        poses = object_poses(ref.env, model, data)
        for obj, pose in object_poses(ref.env, ref_model, ref_data).items():
            _assert_close(poses[obj], pose, PATH_OBJECT_TOL, f"step {step}: {obj} pose")
        success_step = success_step or (step if theirs else None)
        if success_step is not None and step >= success_step + AFTER_SUCCESS:
            break
    env.close()
    assert success_step is not None, f"the scripted path ended after {step} steps without LIBERO's success"
    assert success_step > SETTLE_STEPS  # reached by the path's motion, not holding from the init state


def _assert_close(ours: np.ndarray, theirs: np.ndarray, tol: float, what: str) -> None:
    np.testing.assert_allclose(ours, theirs, rtol=0.0, atol=tol, err_msg=what)
