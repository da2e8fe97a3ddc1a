"""Turns a task's named spec (tasks.py) into the engine's id-based structs for one env's model.

Names are resolved with mj_name2id on that env's own model, so every env of a mixed batch gets ids that fit
its model. A name the model lacks is a bug in the table and fails loudly here, at construction.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from ript_fast._core import _C
from ript_fast.envs.metaworld.tasks import Cond, Pt, Qt, TaskSpec

sim = _C.sim

_OBJ_TYPES = {
    "body": mujoco.mjtObj.mjOBJ_BODY,
    "site": mujoco.mjtObj.mjOBJ_SITE,
    "geom": mujoco.mjtObj.mjOBJ_GEOM,
    "joint": mujoco.mjtObj.mjOBJ_JOINT,
}


def resolve(model: mujoco.MjModel, kind: str, name: str) -> int:
    """The id of a named body/site/geom/joint; ValueError naming it if the model has none."""
    index = mujoco.mj_name2id(model, _OBJ_TYPES[kind], name)
    if index < 0:
        raise ValueError(f"task spec: the model has no {kind} named {name!r}")
    return int(index)


def _qpos_address(model: mujoco.MjModel, joint: str) -> int:
    return int(model.jnt_qposadr[resolve(model, "joint", joint)])


def compile_point(p: Pt, model: mujoco.MjModel) -> Any:
    out = sim.Point()
    out.kind = getattr(sim.PointKind, "joint_arc" if p.kind == "arc" else p.kind)
    out.mask = list(p.mask)
    out.offset = list(p.offset)
    out.radius = p.radius
    if p.kind in ("body", "site", "geom"):
        out.id = resolve(model, p.kind, p.name)
    elif p.kind == "tcp":
        out.id, out.aux = resolve(model, "site", p.name), resolve(model, "site", p.aux)
    elif p.kind == "arc":
        out.id, out.aux = resolve(model, "body", p.name), _qpos_address(model, p.aux)
    elif p.kind == "qpos":
        out.id = _qpos_address(model, p.name)
    elif p.kind in ("obs", "param"):
        out.id = p.index
    return out


def compile_quat(q: Qt, model: mujoco.MjModel) -> Any:
    out = sim.Quat()
    out.kind = getattr(sim.QuatKind, q.kind)
    out.value = list(q.value)
    if q.kind != "const":
        out.id = resolve(model, q.kind.split("_")[0], q.name)
    return out


def compile_term(c: Cond, model: mujoco.MjModel) -> Any:
    out = sim.Term()
    out.kind = getattr(sim.TermKind, c.kind)
    if c.kind == "contact":
        out.geoms = [resolve(model, "geom", g) for g in c.geoms]
        return out
    out.a, out.b = compile_point(c.a, model), compile_point(c.b, model)
    out.weight = list(c.weight)
    out.reduce = getattr(sim.Reduce, c.reduce)
    out.compare = getattr(sim.Compare, c.compare)
    out.threshold = c.threshold
    return out


def live_goal(env: Any) -> Any:
    """The goal as a live point when the task keeps `_target_pos` as a view into mjData, else the fixed goal.

    basketball and bin-picking set `_target_pos` to a row of site_xpos / xpos, so MetaWorld's goal follows
    that frame after every mj_forward; we read the same frame live to agree with it.
    """
    target = env._target_pos
    for kind, field in (("body", "xpos"), ("site", "site_xpos"), ("geom", "geom_xpos")):
        base = getattr(env.data, field)
        if isinstance(target, np.ndarray) and np.shares_memory(target, base):
            offset = target.__array_interface__["data"][0] - base.__array_interface__["data"][0]
            point = sim.Point()
            point.kind = getattr(sim.PointKind, kind)
            point.id = offset // (3 * base.itemsize)
            return point
    point = sim.Point()
    point.kind = sim.PointKind.goal
    return point


def compile_env(
    spec: TaskSpec,
    env: Any,
    engine_model: Any,
    engine_data: mujoco.MjData,
    *,
    task_id: int,
    max_steps: int,
    terminate_on_success: bool,
    goal: Any,
) -> Any:
    """The EnvConfig of one env of a batch for `spec`: the engine steps (engine_model, engine_data) (a full model
    or a `_C.sim.ModelView` of one, with an MjData of that size); `env`, a MetaWorld env of the task, gives the
    names' ids and the task's constants (controller, observation space, random-vector size)."""
    model = env.model
    cfg = sim.EnvConfig()
    cfg.model, cfg.data = engine_model._address, engine_data._address
    cfg.task_id = task_id
    control = sim.MocapControl()
    control.mocap = 0  # MetaWorld moves every mocap row by the action and clips row 0
    control.action_scale = float(env.action_scale)
    control.low, control.high = [float(v) for v in env.mocap_low], [float(v) for v in env.mocap_high]
    control.quat = [1.0, 0.0, 1.0, 0.0]
    control.frame_skip = int(env.frame_skip)
    cfg.control = control
    spec_obs = sim.ObsSpec()
    spec_obs.hand_body = resolve(model, "body", "hand")
    spec_obs.finger_bodies = [resolve(model, "body", "rightclaw"), resolve(model, "body", "leftclaw")]
    spec_obs.object_slots = 2
    objects = []
    for pos, quat in spec.objects:
        slot = sim.ObjectSlot()
        slot.pos, slot.quat = compile_point(pos, model), compile_quat(quat, model)
        objects.append(slot)
    spec_obs.objects = objects
    spec_obs.goal_visible = not env._partially_observable
    space = env.sawyer_observation_space
    spec_obs.low, spec_obs.high = [float(v) for v in space.low], [float(v) for v in space.high]
    cfg.obs = spec_obs
    cfg.goal = goal
    cfg.success = [compile_term(c, model) for c in spec.success]
    cfg.n_params = 3 * len(spec.params)
    cfg.n_rand = int(env._random_reset_space.low.size)
    cfg.max_steps = int(max_steps)
    cfg.terminate_on_success = bool(terminate_on_success)
    return cfg
