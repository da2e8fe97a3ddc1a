"""What every engine-backed vector env shares: gymnasium's VectorEnv API over a C++ batch (`_C.sim.BatchSim`
for MetaWorld, `_C.sim.LiberoSim` for LIBERO) whose output arrays are preallocated.

A subclass builds its batch (`self._sim`) and its renderer (`_attach_renderer`) and says how to start episodes:
`_sample_episodes(ids)` (fresh episodes) and `_restart(ids, states, noise)` (from context rows), plus
`_observation(images)`. The autoreset modes, frozen finished envs, reset masks, action checks, returned
buffers, images every step or on demand, and the closed state are the same for every family (see
docs/ARCHITECTURE.md, "Environments").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from ript_fast.envs import contexts


class BatchVecEnv(gym.vector.VectorEnv):
    """N envs stepped as one batch in C++; see the module docstring for what a subclass provides."""

    _sim: Any
    obs_modes: tuple[str, ...] = ("state", "rgb", "state+rgb")

    def __init__(
        self,
        tasks: list[str],
        instructions: list[str],
        obs_mode: str,
        autoreset: bool,
        copy: bool,
        render_every_step: bool = True,
    ) -> None:
        if obs_mode not in self.obs_modes:
            raise ValueError(f"obs_mode: must be one of {self.obs_modes}, got {obs_mode!r}")
        if not isinstance(render_every_step, bool):
            raise ValueError(f"render_every_step: must be True or False, got {render_every_step!r}")
        self.num_envs = len(tasks)
        self.task_names = list(tasks)
        self.instructions = list(instructions)
        self.obs_mode = obs_mode
        self.autoreset = autoreset
        self.copy = copy
        # True: reset/step observations carry every env's images (gymnasium's contract). False: they carry
        # the state part only and images come from render_observations (see rendering_mode).
        self.render_every_step = render_every_step
        self.image_cameras: dict[str, str] = {}  # image observation key -> the camera it shows
        self._renderer: Any = None  # a rendering.BatchRenderer in the image modes
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP if autoreset else AutoresetMode.DISABLED}
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._frozen = np.zeros(self.num_envs, dtype=bool)
        self._all = np.ones(self.num_envs, dtype=bool)

    def _set_spaces(self, single_observation_space: gym.Space, action_dim: int) -> None:
        self.single_observation_space = single_observation_space
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(action_dim,), dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def _attach_renderer(
        self,
        models: Sequence[Any],
        datas: Sequence[Any],
        size: tuple[int, int],
        image_cameras: dict[str, str],
        geom_groups: Sequence[bool] | None = None,
    ) -> None:
        """In the image modes, a renderer of the envs (env i: its task's mujoco.MjModel models[i], its datas[i])
        whose camera image_cameras[key] gives the observation's `key`, drawing the geom groups the family's own
        renderer draws (default: MuJoCo's)."""
        self.image_cameras = dict(image_cameras)
        if self.obs_mode != "state":
            from ript_fast.envs.rendering import DEFAULT_GEOM_GROUPS, BatchRenderer

            cameras = list(self.image_cameras.values())
            groups = DEFAULT_GEOM_GROUPS if geom_groups is None else geom_groups
            self._renderer = BatchRenderer(models, datas, self.task_names, size, cameras, geom_groups=groups)

    # ---- what a family provides --------------------------------------------------------------------

    def _seed_all(self, seed: int | None) -> None:
        raise NotImplementedError

    def _sample_episodes(self, ids: np.ndarray) -> None:
        raise NotImplementedError

    def _restart(self, ids: np.ndarray, states: np.ndarray, noise: float) -> None:
        raise NotImplementedError

    def _observation(self, images: dict[str, np.ndarray] | None) -> Any:
        """The observation of obs_mode around `images` (every env's, by image key), or its state part when
        images is None (rendering on demand, or obs_mode "state")."""
        raise NotImplementedError

    # ---- gymnasium API -------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset all envs, or those in options["reset_mask"].

        options:
          reset_mask: (N,) bool, the envs to reset (default all); the others keep their state and outputs.
          init_state: context vectors (from get_state() or a demo's states[0]) to restart from instead of
            sampling: (N, S) (row i for env i) or (number of reset envs, S) (one row per reset env, in order).
          context_noise_std: with init_state, Gaussian noise (metres) on each context's object placement
            (paper App. A.4), drawn from each env's stream, reproducible from the reset seed.
        """
        self._check_open("reset")
        options = dict(options or {})
        unknown = set(options) - {"reset_mask", "init_state", "context_noise_std"}
        if unknown:
            raise ValueError(f"options: unknown keys {sorted(unknown)}")
        if seed is not None:
            self._seed_all(seed)
        mask = self._reset_mask(options.get("reset_mask"))
        ids = np.flatnonzero(mask)
        noise = float(options.get("context_noise_std", 0.0))
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"context_noise_std: must be a finite number >= 0, got {noise}")
        if options.get("init_state") is not None:
            states = contexts.rows_for(options["init_state"], ids, self.num_envs, self._sim.context_dim)
            self._restart(ids, states, noise)
        else:
            self._sample_episodes(ids)
        self._needs_reset[ids] = False
        self._frozen[ids] = False
        self._invalidate_frames(mask)
        return self._observation(self._step_images()), self._info(self._all)

    def step(self, actions: Any, env_ids: Any = None) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """gymnasium's step; `env_ids` steps only those envs (the others keep their state and outputs, reward 0),
        so that one part of a batch can step while a policy acts for another."""
        self._check_open("step")
        actions = self._check_actions(actions)
        chosen = self._all.copy() if env_ids is None else np.isin(np.arange(self.num_envs), self._env_ids(env_ids))
        pending = self._needs_reset & chosen
        active = ~(self._needs_reset | self._frozen) & chosen
        self._sim.step(actions, active)
        if pending.any():
            self._sample_episodes(np.flatnonzero(pending))
        self._invalidate_frames(active | pending)  # frozen envs did not move: their frames stay valid
        done = (self._sim.terminated | self._sim.truncated) & active
        if self.autoreset:
            self._needs_reset = (self._needs_reset & ~chosen) | done
        else:
            self._frozen |= done
        return (
            self._observation(self._step_images()),
            self._out(self._sim.reward),
            self._out(self._sim.terminated),
            self._out(self._sim.truncated),
            self._info(active),
        )

    def get_state(self) -> np.ndarray:
        """(N, S) float64: each env's current episode as a context vector (see ript_fast.envs.contexts)."""
        self._check_open("get_state")
        return self._sim.context.copy()

    # ---- images on demand ----------------------------------------------------------------------------

    @property
    def render_seconds(self) -> float:
        """Wall seconds this env has spent drawing frames (0 without images): rollouts time rendering apart."""
        return 0.0 if self._renderer is None else self._renderer.seconds_drawing

    def render_observations(
        self, ids: Sequence[int] | np.ndarray | None = None, keys: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The image entries of the current observation for envs `ids` (default all), as reset/step would
        return them when rendering every step: {key: (len(ids), H, W, 3) uint8}, new arrays.

        keys: image keys (default all of `image_cameras`). Only frames not yet drawn for the envs' present state
        are rendered, so asking twice in one step, or after a step that rendered them, costs nothing.
        """
        self._check_open("render_observations")
        if self._renderer is None:
            raise ValueError(
                "render_observations: this env has no cameras (obs_mode 'state'); make it with "
                "obs_mode 'rgb' or 'state+rgb'"
            )
        rows = self._env_ids(ids)
        keys = list(self.image_cameras) if keys is None else list(keys)
        unknown = [k for k in keys if k not in self.image_cameras]
        if unknown:
            raise ValueError(f"keys: {unknown} are not image keys of this env; it has {list(self.image_cameras)}")
        self._renderer.render(rows, [self.image_cameras[k] for k in keys])
        return {k: self._renderer.images[self.image_cameras[k]][rows] for k in keys}

    @contextmanager
    def rendering_mode(self, every_step: bool) -> Iterator[BatchVecEnv]:
        """Sets `render_every_step` for a block and restores it after: with False, reset/step return
        observations without images (nothing is rendered then) and images come from render_observations."""
        previous = self.render_every_step
        self.render_every_step = every_step
        try:
            yield self
        finally:
            self.render_every_step = previous

    # ---- closing -----------------------------------------------------------------------------------------

    def close_extras(self, **kwargs: Any) -> None:
        """Frees the renderer (GL contexts); gymnasium's close() calls this once and then marks the env closed."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ---- internals -------------------------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self.closed:
            raise gym.error.ClosedEnvironmentError(
                f"{what}: this env was closed (close() frees its renderer and threads); make a new one with "
                "make_vec_env"
            )

    def _step_images(self) -> dict[str, np.ndarray] | None:
        """What reset/step return as images: every env's frames when rendering every step, else None. Every
        frame is drawn anew, frozen envs' too, as this path always has: it is the reference the on-demand
        frames are tested against, so it does not lean on their bookkeeping."""
        if self._renderer is None or not self.render_every_step:
            return None
        self._renderer.invalidate(self._all)
        self._renderer.render()
        return {key: self._out(self._renderer.images[cam]) for key, cam in self.image_cameras.items()}

    def _invalidate_frames(self, changed: np.ndarray) -> None:
        if self._renderer is not None:
            self._renderer.invalidate(changed)

    def _env_ids(self, ids: Any) -> np.ndarray:
        if ids is None:
            return np.arange(self.num_envs)
        rows = np.asarray(ids)
        if rows.ndim != 1 or not (rows.size == 0 or np.issubdtype(rows.dtype, np.integer)):
            raise ValueError(f"ids: must be a 1-D sequence of env indices, got {rows.dtype} {rows.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= self.num_envs):
            raise ValueError(f"ids: env indices must be in [0, {self.num_envs}), got {rows.tolist()}")
        return rows.astype(np.int64)

    def _reset_mask(self, mask: Any) -> np.ndarray:
        if mask is None:
            return self._all.copy()
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.num_envs,):
            raise ValueError(f"reset_mask: must be a ({self.num_envs},) bool array, got {mask.dtype} {mask.shape}")
        return mask

    def _check_actions(self, actions: Any) -> np.ndarray:
        arr = np.asarray(actions)
        if arr.dtype not in (np.float32, np.float64):
            if not np.issubdtype(arr.dtype, np.floating):
                raise TypeError(f"actions: dtype must be floating (float32 or float64), got {arr.dtype}")
            arr = arr.astype(np.float32)
        width = self.single_action_space.shape[0]
        if arr.shape != (self.num_envs, width):
            raise ValueError(f"actions: expected shape ({self.num_envs}, {width}), got {arr.shape}")
        return np.ascontiguousarray(arr)

    def _out(self, array: np.ndarray) -> np.ndarray:
        return array.copy() if self.copy else array

    def _info(self, active: np.ndarray) -> dict[str, Any]:
        return {"success": self._out(self._sim.success), "sim_error": self._out(self._sim.sim_error), "active": active}
