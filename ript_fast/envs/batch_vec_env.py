"""What every engine-backed vector env shares: gymnasium's VectorEnv API over a C++ batch (`_C.sim.BatchSim`
for MetaWorld, `_C.sim.LiberoSim` for LIBERO) whose output arrays are preallocated.

A subclass builds its batch (`self._sim`) and says how to start episodes: `_sample_episodes(ids)` (fresh
episodes) and `_restart(ids, states, noise)` (from context rows), plus `_observation()`. The autoreset modes,
frozen finished envs, reset masks, action checks and returned buffers are the same for every family (see
docs/ARCHITECTURE.md, "Environments").
"""

from __future__ import annotations

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

    def __init__(self, tasks: list[str], instructions: list[str], obs_mode: str, autoreset: bool, copy: bool) -> None:
        if obs_mode not in self.obs_modes:
            raise ValueError(f"obs_mode: must be one of {self.obs_modes}, got {obs_mode!r}")
        self.num_envs = len(tasks)
        self.task_names = list(tasks)
        self.instructions = list(instructions)
        self.obs_mode = obs_mode
        self.autoreset = autoreset
        self.copy = copy
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP if autoreset else AutoresetMode.DISABLED}
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._frozen = np.zeros(self.num_envs, dtype=bool)
        self._all = np.ones(self.num_envs, dtype=bool)

    def _set_spaces(self, single_observation_space: gym.Space, action_dim: int) -> None:
        self.single_observation_space = single_observation_space
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(action_dim,), dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    # ---- what a family provides --------------------------------------------------------------------

    def _seed_all(self, seed: int | None) -> None:
        raise NotImplementedError

    def _sample_episodes(self, ids: np.ndarray) -> None:
        raise NotImplementedError

    def _restart(self, ids: np.ndarray, states: np.ndarray, noise: float) -> None:
        raise NotImplementedError

    def _observation(self) -> Any:
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
        return self._observation(), self._info(self._all)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = self._check_actions(actions)
        pending = self._needs_reset.copy()
        active = ~(pending | self._frozen)
        self._sim.step(actions, active)
        if pending.any():
            self._sample_episodes(np.flatnonzero(pending))
        done = (self._sim.terminated | self._sim.truncated) & active
        if self.autoreset:
            self._needs_reset = done
        else:
            self._frozen |= done
        return (
            self._observation(),
            self._out(self._sim.reward),
            self._out(self._sim.terminated),
            self._out(self._sim.truncated),
            self._info(active),
        )

    def get_state(self) -> np.ndarray:
        """(N, S) float64: each env's current episode as a context vector (see ript_fast.envs.contexts)."""
        return self._sim.context.copy()

    # ---- internals -------------------------------------------------------------------------------------

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
