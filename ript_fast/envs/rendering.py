"""Offscreen RGB rendering of a batch, in a light profile for CPU rendering.

One OpenGL context for the whole batch and one MuJoCo render context per task (envs of a task share it: the
geometry, meshes and textures are the task's; positions come from each env's mjData). The light profile drops
what costs most on a CPU rasteriser: no shadows, no multisampling, small shadow maps; 128x128 by default.
Camera `corner2` gets QueST's position tweak, and images are flipped vertically as QueST feeds its policy.

The GL backend follows MUJOCO_GL when set (egl, osmesa, glfw), else EGL (headless; on Debian/Ubuntu it needs
libegl1 and libgl1-mesa-dri, or libosmesa6 for MUJOCO_GL=osmesa).
"""

from __future__ import annotations

import copy
import importlib
import os
import weakref
from collections.abc import Sequence
from typing import Any

import mujoco
import numpy as np

QUEST_CORNER2_POS = (0.75, 0.075, 0.7)  # QueST's metaworld wrapper moves camera corner2 here


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
    """Renders every env of a batch from one fixed camera into a preallocated (N, H, W, 3) uint8 array."""

    def __init__(
        self,
        envs: Sequence[Any],
        task_names: Sequence[str],
        size: tuple[int, int] = (128, 128),
        camera: str = "corner2",
        flip_vertical: bool = True,
    ) -> None:
        height, width = size
        self._envs = list(envs)
        self._tasks = list(task_names)
        self._flip = flip_vertical
        self._gl = _gl_context_class()(width, height)
        self._gl.make_current()
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._option = mujoco.MjvOption()
        self._contexts: dict[str, tuple[mujoco.MjModel, mujoco.MjvScene, mujoco.MjrContext, mujoco.MjvCamera]] = {}
        for task, env in zip(self._tasks, self._envs, strict=True):
            if task not in self._contexts:
                self._contexts[task] = self._task_context(env.model, camera, width, height)
        self._frame = np.empty((height, width, 3), dtype=np.uint8)
        self.rgb = np.zeros((len(self._envs), height, width, 3), dtype=np.uint8)
        self._finalizer = weakref.finalize(self, _release, self._contexts, self._gl)

    @staticmethod
    def _task_context(
        env_model: mujoco.MjModel, camera: str, width: int, height: int
    ) -> tuple[mujoco.MjModel, mujoco.MjvScene, mujoco.MjrContext, mujoco.MjvCamera]:
        model = copy.copy(env_model)
        light_profile(model, width, height)
        cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cam_id < 0:
            raise ValueError(f"camera: the model has no camera named {camera!r}")
        if camera == "corner2":
            model.cam_pos[cam_id] = QUEST_CORNER2_POS
        scene = mujoco.MjvScene(model, maxgeom=1000)
        scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, context)
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        cam.fixedcamid = cam_id
        return model, scene, context, cam

    def render(self) -> np.ndarray:
        """The current frame of every env (the same array each call, overwritten)."""
        self._gl.make_current()
        for i, (task, env) in enumerate(zip(self._tasks, self._envs, strict=True)):
            model, scene, context, cam = self._contexts[task]
            # Camera and light frames are not part of the engine's per-step kinematics; place them from the
            # render model (whose corner2 may be moved) without touching the physics state.
            mujoco.mj_camlight(model, env.data)
            mujoco.mjv_updateScene(model, env.data, self._option, None, cam, mujoco.mjtCatBit.mjCAT_ALL, scene)
            # Every task context has its own offscreen framebuffer; bind this one before drawing into it.
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, context)
            mujoco.mjr_render(self._rect, scene, context)
            mujoco.mjr_readPixels(self._frame, None, self._rect, context)
            # readPixels gives rows bottom-up; the upright image is frame[::-1], and QueST flips that again.
            np.copyto(self.rgb[i], self._frame if self._flip else self._frame[::-1])
        return self.rgb

    def close(self) -> None:
        self._finalizer()
