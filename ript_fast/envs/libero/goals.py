"""Compiles a LIBERO task's BDDL goal into the engine's generic goal terms (csrc/sim/goal_predicates.h).

Each goal atom is translated from what LIBERO's predicate and object-state code reads (libero/libero/envs/
predicates and object_states), on the task's built robosuite env:
  On(a, b), b an object:  b.z <= a.z, a contact between a's and b's contact geoms, |a.xy - b.xy| < 0.03
  On(a, b), b a region site with `under`: a's body in the slab above the site (SiteObject.under), and a contact
                          between a and the site's parent object when that parent is an object of the scene
  In(a, b), b a region site: a's body inside the site's box (SiteObject.in_box); LIBERO's In against an
                          object has no implementation there either and is rejected
  Open/Close/TurnOn/TurnOff(x): a threshold on each of x's joints (any joint for Open/TurnOn, all for Close/
                          TurnOff); the threshold and comparison are read off the object's own method by probing
                          it around its default ranges, so no per-class table is kept here
  Up(x):                  x's position z >= 1.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mujoco

from ript_fast._core import _C

sim = _C.sim

ON_XY_TOLERANCE = 0.03  # ObjectState.check_ontop
IN_FLOOR_MARGIN = 0.01  # SiteObject.in_box lowers the box floor by this much
UNDER_MARGIN, UNDER_HEIGHT = 0.005, 0.10  # SiteObject.under's slab
UP_HEIGHT = 1.0  # the Up predicate

# Which joints must satisfy the object's method: any of them (LIBERO returns True on the first) or all.
_JOINT_PREDICATES = {
    "open": ("is_open", "open", False),
    "close": ("is_close", "close", True),
    "turnon": ("turn_on", "turnon", False),
    "turnoff": ("turn_off", "turnoff", True),
}


def _id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str) -> int:
    index = mujoco.mj_name2id(model, kind, name)
    if index < 0:
        raise ValueError(f"LIBERO goal: the model has no {kind.name[6:].lower()} named {name!r}")
    return int(index)


def _point(kind: str, index: int) -> Any:
    p = sim.Point()
    p.kind = getattr(sim.PointKind, kind)
    p.id = index
    return p


def _const_height(z: float) -> Any:
    p = sim.Point()
    p.kind = sim.PointKind.const
    p.offset = [0.0, 0.0, z]
    return p


def _geoms(model: mujoco.MjModel, obj: Any) -> list[int]:
    return sorted({_id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in obj.contact_geoms})


def _term(kind: str, **fields: Any) -> Any:
    t = sim.GoalTerm()
    t.kind = getattr(sim.GoalKind, kind)
    for key, value in fields.items():
        setattr(t, key, value)
    return t


def _contact(model: mujoco.MjModel, first: Any, second: Any) -> Any:
    return _term("contact", geoms_a=_geoms(model, first), geoms_b=_geoms(model, second))


def _probe_threshold(method: Callable[[float], bool], candidates: list[float]) -> tuple[Any, float]:
    """(comparison, threshold) such that method(q) == (q <cmp> threshold), found where the method flips."""
    for t in candidates:
        step = max(abs(t), 1.0) * 1e-9
        below, at, above = bool(method(t - step)), bool(method(t)), bool(method(t + step))
        if below and not above:
            return (sim.Compare.le if at else sim.Compare.lt), t
        if above and not below:
            return (sim.Compare.ge if at else sim.Compare.gt), t
    raise ValueError(f"LIBERO goal: {method!r} is not a single threshold around {candidates}")


class GoalCompiler:
    """Compiles the goal of one built LIBERO problem (the robosuite env inside LIBERO's ControlEnv)."""

    def __init__(self, problem: Any) -> None:
        self.problem = problem
        self.model = problem.sim.model._model

    def compile(self) -> list[Any]:
        terms: list[Any] = []
        for atom in self.problem.parsed_problem["goal_state"]:
            terms.extend(self.atom(atom))
        return terms

    def atom(self, atom: list[str]) -> list[Any]:
        name = atom[0].lower()
        if name in ("on", "in") and len(atom) == 3:
            return self._on(atom[1], atom[2]) if name == "on" else self._in(atom[1], atom[2])
        if name in _JOINT_PREDICATES and len(atom) == 2:
            return [self._joints(name, atom[1])]
        if name == "up" and len(atom) == 2:
            return [_term("compare_z", a=self._position(atom[1]), b=_const_height(UP_HEIGHT), compare=sim.Compare.ge)]
        if name == "true":
            return []
        raise NotImplementedError(f"LIBERO goal: predicate {atom!r} is not supported by the engine")

    # ---- pieces ----------------------------------------------------------------------------------------

    def _state(self, name: str) -> Any:
        return self.problem.object_states_dict[name]

    def _body(self, name: str) -> Any:
        return _point("body", int(self.problem.obj_body_id[name]))

    def _position(self, name: str) -> Any:
        """Where LIBERO's get_geom_state puts a thing: its root body, or a site's own frame."""
        if self._state(name).object_state_type == "site":
            return _point("site", _id(self.model, mujoco.mjtObj.mjOBJ_SITE, name))
        return self._body(name)

    def _on(self, thing: str, support: str) -> list[Any]:
        obj = self.problem.get_object(thing)
        if self._state(support).object_state_type != "site":
            below = self.problem.get_object(support)
            return [
                _term("compare_z", a=self._body(thing), b=self._body(support), compare=sim.Compare.ge),
                _contact(self.model, below, obj),
                _term("near_xy", a=self._body(support), b=self._body(thing), threshold=ON_XY_TOLERANCE),
            ]
        region = self.problem.object_sites_dict[support]
        if not hasattr(region, "under"):
            return []
        site = _id(self.model, mujoco.mjtObj.mjOBJ_SITE, support)
        size = [float(v) for v in region.size]
        terms = [
            _term("on_site_top", a=self._body(thing), site=site, size=size, margin=UNDER_MARGIN, height=UNDER_HEIGHT)
        ]
        parent = self.problem.get_object(self._state(support).parent_name)
        if parent is not None:
            terms.append(_contact(self.model, parent, obj))
        return terms

    def _in(self, thing: str, container: str) -> list[Any]:
        if self._state(container).object_state_type != "site":
            raise NotImplementedError(f"LIBERO goal: In({thing}, {container}) against an object is not supported")
        region = self.problem.object_sites_dict[container]
        site = _id(self.model, mujoco.mjtObj.mjOBJ_SITE, container)
        size = [float(v) for v in region.size]
        return [_term("in_site_box", a=self._body(thing), site=site, size=size, margin=IN_FLOOR_MARGIN)]

    def _joints(self, predicate: str, name: str) -> Any:
        method_name, ranges_key, all_joints = _JOINT_PREDICATES[predicate]
        state = self._state(name)
        if state.object_state_type == "site":
            joints = self.problem.object_sites_dict[name].joints
            owner = self.problem.get_object(state.parent_name)
        else:
            owner = self.problem.get_object(name)
            joints = owner.joints
        ranges = owner.object_properties["articulation"][f"default_{ranges_key}_ranges"]
        compare, threshold = _probe_threshold(getattr(owner, method_name), [min(ranges), max(ranges)])
        qpos = [int(self.model.jnt_qposadr[_id(self.model, mujoco.mjtObj.mjOBJ_JOINT, j)]) for j in joints]
        return _term("joint", qpos=qpos, compare=compare, threshold=float(threshold), all=all_joints)
