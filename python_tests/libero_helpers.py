"""Shared pieces of the LIBERO tests: the skip markers, and init states moved towards a task's goal."""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
import pytest

from python_tests.test_env_rgb import _gl_available
from ript_fast.envs.libero_setup import libero_available

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
