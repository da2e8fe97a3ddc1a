"""Shared pieces of the LIBERO tests: the skip markers, our env paired with LIBERO's own, init states moved
towards a task's goal, and scripted paths that drive LIBERO's env to success (what the engine is compared on)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
import pytest

from python_tests.test_env_rgb import _gl_available
from ript_fast.envs.libero.setup import libero_available

# Image tests skip where no OpenGL backend can be created (as the MetaWorld image tests do).
requires_gl = pytest.mark.skipif(not _gl_available(), reason="no OpenGL backend (set MUJOCO_GL=egl with libegl1)")

requires_libero = [
    pytest.mark.libero,
    pytest.mark.skipif(not libero_available(), reason="LIBERO is not installed (bash scripts/install_libero.sh)"),
]

_JOINT_RANGES = {"open": "open", "close": "close", "turnon": "turnon", "turnoff": "turnoff"}


def _free_qpos(model: mujoco.MjModel, obj: Any) -> int:
    joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, obj.joints[-1])
    return int(model.jnt_qposadr[joint])


def goal_state(ref: Any, state: np.ndarray) -> np.ndarray:
    """`state` (a LIBERO init state) with the goal's objects moved where the goal wants them: dropped a few cm
    above their target (a region site or another object) and articulations set inside their goal range. The
    physics then decides whether the goal holds; the test only needs states near the goal's boundary."""
    problem = ref.env
    model = problem.sim.model._model
    out = np.array(state, dtype=np.float64)
    qpos = out[1 : 1 + model.nq]
    data = problem.sim.data._data
    for atom in problem.parsed_problem["goal_state"]:
        name = atom[0].lower()
        if name in ("on", "in"):
            target = problem.object_states_dict[atom[2]]
            if target.object_state_type == "site":
                where = data.site_xpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, atom[2])]
            else:
                where = data.xpos[problem.obj_body_id[atom[2]]]
            adr = _free_qpos(model, problem.get_object(atom[1]))
            qpos[adr : adr + 3] = where + np.array([0.0, 0.0, 0.06])
        elif name in _JOINT_RANGES:
            state_obj = problem.object_states_dict[atom[1]]
            if state_obj.object_state_type == "site":
                joints = problem.object_sites_dict[atom[1]].joints
                owner = problem.get_object(state_obj.parent_name)
            else:
                owner = problem.get_object(atom[1])
                joints = owner.joints
            ranges = owner.object_properties["articulation"][f"default_{_JOINT_RANGES[name]}_ranges"]
            for j in joints:
                qpos[int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j)])] = np.mean(ranges)
    return out


def paired(name: str, init: int) -> tuple[Any, Any]:
    """One env of our engine and LIBERO's own env of task `name`, both started at the task's shipped init state
    `init`. Ours never terminates on success, so both can be stepped past it and compared there too."""
    from ript_fast.envs import make_vec_env
    from ript_fast.envs.libero.reference import reference_env
    from ript_fast.envs.libero.suites import resolve

    env = make_vec_env(name, 1, seed=0, autoreset=False, terminate_on_success=False)
    ref = reference_env(resolve(name)[0])
    restart(env, ref, env.shipped_init_states[0][init])
    return env, ref


def restart(env: Any, ref: Any, state: np.ndarray) -> None:
    """Start a new episode of both `env` (ours, one env) and `ref` (LIBERO's) at LIBERO init state `state`."""
    from ript_fast.envs.libero.reference import start

    start(ref, state)
    env.reset(options={"init_state": np.asarray(state)[None]})


@dataclass(frozen=True)
class Waypoint:
    """Move the gripper site to `target` (world, m) with gripper command `gripper` (-1 open, +1 close) until it
    is within `tol` on every axis or `steps` control steps have run; tol 0 holds there for `steps` steps."""

    target: np.ndarray
    gripper: float
    tol: float
    steps: int


SETTLE_STEPS = 10  # LIBERO's shipped init states hold objects a few cm above the table: they drop first
OSC_POSITION_SCALE = 0.05  # m a unit position action asks for (robosuite's OSC_POSE output_max)


def eef_pos(ref: Any) -> np.ndarray:
    """The gripper site's position as robosuite's observation computes it now."""
    return np.asarray(ref.env._get_observations(force_update=True)["robot0_eef_pos"], dtype=np.float64)


def scripted_actions(ref: Any, plan: Callable[[Any], list[Waypoint]]) -> Iterator[np.ndarray]:
    """A closed-loop scripted controller on LIBERO's env `ref` (the caller steps `ref` with every action it
    yields): SETTLE_STEPS zero actions, then `plan(ref.env)` (waypoints read off the settled scene) followed
    with a proportional step towards each waypoint: the whole remaining error as one delta, clipped to the
    action box. The actions depend on LIBERO's state only, so replaying them in another simulator is a fair
    comparison."""
    for _ in range(SETTLE_STEPS):
        yield np.zeros(7)
    for wp in plan(ref.env):
        for _ in range(wp.steps):
            error = wp.target - eef_pos(ref)
            if wp.tol > 0 and np.abs(error).max() < wp.tol:
                break
            action = np.zeros(7)
            action[:3] = np.clip(error / OSC_POSITION_SCALE, -1.0, 1.0)
            action[6] = wp.gripper
            yield action


def body_pos(problem: Any, body: str) -> np.ndarray:
    """World position of body `body` of LIBERO env `problem`, as a copy."""
    model = problem.sim.model._model
    return np.array(problem.sim.data._data.xpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)])


def object_pos(problem: Any, name: str) -> np.ndarray:
    """World position of object `name`'s main body in LIBERO env `problem`, as a copy."""
    return np.array(problem.sim.data._data.xpos[problem.obj_body_id[name]])


def close_top_drawer(problem: Any) -> list[Waypoint]:
    """KITCHEN_SCENE10 (libero/90/0): push the open top drawer shut with the open gripper's fingers, from in
    front of its handle (offsets in the world frame of this scene: the drawer slides along y)."""
    front = body_pos(problem, "wooden_cabinet_1_cabinet_top") + np.array([0.0, 0.17, 0.195])
    return [Waypoint(front, -1.0, 0.01, 40), Waypoint(front - np.array([0.0, 0.27, 0.0]), -1.0, 0.01, 60)]


def bowl_onto_plate(problem: Any) -> list[Waypoint]:
    """libero/spatial/0: grasp the black bowl's rim on its +y side (the fingers close along y), carry it over
    the plate and lower it until it rests there (LIBERO's On: contact, above, xy within 3 cm)."""
    rim = np.array([0.0, 0.047, 0.0])
    bowl = object_pos(problem, "akita_black_bowl_1") + rim
    plate = object_pos(problem, "plate_1") + rim
    grasp, lift, place = bowl[2] + 0.042, 1.05, plate[2] + 0.068
    return [
        Waypoint(_at(bowl, 1.1), -1.0, 0.01, 40),
        Waypoint(_at(bowl, grasp), -1.0, 0.005, 30),
        Waypoint(_at(bowl, grasp), 1.0, 0.0, 10),
        Waypoint(_at(bowl, lift), 1.0, 0.01, 30),
        Waypoint(_at(plate, lift), 1.0, 0.01, 30),
        Waypoint(_at(plate, place), 1.0, 0.01, 30),
        Waypoint(_at(plate, place), -1.0, 0.0, 15),
    ]


def turn_on_stove(problem: Any) -> list[Waypoint]:
    """libero/goal/7: straddle the stove knob's bar near its end with the open fingers and sweep towards +y,
    which turns the knob counterclockwise past LIBERO's TurnOn threshold (0.5 rad)."""
    model = problem.sim.model._model
    knob = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "flat_stove_1_button")
    end = problem.sim.data._data.xanchor[knob] + np.array([0.04, 0.0, 0.0])
    return [
        Waypoint(end + np.array([0.0, 0.0, 0.145]), -1.0, 0.01, 40),
        Waypoint(end + np.array([0.0, 0.0, 0.045]), -1.0, 0.005, 30),
        Waypoint(end + np.array([0.0, 0.07, 0.045]), -1.0, 0.005, 40),
    ]


def soup_into_basket(problem: Any) -> list[Waypoint]:
    """libero/object/0: grasp the alphabet soup can (lying along y: the fingers close on its ends), carry it over
    the basket and lower it in until LIBERO's In holds (inside the basket's contain region). Still held there: a
    can let go drops the last centimetres, and the impact turns the contact solver's tolerance-level differences
    into 1e-4 and more (measured here and on libero/10/0), beyond what a comparison can hold to."""
    can, basket = object_pos(problem, "alphabet_soup_1"), object_pos(problem, "basket_1")
    grasp, lift, place = can[2] + 0.005, basket[2] + 0.255, basket[2] + 0.085
    return [
        Waypoint(_at(can, can[2] + 0.11), -1.0, 0.01, 40),
        Waypoint(_at(can, grasp), -1.0, 0.005, 30),
        Waypoint(_at(can, grasp), 1.0, 0.0, 10),
        Waypoint(_at(can, lift), 1.0, 0.01, 30),
        Waypoint(_at(basket, lift), 1.0, 0.01, 30),
        Waypoint(_at(basket, place), 1.0, 0.01, 30),
    ]


def _at(xy: np.ndarray, z: float) -> np.ndarray:
    """The point above `xy` (its first two entries) at height `z`."""
    return np.array([xy[0], xy[1], z])


def object_poses(problem: Any, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, np.ndarray]:
    """Per object and fixture of LIBERO env `problem`, read from (model, data): its main body's position and
    quaternion (w, x, y, z), then the positions of the joints below it (drawers, doors, knobs; a free object's
    joint again). Needs data's kinematics to be current (mj_kinematics)."""
    poses = {}
    for name, body in problem.obj_body_id.items():
        joints = np.flatnonzero(model.body_rootid[model.jnt_bodyid] == model.body_rootid[body])
        qpos = [data.qpos[model.jnt_qposadr[j] : model.jnt_qposadr[j] + _joint_width(model, j)] for j in joints]
        poses[name] = np.concatenate([data.xpos[body], data.xquat[body], *qpos])
    return poses


def _joint_width(model: mujoco.MjModel, joint: int) -> int:
    widths = {int(mujoco.mjtJoint.mjJNT_FREE): 7, int(mujoco.mjtJoint.mjJNT_BALL): 4}
    return widths.get(int(model.jnt_type[joint]), 1)


def proprio_reference(ref: Any) -> np.ndarray:
    """What `proprio(obs)` holds, as robosuite's own observables compute it on `ref`'s current state:
    joint_states | ee_pos | ee_quat (x, y, z, w) | gripper_states | ee_ori (robosuite's quat2axisangle of the
    quaternion, as LIBERO's demo files and OpenVLA-OFT's LIBERO evaluation compute it)."""
    from robosuite.utils.transform_utils import quat2axisangle

    obs = ref.env._get_observations(force_update=True)
    keys = ("robot0_joint_pos", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
    values = [np.asarray(obs[k], dtype=np.float64) for k in keys]
    return np.concatenate([*values, quat2axisangle(values[2].copy())])


def proprio(state: np.ndarray) -> np.ndarray:
    """What a policy reads of our env's (16,) "state" row: the row, then the `ee_ori` view derived from it."""
    from ript_fast.envs.libero.vec_env import proprio_views

    return np.concatenate([state, proprio_views(state[None])["ee_ori"][0]])
