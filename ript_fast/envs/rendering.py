"""Offscreen RGB rendering of a batch, in a light profile for CPU rendering.

Two ways to draw the same frames, chosen when the renderer is made (`render_backend`):
  * "engine" (the default unless MUJOCO_GL is "glfw"): `_C.render.BatchRenderer` draws in the core's thread
    pool with the GIL released, one GL context per thread that may draw at once (EGL; OSMesa where
    MUJOCO_GL=osmesa asks for it, or where EGL is not usable and MUJOCO_GL does not ask for EGL), the envs dealt
    to them by task (each context holds MuJoCo's render context of its envs' tasks only), and reads pixels
    straight into `images`. An engine context is current only inside an engine call: a draw on the calling
    thread puts back the caller's context (EGL; none if that one was destroyed meanwhile by another thread while
    current here; OSMesa always leaves none), never its own, whose framebuffer and textures Python code freeing a
    MuJoCo render context on that thread would otherwise delete (wrong frames; likely the SIGSEGV once seen in
    CI's full test run).
    A missing or broken GL stack is one GlError (a RuntimeError naming MUJOCO_GL and the system packages) when
    the env is made.
  * "python": one OpenGL context from MuJoCo's Python backend of MUJOCO_GL (egl, osmesa, glfw) and a Python loop
    over envs; the path for MUJOCO_GL=glfw, and the baseline bench/bench_image_rollouts.py measures.
RIPT_FAST_RENDER=python|engine overrides the choice; RIPT_FAST_RENDER_THREADS sets how many GL contexts the engine
draws with, each of which holds its tasks' textures (~390 MB per LIBERO task). Default: one on Mesa's software
rasterizer (llvmpipe), whose GL the engine serializes, so that more contexts would cost memory and draw no faster;
on a GPU's EGL one per pool thread, drawing at once. Both run
MuJoCo's own pipeline (mj_camlight with the render model, mjv_updateScene from a fixed camera, mjr_render,
mjr_readPixels) on the same render models and give the same pixels (python_tests/test_render_engine.py).

One render model per task (envs of a task share it: the geometry, meshes and textures are the task's; positions
come from each env's mjData). The light profile drops what costs most on a CPU rasteriser: no shadows, no
reflections, no multisampling, small shadow maps; 128x128 by default. Camera `corner2` gets QueST's position
tweak, and rows stay bottom-up as OpenGL returns them (QueST feeds its policy the vertical flip of the upright
image, and robosuite, hence LIBERO's demos, keep OpenGL's order).

Frames are drawn on request, per env and camera, and at most once per simulation state: `current` records
which frames still show their env's state, and the env marks the envs it steps or resets as stale
(`invalidate`). Rendering is most of an image rollout's time on a CPU while a chunked policy reads one step in
eight, so an env can ask for just the frames a query reads (`BatchVecEnv.render_observations`).
"""

from __future__ import annotations

import atexit
import copy
import importlib
import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import mujoco
import numpy as np

from ript_fast._core import _C

QUEST_CORNER2_POS = (0.75, 0.075, 0.7)  # QueST's metaworld wrapper moves camera corner2 here
# The geom groups drawn (mjvOption.geomgroup): MuJoCo's defaults (groups 0-2), as MetaWorld's renderer draws.
DEFAULT_GEOM_GROUPS: tuple[bool, ...] = tuple(bool(g) for g in mujoco.MjvOption().geomgroup)


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


def _mujoco_gl() -> str:
    return os.environ.get("MUJOCO_GL", "").strip().lower()


def render_backend() -> str:
    """How frames are drawn (see the module docstring): RIPT_FAST_RENDER when set, else "python" where MUJOCO_GL
    asks for GLFW (a window system's GL, which the engine does not make) and "engine" otherwise (EGL or OSMesa;
    with MUJOCO_GL=disable, as libero/setup.py sets it where libEGL is missing, OSMesa if installed, else an image
    env fails with the engine's GlError saying what to install)."""
    chosen = os.environ.get("RIPT_FAST_RENDER", "").strip().lower()
    if chosen and chosen not in ("engine", "python"):
        raise ValueError(f"RIPT_FAST_RENDER: must be 'engine' or 'python', got {chosen!r}")
    if chosen == "engine" and _mujoco_gl() == "glfw":
        raise ValueError("RIPT_FAST_RENDER=engine draws with EGL or OSMesa, but MUJOCO_GL='glfw': unset one of them")
    return chosen or ("python" if _mujoco_gl() == "glfw" else "engine")


def render_threads() -> int:
    """How many threads the engine's renderer may draw with at once (one GL context each): RIPT_FAST_RENDER_THREADS
    when set, else 0, the engine's default (`_C.render.default_slots()`: 1 on a software rasterizer, else the
    pool's size). A memory knob: every context uploads its tasks' textures."""
    value = os.environ.get("RIPT_FAST_RENDER_THREADS", "").strip()
    if not value:
        return 0
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"RIPT_FAST_RENDER_THREADS: must be a positive integer, got {value!r}")
    return int(value)


def check_gl() -> None:
    """Makes and frees one GL context of the kind `render_backend()` draws with: raises what making an image env
    would raise where GL is missing or broken (the engine's GlError names MUJOCO_GL and the packages)."""
    if render_backend() == "engine":
        _C.render.check_gl()
    else:
        _gl_context_class()(16, 16).free()


def _gl_context_class() -> Any:
    """MuJoCo's Python GL context class for MUJOCO_GL (egl by default), for the "python" path."""
    backend = _mujoco_gl() or "egl"
    module = {"egl": "mujoco.egl", "osmesa": "mujoco.osmesa"}.get(backend, "mujoco.glfw")
    return importlib.import_module(module).GLContext


def light_profile(model: mujoco.MjModel, width: int, height: int) -> None:
    """Cheap CPU rendering settings on a render-only model copy."""
    model.vis.quality.shadowsize = 512
    model.vis.quality.offsamples = 0
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)


def render_model(
    env_model: mujoco.MjModel, cameras: Sequence[str], width: int, height: int
) -> tuple[mujoco.MjModel, list[int]]:
    """A render-only copy of a task's model (light profile, QueST's corner2) and the ids of `cameras` in it.
    A copy, so that the physics model keeps its own settings and the engine never sees the tweaks."""
    model = copy.copy(env_model)
    light_profile(model, width, height)
    ids = []
    for camera in cameras:
        cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, check_camera(model, camera))
        if camera == "corner2":
            model.cam_pos[cam_id] = QUEST_CORNER2_POS
        ids.append(cam_id)
    return model, ids


class _EngineDraw:
    """Frames drawn by `_C.render.BatchRenderer` in the core's thread pool (one EGL or OSMesa context per thread
    that may draw at once), straight into the images; GlError at construction if GL is missing or broken."""

    def __init__(
        self,
        models: Sequence[tuple[mujoco.MjModel, list[int]]],
        task_of_env: Sequence[int],
        datas: Sequence[mujoco.MjData],
        size: tuple[int, int],
        bottom_up: bool,
        geom_groups: Sequence[bool],
        images: Sequence[np.ndarray],
        current: np.ndarray,
    ) -> None:
        spec = _C.render.RenderSpec()
        spec.models = [model._address for model, _ in models]
        spec.camera_ids = [ids for _, ids in models]
        spec.task_of_env = list(task_of_env)
        spec.datas = [data._address for data in datas]
        spec.height, spec.width = size
        spec.bottom_up = bottom_up
        spec.geom_groups = [int(g) for g in geom_groups]
        self._renderer = _C.render.BatchRenderer(spec, list(images), current, render_threads())

    @property
    def contexts(self) -> int:
        return self._renderer.slots

    def draw(self, rows: np.ndarray, wanted: np.ndarray) -> None:
        self._renderer.render(rows, wanted)

    def close(self) -> None:
        self._renderer.close()


class _PythonDraw:
    """Frames drawn one at a time from Python on one GL context of MuJoCo's MUJOCO_GL backend, with a render
    context and a scene per task (the path before the engine's; the one for MUJOCO_GL=glfw)."""

    contexts = 1

    def __init__(
        self,
        models: Sequence[tuple[mujoco.MjModel, list[int]]],
        task_of_env: Sequence[int],
        datas: Sequence[mujoco.MjData],
        size: tuple[int, int],
        bottom_up: bool,
        geom_groups: Sequence[bool],
        images: Sequence[np.ndarray],
        current: np.ndarray,
    ) -> None:
        height, width = size
        self._models, self._task_of_env, self._datas = models, list(task_of_env), list(datas)
        self._images, self._current, self._bottom_up = list(images), current, bottom_up
        self._gl = _gl_context_class()(width, height)
        self._gl.make_current()
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = [int(g) for g in geom_groups]
        self._frame = np.empty((height, width, 3), dtype=np.uint8)
        self._scenes, self._contexts = [], []
        for model, _ in models:
            scene = mujoco.MjvScene(model, maxgeom=1000)
            scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            self._scenes.append(scene)
            self._contexts.append(mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150))
        self._cameras = []
        for _, ids in models:
            cams = [mujoco.MjvCamera() for _ in ids]
            for cam, cam_id in zip(cams, ids, strict=True):
                cam.type, cam.fixedcamid = mujoco.mjtCamera.mjCAMERA_FIXED, cam_id
            self._cameras.append(cams)

    def draw(self, rows: np.ndarray, wanted: np.ndarray) -> None:
        self._gl.make_current()
        for i in rows.tolist():
            stale = np.flatnonzero(wanted & ~self._current[i])
            if stale.size:
                self._draw_env(i, stale.tolist())

    def _draw_env(self, i: int, cameras: list[int]) -> None:
        task = self._task_of_env[i]
        model, context, scene = self._models[task][0], self._contexts[task], self._scenes[task]
        data = self._datas[i]
        # Camera and light frames are not part of the engine's per-step kinematics; place them from the render
        # model (whose corner2 may be moved) without touching the physics state.
        mujoco.mj_camlight(model, data)
        # Every task context has its own offscreen framebuffer; bind this one before drawing into it.
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, context)
        for c in cameras:
            mujoco.mjv_updateScene(
                model, data, self._option, None, self._cameras[task][c], mujoco.mjtCatBit.mjCAT_ALL, scene
            )
            mujoco.mjr_render(self._rect, scene, context)
            mujoco.mjr_readPixels(self._frame, None, self._rect, context)
            np.copyto(self._images[c][i], self._frame if self._bottom_up else self._frame[::-1])
            self._current[i, c] = True

    def close(self) -> None:
        """Frees the render contexts, then the GL context (once: on close(), collection or interpreter exit)."""
        for context in self._contexts:
            context.free()
        self._contexts.clear()
        self._gl.free()


class BatchRenderer:
    """Renders the envs of a batch from one or more fixed cameras into preallocated (N, H, W, 3) uint8 arrays,
    `images[camera]`; `current[camera]` (N,) bool marks the frames that show their env's present state, and
    `frames_drawn` counts the frames drawn so far (what rendering on demand saves), `seconds_drawing` the wall time
    spent drawing them."""

    def __init__(
        self,
        models: Sequence[mujoco.MjModel],
        datas: Sequence[mujoco.MjData],
        task_names: Sequence[str],
        size: tuple[int, int] = (128, 128),
        camera: str | Sequence[str] = "corner2",
        flip_vertical: bool = True,
        backend: str | None = None,
        geom_groups: Sequence[bool] = DEFAULT_GEOM_GROUPS,
    ) -> None:
        """Env i shows datas[i]; models[i] is its task's model (the first env's of each task is the one copied
        for rendering: a frame reads positions from the data, never the model's body/site positions).
        geom_groups: which of MuJoCo's geom groups are drawn (LIBERO's renderer hides group 0, the collision
        meshes)."""
        height, width = check_render_size(size)
        if len(geom_groups) != mujoco.mjNGROUP:
            raise ValueError(f"geom_groups: one flag per MuJoCo geom group ({mujoco.mjNGROUP}), got {geom_groups!r}")
        self.geom_groups = tuple(bool(g) for g in geom_groups)
        self.cameras = (camera,) if isinstance(camera, str) else tuple(camera)
        self.backend = render_backend() if backend is None else backend
        first_model: dict[str, mujoco.MjModel] = {}
        for task, model in zip(task_names, models, strict=True):
            first_model.setdefault(task, model)
        tasks = list(first_model)
        # Held here: the C++ renderer reads these models and the envs' datas by address.
        self._models = [render_model(first_model[t], self.cameras, width, height) for t in tasks]
        self._datas = list(datas)
        self._current = np.zeros((len(self._datas), len(self.cameras)), dtype=bool)
        self.images = {c: np.zeros((len(self._datas), height, width, 3), dtype=np.uint8) for c in self.cameras}
        self.current = {c: self._current[:, k] for k, c in enumerate(self.cameras)}
        self.frames_drawn = 0
        self.seconds_drawing = 0.0
        draw_class: Callable[..., _EngineDraw | _PythonDraw] = {"engine": _EngineDraw, "python": _PythonDraw}[
            self.backend
        ]
        self._draw = draw_class(
            self._models,
            [tasks.index(t) for t in task_names],
            self._datas,
            (height, width),
            flip_vertical,
            self.geom_groups,
            [self.images[c] for c in self.cameras],
            self._current,
        )
        self._finalizer = weakref.finalize(self, self._draw.close)
        # Also at exit, before the exit hooks of libraries imported earlier (atexit runs last-in first-out):
        # robosuite's and mujoco.egl's terminate the EGL display, after which no context can be freed.
        atexit.register(self._finalizer)

    @property
    def gl_contexts(self) -> int:
        """How many GL contexts draw the frames (RIPT_FAST_RENDER_THREADS; the Python loop has one)."""
        return self._draw.contexts

    def invalidate(self, rows: np.ndarray) -> None:
        """The envs at `rows` (indices or an (N,) bool mask) changed state: their frames must be drawn again."""
        self._current[rows] = False

    def render(self, rows: np.ndarray | None = None, cameras: Sequence[str] | None = None) -> None:
        """Draws into `images` the frames of envs `rows` (default all) from `cameras` (default all) that are not
        current; current ones are kept (a frame depends only on its env's state, so it would come out the same)."""
        rows = np.arange(len(self._current), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        wanted = np.isin(self.cameras, self.cameras if cameras is None else list(cameras))
        self.frames_drawn += int(np.count_nonzero(~self._current[np.unique(rows)][:, wanted]))
        start = time.perf_counter()
        self._draw.draw(rows, wanted)
        self.seconds_drawing += time.perf_counter() - start

    def close(self) -> None:
        self._finalizer()
