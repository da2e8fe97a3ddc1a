"""Offscreen RGB rendering of a batch, in a light profile for CPU rendering.

One OpenGL context for the whole batch and one MuJoCo render context per task (envs of a task share it: the
geometry, meshes and textures are the task's; positions come from each env's mjData). The light profile drops
what costs most on a CPU rasteriser: no shadows, no multisampling, small shadow maps; 128x128 by default.
Camera `corner2` gets QueST's position tweak, and images are flipped vertically as QueST feeds its policy.

Frames are drawn on request, per env and camera, and at most once per simulation state: `current` records
which frames still show their env's state, and the env marks the envs it steps or resets as stale
(`invalidate`). Rendering is most of an image rollout's time on a CPU while a chunked policy reads one step in
eight, so an env can ask for just the frames a query reads (`BatchVecEnv.render_observations`).

The GL backend follows MUJOCO_GL when set (egl, osmesa, glfw), else EGL (headless; on Debian/Ubuntu it needs
libegl1 and libgl1-mesa-dri, or libosmesa6 for MUJOCO_GL=osmesa).
"""

from __future__ import annotations

import atexit
import copy
import importlib
import os
import weakref
from collections.abc import Sequence
from typing import Any

import mujoco
import numpy as np

QUEST_CORNER2_POS = (0.75, 0.075, 0.7)  # QueST's metaworld wrapper moves camera corner2 here


def check_render_size(size: Any) -> tuple[int, int]:
    """`render_size` as (height, width), or a ValueError saying what is allowed: caught when the env is made,
    not as a TypeError deep in MuJoCo's renderer or as silently empty images."""
    pair = tuple(size) if isinstance(size, (tuple, list)) else ()
    if len(pair) != 2 or not all(_is_int(v) and v > 0 for v in pair):
        raise ValueError(f"render_size: must be (height, width), two positive ints, got {size!r}")
    return int(pair[0]), int(pair[1])


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_camera(model: mujoco.MjModel, camera: Any) -> str:
    """`camera` when the model has a camera of that name, else a ValueError listing the cameras it has."""
    names = [model.camera(i).name for i in range(model.ncam)]
    if not isinstance(camera, str) or camera not in names:
        raise ValueError(f"camera: must be one of the model's cameras {names}, got {camera!r}")
    return camera


def _gl_context_class() -> Any:
    backend = os.environ.get("MUJOCO_GL", "egl").lower().strip() or "egl"
    module = {"egl": "mujoco.egl", "osmesa": "mujoco.osmesa"}.get(backend, "mujoco.glfw")
    return importlib.import_module(module).GLContext


def light_profile(model: mujoco.MjModel, width: int, height: int) -> None:
    """Cheap CPU rendering settings on a render-only model copy."""
    model.vis.quality.shadowsize = 512
    model.vis.quality.offsamples = 0
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)


def _release(contexts: dict[str, Any], gl: Any) -> None:
    """Frees the render contexts, then the GL context (once: on close(), collection or interpreter exit)."""
    for _, _, context, _ in contexts.values():
        context.free()
    contexts.clear()
    gl.free()


class BatchRenderer:
    """Renders the envs of a batch from one or more fixed cameras into preallocated (N, H, W, 3) uint8 arrays,
    `images[camera]`; `current[camera]` (N,) bool marks the frames that show their env's present state."""

    def __init__(
        self,
        envs: Sequence[Any],
        task_names: Sequence[str],
        size: tuple[int, int] = (128, 128),
        camera: str | Sequence[str] = "corner2",
        flip_vertical: bool = True,
    ) -> None:
        height, width = check_render_size(size)
        self.cameras = (camera,) if isinstance(camera, str) else tuple(camera)
        self._envs = list(envs)
        self._tasks = list(task_names)
        self._flip = flip_vertical
        self._gl = _gl_context_class()(width, height)
        self._gl.make_current()
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._option = mujoco.MjvOption()
        self._contexts: dict[
            str, tuple[mujoco.MjModel, mujoco.MjvScene, mujoco.MjrContext, list[mujoco.MjvCamera]]
        ] = {}
        for task, env in zip(self._tasks, self._envs, strict=True):
            if task not in self._contexts:
                self._contexts[task] = self._task_context(env.model, self.cameras, width, height)
        self._frame = np.empty((height, width, 3), dtype=np.uint8)
        self.images = {c: np.zeros((len(self._envs), height, width, 3), dtype=np.uint8) for c in self.cameras}
        self.current = {c: np.zeros(len(self._envs), dtype=bool) for c in self.cameras}
        self._finalizer = weakref.finalize(self, _release, self._contexts, self._gl)
        # Also at exit, before the exit hooks of libraries imported earlier (atexit runs last-in first-out):
        # robosuite's terminates the EGL display, after which no context can be freed.
        atexit.register(self._finalizer)

    @staticmethod
    def _task_context(
        env_model: mujoco.MjModel, cameras: Sequence[str], width: int, height: int
    ) -> tuple[mujoco.MjModel, mujoco.MjvScene, mujoco.MjrContext, list[mujoco.MjvCamera]]:
        model = copy.copy(env_model)
        light_profile(model, width, height)
        cams = []
        for camera in cameras:
            cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, check_camera(model, camera))
            if camera == "corner2":
                model.cam_pos[cam_id] = QUEST_CORNER2_POS
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            cam.fixedcamid = cam_id
            cams.append(cam)
        scene = mujoco.MjvScene(model, maxgeom=1000)
        scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, context)
        return model, scene, context, cams

    def invalidate(self, rows: np.ndarray) -> None:
        """The envs at `rows` (indices or an (N,) bool mask) changed state: their frames must be drawn again."""
        for current in self.current.values():
            current[rows] = False

    def render(self, rows: np.ndarray | None = None, cameras: Sequence[str] | None = None) -> None:
        """Draws into `images` the frames of envs `rows` (default all) from `cameras` (default all) that are not
        current; current ones are kept (a frame depends only on its env's state, so it would come out the same)."""
        rows = np.arange(len(self._envs)) if rows is None else np.asarray(rows)
        cameras = self.cameras if cameras is None else tuple(cameras)
        self._gl.make_current()
        for i in rows.tolist():
            stale = [c for c in cameras if not self.current[c][i]]
            if stale:
                self._render_env(i, stale)

    def _render_env(self, i: int, cameras: Sequence[str]) -> None:
        model, scene, context, cams = self._contexts[self._tasks[i]]
        data = self._envs[i].data
        # Camera and light frames are not part of the engine's per-step kinematics; place them from the render
        # model (whose corner2 may be moved) without touching the physics state.
        mujoco.mj_camlight(model, data)
        # Every task context has its own offscreen framebuffer; bind this one before drawing into it.
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, context)
        for camera in cameras:
            cam = cams[self.cameras.index(camera)]
            mujoco.mjv_updateScene(model, data, self._option, None, cam, mujoco.mjtCatBit.mjCAT_ALL, scene)
            mujoco.mjr_render(self._rect, scene, context)
            mujoco.mjr_readPixels(self._frame, None, self._rect, context)
            # readPixels gives rows bottom-up; the upright image is frame[::-1], and QueST flips that again
            # (robosuite, hence LIBERO's demos, also keep OpenGL's bottom-up rows).
            np.copyto(self.images[camera][i], self._frame if self._flip else self._frame[::-1])
            self.current[camera][i] = True

    def close(self) -> None:
        self._finalizer()
