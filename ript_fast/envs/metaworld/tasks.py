"""What each MetaWorld v3 task observes and when it succeeds, as data.

Python describes, C++ executes: this table names bodies, sites, geoms and joints; `spec_compiler.py` resolves
the names on each env's model and the engine (`csrc/sim/task_spec.h`) evaluates the generic kinds. There is
no task-name switch anywhere in C++.

Every entry was read off metaworld 3.1.1's own `_get_pos_objects`, `_get_quat_objects` and `evaluate_state`
(see ../shared/METAWORLD_FACTS.md) and is checked against MetaWorld itself by python_tests/test_env_metaworld_*.
Where MetaWorld's rule reads the observation (obs[4:7] is the first object, obs[11:14] the second), so does
the spec, so that the arithmetic, and hence the flag at a threshold, is the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Vec3 = tuple[float, float, float]
ZERO3: Vec3 = (0.0, 0.0, 0.0)
ONES3: Vec3 = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Pt:
    """A 3-vector source: kind in const|body|site|geom|tcp|arc|qpos|obs|goal|param (see task_spec.h)."""

    kind: str
    name: str = ""  # body/site/geom/joint name (arc: the body)
    aux: str = ""  # tcp: the second site; arc: the joint
    index: int = 0  # obs/param: first component
    radius: float = 0.0
    mask: Vec3 = ONES3
    offset: Vec3 = ZERO3


@dataclass(frozen=True)
class Qt:
    """A quaternion source: const | body_xquat (w,x,y,z) | body/geom/site_xmat (scipy's x,y,z,w)."""

    kind: str
    name: str = ""
    value: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Cond:
    """One condition of a success rule (rules are conjunctions): distance or contact, see task_spec.h."""

    kind: str
    a: Pt = Pt("const")
    b: Pt = Pt("const")
    weight: Vec3 = ONES3
    reduce: str = "norm"
    compare: str = "le"
    threshold: float = 0.0
    geoms: tuple[str, str, str] = ("", "", "")


@dataclass(frozen=True)
class TaskSpec:
    """One task: its observed objects (position, quaternion) and success rule."""

    instruction: str
    objects: tuple[tuple[Pt, Qt], ...]
    success: tuple[Cond, ...]
    params: tuple[str, ...] = ()  # MetaWorld env attributes (3-vectors) a rule reads as `param` points


# ---- point and condition helpers -------------------------------------------------------------------------


def body(name: str, offset: Vec3 = ZERO3) -> Pt:
    return Pt("body", name, offset=offset)


def site(name: str, offset: Vec3 = ZERO3) -> Pt:
    return Pt("site", name, offset=offset)


def geom(name: str) -> Pt:
    return Pt("geom", name)


def obs(index: int, offset: Vec3 = ZERO3) -> Pt:
    return Pt("obs", index=index, offset=offset)


def qpos(joint: str) -> Pt:
    return Pt("qpos", joint)


def const(value: Vec3) -> Pt:
    return Pt("const", offset=value)


GOAL = Pt("goal")
OBJ = obs(4)  # the first object's position in the (clipped) observation
OBJ2 = obs(11)  # the second object's position
TCP = Pt("tcp", "rightEndEffector", "leftEndEffector")

XQUAT, BODY_XMAT, GEOM_XMAT, SITE_XMAT = "body_xquat", "body_xmat", "geom_xmat", "site_xmat"
NO_QUAT = Qt("const")


def quat(kind: str, name: str) -> Qt:
    return Qt(kind, name)


def within(a: Pt, b: Pt, threshold: float, weight: Vec3 = ONES3, strict: bool = False) -> Cond:
    """|weight * (a - b)| <= threshold (< when strict). One nonzero weight tests a single axis."""
    return Cond("distance", a, b, weight, "norm", "lt" if strict else "le", threshold)


def axis(a: Pt, b: Pt, k: int, threshold: float) -> Cond:
    """|a[k] - b[k]| <= threshold."""
    weight = tuple(1.0 if j == k else 0.0 for j in range(3))
    return within(a, b, threshold, weight)  # type: ignore[arg-type]


def above(a: Pt, b: Pt, k: int, threshold: float = 0.0, inclusive: bool = False) -> Cond:
    """a[k] - b[k] > threshold (>= when inclusive)."""
    weight = tuple(1.0 if j == k else 0.0 for j in range(3))
    return Cond("distance", a, b, weight, "sum", "ge" if inclusive else "gt", threshold)  # type: ignore[arg-type]


def pads_touch(obj_geom: str) -> Cond:
    """MetaWorld's touching_object: both finger pads press on the object (positive contact force)."""
    return Cond("contact", geoms=("leftpad_geom", "rightpad_geom", obj_geom))


def near_goal(threshold: float, strict: bool = False) -> tuple[Cond, ...]:
    return (within(OBJ, GOAL, threshold, strict=strict),)


# ---- the 50 tasks ----------------------------------------------------------------------------------------

_BUTTON_Y = body("button", (0.0, -0.193, 0.0)), quat(XQUAT, "button")
_BUTTON_Z = body("button", (0.0, 0.0, 0.193)), quat(XQUAT, "button")
_DOOR_HANDLE = geom("handle"), quat(GEOM_XMAT, "handle")
_OBJ_BODY_GEOMQ = body("obj"), quat(GEOM_XMAT, "objGeom")
_OBJ_GEOM = geom("objGeom"), quat(GEOM_XMAT, "objGeom")
_OBJ_BODY = body("obj"), quat(XQUAT, "obj")
_PUCK = geom("puck"), quat(GEOM_XMAT, "puck")
_STICK = body("stick"), quat(BODY_XMAT, "stick")
_NUT = site("RoundNut-8"), quat(XQUAT, "RoundNut")

TASKS: dict[str, TaskSpec] = {
    "assembly-v3": TaskSpec(
        "put the nut on the peg",
        (_NUT,),
        (within(GOAL, site("RoundNut"), 0.02, (1.0, 1.0, 0.0), strict=True), above(GOAL, site("RoundNut"), 2)),
    ),
    "basketball-v3": TaskSpec(
        "dunk the basketball into the basket",
        ((body("bsktball"), quat(XQUAT, "bsktball")),),
        (within(OBJ, Pt("goal", mask=(1.0, 1.0, 0.0), offset=(0.0, 0.0, 0.3)), 0.08, (1.0, 1.0, 2.0)),),
    ),
    "bin-picking-v3": TaskSpec("pick the puck and place it in the other bin", (_OBJ_BODY,), near_goal(0.05)),
    "box-close-v3": TaskSpec(
        "grasp the lid and close the box", ((body("top_link"), quat(XQUAT, "top_link")),), near_goal(0.08, True)
    ),
    "button-press-topdown-v3": TaskSpec("press the button from the top", (_BUTTON_Z,), (axis(OBJ, GOAL, 2, 0.024),)),
    "button-press-topdown-wall-v3": TaskSpec(
        "press the button from the top, behind a wall", (_BUTTON_Z,), (axis(OBJ, GOAL, 2, 0.024),)
    ),
    "button-press-v3": TaskSpec("press the button", (_BUTTON_Y,), (axis(OBJ, GOAL, 1, 0.02),)),
    "button-press-wall-v3": TaskSpec("press the button behind a wall", (_BUTTON_Y,), (axis(OBJ, GOAL, 1, 0.03),)),
    "coffee-button-v3": TaskSpec(
        "push the button on the coffee machine",
        ((site("buttonStart"), Qt("const", value=(1.0, 0.0, 0.0, 0.0))),),
        (axis(OBJ, GOAL, 1, 0.02),),
    ),
    "coffee-pull-v3": TaskSpec(
        "pull the mug out of the coffee machine", ((body("obj"), quat(GEOM_XMAT, "mug")),), near_goal(0.07)
    ),
    "coffee-push-v3": TaskSpec(
        "push the mug under the coffee machine", ((body("obj"), quat(GEOM_XMAT, "mug")),), near_goal(0.07)
    ),
    "dial-turn-v3": TaskSpec(
        "rotate the dial 180 degrees",
        ((Pt("arc", "dial", "knob_Joint_1", radius=0.05), quat(XQUAT, "dial")),),
        near_goal(0.07),
    ),
    "disassemble-v3": TaskSpec("pick the nut off the peg", (_NUT,), (above(OBJ, GOAL, 2),)),
    "door-close-v3": TaskSpec("close the door", (_DOOR_HANDLE,), near_goal(0.08)),
    "door-lock-v3": TaskSpec(
        "lock the door by rotating the lock clockwise",
        ((site("lockStartLock"), quat(XQUAT, "door_link")),),
        (axis(OBJ, GOAL, 2, 0.02),),
    ),
    "door-open-v3": TaskSpec("open the door", (_DOOR_HANDLE,), (axis(OBJ, GOAL, 0, 0.08),)),
    "door-unlock-v3": TaskSpec(
        "unlock the door by rotating the lock counter-clockwise",
        ((site("lockStartUnlock"), quat(XQUAT, "door_link")),),
        (axis(OBJ, GOAL, 0, 0.02),),
    ),
    "hand-insert-v3": TaskSpec("insert the gripper into the hole", (_OBJ_BODY,), near_goal(0.05)),
    "drawer-close-v3": TaskSpec(
        "push and close the drawer", ((body("drawer_link", (0.0, -0.16, 0.05)), NO_QUAT),), near_goal(0.05 + 0.015)
    ),
    "drawer-open-v3": TaskSpec(
        "open the drawer",
        ((body("drawer_link", (0.0, -0.16, 0.0)), quat(XQUAT, "drawer_link")),),
        near_goal(0.03),
    ),
    "faucet-open-v3": TaskSpec(
        "rotate the faucet counter-clockwise",
        ((site("handleStartOpen", (0.0, 0.0, -0.01)), quat(XQUAT, "faucetBase")),),
        (within(obs(4, (-0.04, 0.0, 0.03)), GOAL, 0.07),),
    ),
    "faucet-close-v3": TaskSpec(
        "rotate the faucet clockwise",
        ((site("handleStartClose", (0.0, 0.0, -0.01)), quat(XQUAT, "faucetBase")),),
        near_goal(0.07),
    ),
    "hammer-v3": TaskSpec(
        "hammer the nail into the wall",
        ((body("hammer"), quat(XQUAT, "hammer")), (body("nail_link"), quat(XQUAT, "nail_link"))),
        (above(qpos("NailSlideJoint"), const(ZERO3), 0, 0.09),),
    ),
    "handle-press-side-v3": TaskSpec(
        "press the handle down sideways", ((site("handleStart"), NO_QUAT),), (axis(OBJ, GOAL, 2, 0.02),)
    ),
    "handle-press-v3": TaskSpec(
        "press the handle down", ((site("handleStart"), NO_QUAT),), (axis(OBJ, GOAL, 2, 0.02),)
    ),
    "handle-pull-side-v3": TaskSpec("pull the handle up sideways", ((site("handleCenter"), NO_QUAT),), near_goal(0.08)),
    "handle-pull-v3": TaskSpec("pull the handle up", ((site("handleRight"), NO_QUAT),), (axis(OBJ, GOAL, 2, 0.05),)),
    "lever-pull-v3": TaskSpec(
        "pull the lever up 90 degrees",
        ((site("leverStart"), quat(GEOM_XMAT, "objGeom")),),
        (within(qpos("LeverAxis"), const((-math.pi / 2.0, 0.0, 0.0)), math.pi / 24, (1.0, 0.0, 0.0)),),
    ),
    "pick-place-wall-v3": TaskSpec("pick the puck, bypass the wall and place it", (_OBJ_GEOM,), near_goal(0.07)),
    "pick-out-of-hole-v3": TaskSpec("pick the puck up out of the hole", (_OBJ_BODY,), near_goal(0.07)),
    "pick-place-v3": TaskSpec("pick the puck and place it at the goal", (_OBJ_BODY_GEOMQ,), near_goal(0.07)),
    "plate-slide-v3": TaskSpec("slide the plate into the cabinet", (_PUCK,), near_goal(0.07)),
    "plate-slide-side-v3": TaskSpec("slide the plate into the cabinet sideways", (_PUCK,), near_goal(0.07)),
    "plate-slide-back-v3": TaskSpec("slide the plate out of the cabinet", (_PUCK,), near_goal(0.07)),
    "plate-slide-back-side-v3": TaskSpec("slide the plate out of the cabinet sideways", (_PUCK,), near_goal(0.07)),
    "peg-insert-side-v3": TaskSpec(
        "insert the peg sideways into the hole",
        ((site("pegGrasp"), quat(SITE_XMAT, "pegGrasp")),),
        (within(site("pegHead"), GOAL, 0.07, (1.0, 2.0, 2.0)),),
    ),
    "peg-unplug-side-v3": TaskSpec(
        "unplug the peg sideways", ((site("pegEnd"), quat(XQUAT, "plug1")),), near_goal(0.07)
    ),
    "soccer-v3": TaskSpec(
        "kick the soccer ball into the goal",
        ((body("soccer_ball"), quat(BODY_XMAT, "soccer_ball")),),
        near_goal(0.07),  # the [3, 1, 1] scaling shapes only the reward; success uses the plain distance
    ),
    "stick-push-v3": TaskSpec(
        "grasp the stick and push the box with it",
        (_STICK, (site("insertion", (0.0, 0.09, 0.0)), NO_QUAT)),
        (
            within(OBJ2, GOAL, 0.12),
            pads_touch("objGeom"),
            above(obs(3), const(ZERO3), 0),
            above(obs(4, (0.0, 0.0, -0.01)), Pt("param"), 2),
        ),
        params=("stick_init_pos",),
    ),
    "stick-pull-v3": TaskSpec(
        "grasp the stick and pull the box with it",
        (_STICK, (site("insertion"), NO_QUAT)),
        (
            within(OBJ2, GOAL, 0.12),
            above(site("stick_end"), OBJ2, 0, inclusive=True),
            axis(site("stick_end"), OBJ2, 1, 0.04),
            axis(site("stick_end"), OBJ2, 2, 0.06),
        ),
    ),
    "push-v3": TaskSpec("push the puck to the goal", (_OBJ_BODY_GEOMQ,), near_goal(0.05)),
    "push-wall-v3": TaskSpec("push the puck past the wall to the goal", (_OBJ_GEOM,), near_goal(0.07)),
    "push-back-v3": TaskSpec("push the puck back to the goal", (_OBJ_GEOM,), near_goal(0.07)),
    "reach-v3": TaskSpec("reach the goal position", (_OBJ_BODY_GEOMQ,), (within(TCP, GOAL, 0.05),)),
    "reach-wall-v3": TaskSpec("reach the goal position behind a wall", (_OBJ_BODY_GEOMQ,), (within(TCP, GOAL, 0.05),)),
    "shelf-place-v3": TaskSpec("pick the puck and place it on the shelf", (_OBJ_BODY_GEOMQ,), near_goal(0.07)),
    "sweep-into-v3": TaskSpec(
        "sweep the puck into the hole", (_OBJ_BODY_GEOMQ,), (within(OBJ, GOAL, 0.05, (1.0, 1.0, 0.0)),)
    ),
    "sweep-v3": TaskSpec("sweep the puck off the table", (_OBJ_BODY,), near_goal(0.05)),
    "window-open-v3": TaskSpec(
        "push the window open", ((site("handleOpenStart"), NO_QUAT),), (axis(OBJ, GOAL, 0, 0.05),)
    ),
    "window-close-v3": TaskSpec(
        "push the window closed", ((site("handleCloseStart"), NO_QUAT),), (axis(OBJ, GOAL, 0, 0.05),)
    ),
}

TASK_NAMES: tuple[str, ...] = tuple(sorted(TASKS))
