"""Vectorized LIBERO on the C++ batch engine, with gymnasium's VectorEnv API.

Each task is built once by LIBERO (compiler.py); every env of the batch steps its own MjData on the
task's shared MjModel in C++: robosuite's OSC_POSE controller and the Panda gripper per physics substep, the goal
predicates after each control step (csrc/sim/libero_sim.h). Python runs only at reset (choosing init states)
and for the images.

Observations (docs/ARCHITECTURE.md, "Environments"):
  * "state": (N, 16) float64 proprioception, robosuite's quantities at the end of the step:
    joint_states [0:7] | ee_pos [7:10] | ee_quat [10:14] (x, y, z, w) | gripper_states [14:16]
    (PROPRIO_SLICES names them, as LIBERO's demo files do);
  * "rgb": {"agentview_rgb", "eye_in_hand_rgb"}: (N, H, W, 3) uint8 from LIBERO's agentview and wrist cameras,
    rows bottom-up as robosuite returns them and LIBERO's demos store them, rendered in the light profile;
  * "state+rgb": both, plus the named proprioception views and `ee_ori`, the eef axis-angle (3) that LIBERO's
    demo files store and OpenVLA-OFT's 8-d proprio (ee_pos, ee_ori, gripper_states) reads.
  Images every step, or on demand (``render_every_step=False`` or inside ``env.rendering_mode(every_step=False)``:
  reset/step return "state" and the proprioception views, ``env.render_observations(ids, keys)`` the images).
Contexts: reset(options={"init_state": rows}) takes context vectors (get_state()) or LIBERO's own init states
([time, qpos, qvel] rows: the suite's *.pruned_init files, or states[0] of a LIBERO demo); a plain reset starts
each env from one of its task's shipped init states, drawn from the env's stream (seed + i).
"""

from __future__ import annotations

import weakref
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from ript_fast._core import _C
from ript_fast.envs import contexts
from ript_fast.envs.batch_vec_env import BatchVecEnv
from ript_fast.envs.libero.compiler import LiberoTemplate, compile_task
from ript_fast.envs.libero.suites import MAX_STEPS, LiberoTask
from ript_fast.envs.rendering import check_render_size

PROPRIO_SLICES = {
    "joint_states": slice(0, 7),
    "ee_pos": slice(7, 10),
    "ee_quat": slice(10, 14),
    "gripper_states": slice(14, 16),
}


def quat_to_axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """(..., 4) (x, y, z, w) -> (..., 3) axis * angle (robosuite's `quat2axisangle`, batched; w clipped to [-1, 1])."""
    quat = np.asarray(quat_xyzw, dtype=np.float64)
    w = np.clip(quat[..., 3:4], -1.0, 1.0)
    den = np.sqrt(1.0 - w * w)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = quat[..., :3] * 2.0 * np.arccos(w) / den
    return np.where(den == 0.0, 0.0, value)


def proprio_views(state: np.ndarray) -> dict[str, np.ndarray]:
    """The named views of (N, 16) states, plus `ee_ori`: the eef axis-angle that LIBERO's demo files store (its
    `ee_states[3:]`) and OpenVLA-OFT's proprio reads."""
    views = {k: state[:, s] for k, s in PROPRIO_SLICES.items()}
    return {**views, "ee_ori": quat_to_axis_angle(views["ee_quat"])}


CAMERAS = {"agentview_rgb": "agentview", "eye_in_hand_rgb": "robot0_eye_in_hand"}
# The geom groups LIBERO's images show: robosuite's offscreen renderer hides group 0 (the collision meshes;
# LIBERO's envs pass render_collision_mesh=False) and draws group 1 (visual meshes), MuJoCo's defaults otherwise.
GEOM_GROUPS = (False, True, True, False, False, False)
ACTION_DIM = 7


# Compiled tasks while some env uses them: a task's model is ~200 MB, so a process that walks through many tasks
# (say, evaluating LIBERO-90 one task at a time) must not keep them all.
_TEMPLATES: weakref.WeakValueDictionary[LiberoTask, LiberoTemplate] = weakref.WeakValueDictionary()


def task_template(task: LiberoTask) -> LiberoTemplate:
    """The compiled task: built by LIBERO once, shared by every env of it that is alive."""
    template = _TEMPLATES.get(task)
    if template is None:
        template = compile_task(task)
        _TEMPLATES[task] = template
    return template


class LiberoVecEnv(BatchVecEnv):
    """N LIBERO envs (any mix of tasks and suites) stepped as one batch in C++."""

    def __init__(
        self,
        tasks: list[LiberoTask],
        seed: int | None = None,
        obs_mode: str = "state",
        *,
        autoreset: bool = True,
        terminate_on_success: bool = True,
        max_episode_steps: int | None = None,
        render_size: tuple[int, int] = (128, 128),
        copy: bool = False,
        render_every_step: bool = True,
    ) -> None:
        render_size = check_render_size(render_size)
        self.templates = [task_template(t) for t in tasks]
        # Task names as resolve_tasks spells them ("<suite>/<task>"): "libero/" + name is the env name again.
        names = [f"{t.suite}/{t.name}" for t in tasks]
        super().__init__(names, [t.instruction for t in self.templates], obs_mode, autoreset, copy, render_every_step)
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps: must be >= 1, got {max_episode_steps}")
        self.tasks = list(tasks)
        scenes = [tpl.new_env() for tpl in self.templates]
        self.models = [m for m, _ in scenes]
        self.datas = [d for _, d in scenes]
        configs = [
            tpl.config(m, d, max_episode_steps or MAX_STEPS[tpl.task.suite], terminate_on_success)
            for tpl, (m, d) in zip(self.templates, scenes, strict=True)
        ]
        self._sim = _C.sim.LiberoSim(configs)
        self._free_qpos = [self._object_qpos(m) for m in self.models]
        self._rngs: list[np.random.Generator] = []
        self._seed_all(seed)
        self._attach_renderer(self.models, self.datas, render_size, CAMERAS, GEOM_GROUPS)
        state = gym.spaces.Box(-np.inf, np.inf, shape=(self._sim.obs_dim,), dtype=np.float64)
        image = gym.spaces.Box(0, 255, shape=(*render_size, 3), dtype=np.uint8)
        images = {key: image for key in CAMERAS}
        widths = {**{k: s.stop - s.start for k, s in PROPRIO_SLICES.items()}, "ee_ori": 3}
        proprio = {k: gym.spaces.Box(-np.inf, np.inf, shape=(n,)) for k, n in widths.items()}
        single = {
            "state": state,
            "rgb": gym.spaces.Dict(images),
            "state+rgb": gym.spaces.Dict({"state": state, **proprio, **images}),
        }[obs_mode]
        self._set_spaces(single, ACTION_DIM)

    @staticmethod
    def _object_qpos(model: mujoco.MjModel) -> np.ndarray:
        """qpos addresses of the free objects' x (y follows): what context noise moves."""
        free = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
        return model.jnt_qposadr[free].astype(np.int64)

    @property
    def shipped_init_states(self) -> list[np.ndarray]:
        """Per env, its task's init states as LIBERO ships them: (50, 1 + nq + nv) [time, qpos, qvel] rows."""
        return [tpl.init_states for tpl in self.templates]

    def _seed_all(self, seed: int | None) -> None:
        """Env i draws its init states and its context noise from a stream derived from (seed, i)."""
        self._rngs = [np.random.default_rng(None if seed is None else [seed, i]) for i in range(self.num_envs)]

    # ---- episodes --------------------------------------------------------------------------------------

    def _sample_episodes(self, ids: np.ndarray) -> None:
        rows = []
        for i in ids:
            shipped = self.templates[int(i)].init_states
            rows.append(shipped[int(self._rngs[int(i)].integers(len(shipped)))])
        width = max(len(r) for r in rows)
        batch = np.zeros((len(rows), width), dtype=np.float64)
        for r, row in enumerate(rows):
            batch[r, : len(row)] = row
        self._sim.load_init_states(batch, ids.astype(np.int64))

    def _is_context(self, row: np.ndarray, env: int) -> bool:
        """Context vectors start with the layout header; LIBERO's rows with the time, then the robot's qpos."""
        model = self.models[env]
        return row[0] == contexts.VERSION and row[2] > 1 + model.nq + model.nv and row[2] == int(row[2])

    def _restart(self, ids: np.ndarray, states: np.ndarray, noise: float) -> None:
        states = states.copy()
        kinds = np.array([self._is_context(row, int(i)) for row, i in zip(states, ids, strict=True)], dtype=bool)
        if noise > 0.0:
            for row, i, is_context in zip(states, ids, kinds, strict=True):
                qpos0 = contexts.section_start(row, "physics") + 1 if is_context else 1
                xy = qpos0 + self._free_qpos[int(i)][:, None] + np.arange(2)[None, :]
                row[xy] += self._rngs[int(i)].normal(0.0, noise, size=xy.shape)
        if kinds.any():
            self._sim.restore(np.ascontiguousarray(states[kinds]), ids[kinds].astype(np.int64))
        if (~kinds).any():
            self._sim.load_init_states(np.ascontiguousarray(states[~kinds]), ids[~kinds].astype(np.int64))

    def _observation(self, images: dict[str, np.ndarray] | None) -> Any:
        state = self._out(self._sim.obs)
        if self.obs_mode == "state":
            return state
        named = {"state": state, **proprio_views(state)}
        if images is None:  # images on demand: the state part of "state+rgb"
            return named
        return images if self.obs_mode == "rgb" else {**named, **images}
