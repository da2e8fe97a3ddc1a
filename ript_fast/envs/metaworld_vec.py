"""Vectorized MetaWorld on the C++ batch engine, with gymnasium's VectorEnv API.

Per step, one call into C++ (GIL released, envs spread over the core's thread pool) applies every action,
runs the physics, writes the observations into a preallocated (N, 39) buffer and computes the success flags.
MetaWorld's Python only builds the tasks and samples their parameters at reset.

Semantics (see docs/ARCHITECTURE.md, "Environments"):
  * reward = the binary success flag (RIPT's sparse reward), info["success"] the same as bools;
  * terminated = success (``terminate_on_success=True``, the default), truncated at ``max_episode_steps`` (500);
  * a diverging simulation fails its env alone: reward 0, truncated, info["sim_error"] True, its observation
    the last good one; its MjData is reset (mj_resetData), so its next reset starts from a sane state;
  * autoreset: gymnasium's next-step mode (an env that finished is reset by the following ``step`` call, which
    returns its reset observation with reward 0); with ``autoreset=False`` a finished env is not stepped
    again: its observation, terminated, truncated and success stay as they were, its reward is 0, until
    ``reset(options={"reset_mask": mask})``;
  * returned arrays are the env's own buffers, overwritten by the next call (``copy=True`` returns copies);
  * images ("rgb", camera ``camera``) every step, or on demand (``render_every_step=False`` or inside
    ``env.rendering_mode(every_step=False)``: ``env.render_observations(ids)``), the same pixels either way.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import numpy as np

from ript_fast._core import _C
from ript_fast.envs import contexts
from ript_fast.envs.batch_vec_env import BatchVecEnv
from ript_fast.envs.metaworld_task_env import make_task_env, reset_task_env
from ript_fast.envs.metaworld_tasks import TASK_NAMES, TASKS
from ript_fast.envs.rendering import check_camera, check_render_size
from ript_fast.envs.spec_compiler import compile_env, live_goal


class MetaWorldVecEnv(BatchVecEnv):
    """N MetaWorld v3 envs (any mix of tasks) stepped as one batch in C++."""

    def __init__(
        self,
        tasks: list[str],
        seed: int | None = None,
        obs_mode: str = "state",
        *,
        autoreset: bool = True,
        terminate_on_success: bool = True,
        goal_observable: bool = True,
        max_episode_steps: int = 500,
        render_size: tuple[int, int] = (128, 128),
        camera: str = "corner2",
        copy: bool = False,
        render_every_step: bool = True,
    ) -> None:
        super().__init__(tasks, [TASKS[t].instruction for t in tasks], obs_mode, autoreset, copy, render_every_step)
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps: must be >= 1, got {max_episode_steps}")
        render_size = check_render_size(render_size)
        self._seed = seed
        self.envs = [make_task_env(t, goal_observable, None) for t in tasks]
        check_camera(self.envs[0].model, camera)  # every MetaWorld task has the same cameras
        self._sim = _C.sim.BatchSim(self._compile(goal_observable, max_episode_steps, terminate_on_success))
        self._noise_rngs: list[np.random.Generator] = []
        self._seed_all(seed)
        self._reset_threads: ThreadPoolExecutor | None = None
        self._reset_thread_count = 0
        self._attach_renderer(self.envs, render_size, {"rgb": camera})
        self._define_spaces(render_size)

    # ---- construction --------------------------------------------------------------------------------

    def _compile(self, goal_observable: bool, max_steps: int, terminate_on_success: bool) -> list[Any]:
        """One EnvConfig per env. The goal's source is probed once per task with a throwaway reset."""
        goals: dict[str, Any] = {}
        configs = []
        for task, env in zip(self.task_names, self.envs, strict=True):
            if task not in goals:
                probe = make_task_env(task, goal_observable, 0)
                reset_task_env(probe)
                goals[task] = live_goal(probe)
            configs.append(
                compile_env(
                    TASKS[task],
                    env,
                    task_id=TASK_NAMES.index(task),
                    max_steps=max_steps,
                    terminate_on_success=terminate_on_success,
                    goal=goals[task],
                )
            )
        return configs

    def _define_spaces(self, render_size: tuple[int, int]) -> None:
        state = gym.spaces.Box(-np.inf, np.inf, shape=(self._sim.obs_dim,), dtype=np.float64)
        rgb = gym.spaces.Box(0, 255, shape=(*render_size, 3), dtype=np.uint8)
        both = gym.spaces.Dict({"state": state, "rgb": rgb})
        self._set_spaces({"state": state, "rgb": rgb, "state+rgb": both}[self.obs_mode], 4)

    def _seed_all(self, seed: int | None) -> None:
        """Env i draws its task parameters from seed + i (as a MetaWorld env seeded so) and context noise from
        its own stream derived from (seed, i). Without a seed the base is drawn from OS entropy (MetaWorld's
        own seed() rejects None)."""
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0]) // 2  # leaves room for seed + i
        for i, env in enumerate(self.envs):
            env.seed(seed + i)
        self._noise_rngs = [np.random.default_rng([seed, i]) for i in range(self.num_envs)]

    # ---- gymnasium API -------------------------------------------------------------------------------

    def close_extras(self, **kwargs: Any) -> None:
        if self._reset_threads is not None:
            self._reset_threads.shutdown()
            self._reset_threads = None
        super().close_extras(**kwargs)

    # ---- internals -------------------------------------------------------------------------------------

    def _sample_episodes(self, ids: np.ndarray) -> None:
        """Fresh episodes: MetaWorld samples each task, the engine takes over.

        Most of a MetaWorld reset is its settling loop, which runs in C++ with the GIL released, so the resets
        of several envs overlap on Python threads (one per core-pool thread). Each env has its own model, data
        and random stream, so which thread resets it does not change the result.
        """
        envs = [self.envs[int(i)] for i in ids]
        threads = min(_C.num_threads(), len(envs))
        if threads > 1:
            if self._reset_threads is None or self._reset_thread_count != threads:
                if self._reset_threads is not None:
                    self._reset_threads.shutdown()
                self._reset_threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ript-reset")
                self._reset_thread_count = threads
            list(self._reset_threads.map(reset_task_env, envs))
        else:
            for env in envs:
                reset_task_env(env)
        for i in ids:
            self._begin(int(i))

    def _begin(self, i: int) -> None:
        env = self.envs[i]
        params = [float(v) for p in TASKS[self.task_names[i]].params for v in np.asarray(getattr(env, p))]
        target = [float(v) for v in np.asarray(env._target_pos, dtype=np.float64)]
        rand_vec = [float(v) for v in np.asarray(env._last_rand_vec, dtype=np.float64)]
        self._sim.begin_episode(i, target, params, rand_vec)

    def _restart(self, ids: np.ndarray, states: np.ndarray, noise: float) -> None:
        if noise == 0.0:
            self._sim.restore(states, ids.astype(np.int64))
            return
        # Noise changes where objects start, so the task is rebuilt by MetaWorld from the perturbed vector
        # (fixtures and goals placed consistently), not restored bit for bit.
        contexts.check_tasks(states, ids, [TASK_NAMES.index(self.task_names[int(i)]) for i in ids])
        for row, i in zip(states, ids, strict=True):
            base = contexts.rand_vec(row)
            rng = self._noise_rngs[int(i)]

            def perturbed(base: np.ndarray = base, rng: np.random.Generator = rng) -> np.ndarray:
                vec = base.copy()
                vec[:2] += rng.normal(0.0, noise, size=2)
                return vec

            reset_task_env(self.envs[int(i)], perturbed)
            self._begin(int(i))

    def _observation(self, images: dict[str, np.ndarray] | None) -> Any:
        state = self._out(self._sim.obs)
        if self.obs_mode == "state":
            return state
        if images is None:  # images on demand: the state part of "state+rgb"
            return {"state": state}
        return images["rgb"] if self.obs_mode == "rgb" else {"state": state, **images}
