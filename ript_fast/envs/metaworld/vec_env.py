"""Vectorized MetaWorld on the C++ batch engine, with gymnasium's VectorEnv API.

Per step, one call into C++ (GIL released, envs spread over the core's thread pool) applies every action,
runs the physics, writes the observations into a preallocated (N, 39) buffer and computes the success flags.
MetaWorld's Python only builds the tasks and samples their parameters at reset.

Memory: the envs of a task share one read-only model (`task_env.shared_model`, 21 MB for pick-place:
textures, meshes, BVHs). Env i owns only a `_C.sim.ModelView` of it (`models[i]`: private body_pos/site_pos,
the two fields MetaWorld's resets write), an MjData (`datas[i]`) and its random streams. Its episodes are sampled
by a few full MetaWorld envs of its task ("samplers", one per reset thread working on the task) that run
MetaWorld's reset on env i's own data, model fields and random stream (`reset_on_behalf`), so env i gets the
episodes a MetaWorld env of its own would (python_tests/test_env_shared_models.py).

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

import math
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.utils import seeding

from ript_fast._core import _C
from ript_fast.envs import contexts
from ript_fast.envs.batch_vec_env import BatchVecEnv
from ript_fast.envs.metaworld.spec_compiler import compile_env, live_goal
from ript_fast.envs.metaworld.task_env import (
    RandVecOverride,
    make_task_env,
    reset_on_behalf,
    reset_task_env,
    shared_model,
)
from ript_fast.envs.metaworld.tasks import TASK_NAMES, TASKS
from ript_fast.envs.rendering import check_camera, check_render_size

# (env index, the random vector to reset it with: None = MetaWorld's sampler draws it)
ResetJob = tuple[int, RandVecOverride | None]
# What the engine's begin_episode takes besides the env index: target, parameters, random vector.
EpisodeValues = tuple[list[float], list[float], list[float]]


class _Lane(NamedTuple):
    """Resets of envs of one task, run in order by one sampler of that task."""

    task: str
    sampler: Any
    jobs: list[ResetJob]


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
        self._goal_observable = goal_observable
        # The idle samplers of each task (see the module docstring); more are made when resets need them.
        self._samplers = {t: [make_task_env(t, goal_observable, None)] for t in dict.fromkeys(tasks)}
        shared = {t: shared_model(envs[0].fullpath) for t, envs in self._samplers.items()}
        self.models = [_C.sim.ModelView(shared[t]) for t in tasks]
        self.datas = [mujoco.MjData(shared[t]) for t in tasks]
        check_camera(shared[tasks[0]], camera)  # every MetaWorld task has the same cameras
        self._sim = _C.sim.BatchSim(self._compile(max_episode_steps, terminate_on_success))
        self._rngs: list[np.random.Generator] = []
        self._noise_rngs: list[np.random.Generator] = []
        self._seed_all(seed)
        self._reset_threads: ThreadPoolExecutor | None = None
        self._reset_thread_count = 0
        self._attach_renderer([shared[t] for t in tasks], self.datas, render_size, {"rgb": camera})
        self._define_spaces(render_size)

    # ---- construction --------------------------------------------------------------------------------

    def _compile(self, max_steps: int, terminate_on_success: bool) -> list[Any]:
        """One EnvConfig per env. The goal's source is probed once per task with a reset of its first sampler
        on the sampler's own state (every reset for an env replaces all of that state)."""
        goals: dict[str, Any] = {}
        for task, samplers in self._samplers.items():
            reset_task_env(samplers[0])
            goals[task] = live_goal(samplers[0])
        return [
            compile_env(
                TASKS[task],
                self._samplers[task][0],
                model,
                data,
                task_id=TASK_NAMES.index(task),
                max_steps=max_steps,
                terminate_on_success=terminate_on_success,
                goal=goals[task],
            )
            for task, model, data in zip(self.task_names, self.models, self.datas, strict=True)
        ]

    def _define_spaces(self, render_size: tuple[int, int]) -> None:
        state = gym.spaces.Box(-np.inf, np.inf, shape=(self._sim.obs_dim,), dtype=np.float64)
        rgb = gym.spaces.Box(0, 255, shape=(*render_size, 3), dtype=np.uint8)
        both = gym.spaces.Dict({"state": state, "rgb": rgb})
        self._set_spaces({"state": state, "rgb": rgb, "state+rgb": both}[self.obs_mode], 4)

    def _seed_all(self, seed: int | None) -> None:
        """Env i draws its task parameters from seed + i (the stream a MetaWorld env seeded so draws from) and
        context noise from its own stream derived from (seed, i). Without a seed the base is drawn from OS
        entropy (MetaWorld's own seed() rejects None)."""
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0]) // 2  # leaves room for seed + i
        self._rngs = [seeding.np_random(seed + i)[0] for i in range(self.num_envs)]
        self._noise_rngs = [np.random.default_rng([seed, i]) for i in range(self.num_envs)]

    # ---- gymnasium API -------------------------------------------------------------------------------

    def close_extras(self, **kwargs: Any) -> None:
        if self._reset_threads is not None:
            self._reset_threads.shutdown()
            self._reset_threads = None
        super().close_extras(**kwargs)

    # ---- internals -------------------------------------------------------------------------------------

    def _sample_episodes(self, ids: np.ndarray) -> None:
        """Fresh episodes: MetaWorld samples each task, the engine takes over."""
        self._reset_envs([(int(i), None) for i in ids])

    def _restart(self, ids: np.ndarray, states: np.ndarray, noise: float) -> None:
        if noise == 0.0:
            self._sim.restore(states, ids.astype(np.int64))
            return
        # Noise changes where objects start, so the task is rebuilt by MetaWorld from the perturbed vector
        # (fixtures and goals placed consistently), not restored bit for bit.
        contexts.check_tasks(states, ids, [TASK_NAMES.index(self.task_names[int(i)]) for i in ids])
        jobs: list[ResetJob] = []
        for row, i in zip(states, ids, strict=True):
            base = contexts.rand_vec(row)
            rng = self._noise_rngs[int(i)]

            def perturbed(base: np.ndarray = base, rng: np.random.Generator = rng) -> np.ndarray:
                vec = base.copy()
                vec[:2] += rng.normal(0.0, noise, size=2)
                return vec

            jobs.append((int(i), perturbed))
        self._reset_envs(jobs)

    def _reset_envs(self, jobs: list[ResetJob]) -> None:
        """MetaWorld's reset of every env in `jobs`, then the engine's start of their episodes.

        Most of a MetaWorld reset is its settling loop, which runs in C++ with the GIL released, so resets
        overlap on Python threads (one per core-pool thread). The jobs are split into lanes of one task, a lane
        run in order by one sampler: a task gets lanes in proportion to its share of the jobs, so it needs at
        most that many samplers (one per task when there are more tasks than threads). Each reset works on its
        env's own state, so neither the lane nor the thread changes the result.
        """
        threads = min(_C.num_threads(), len(jobs))
        by_task: dict[str, list[ResetJob]] = defaultdict(list)
        for job in jobs:
            by_task[self.task_names[job[0]]].append(job)
        lanes = []
        for task, task_jobs in by_task.items():
            count = min(len(task_jobs), math.ceil(threads * len(task_jobs) / len(jobs)))
            lanes += [_Lane(task, self._take_sampler(task), task_jobs[k::count]) for k in range(count)]
        if threads > 1:
            done = list(self._reset_pool(threads).map(self._run_lane, lanes))
        else:
            done = [self._run_lane(lane) for lane in lanes]
        for lane, episodes in zip(lanes, done, strict=True):
            self._samplers[lane.task].append(lane.sampler)
            for i, (target, params, rand_vec) in episodes:
                self._sim.begin_episode(i, target, params, rand_vec)

    def _take_sampler(self, task: str) -> Any:
        idle = self._samplers[task]
        return idle.pop() if idle else make_task_env(task, self._goal_observable, None)

    def _reset_pool(self, threads: int) -> ThreadPoolExecutor:
        if self._reset_threads is None or self._reset_thread_count != threads:
            if self._reset_threads is not None:
                self._reset_threads.shutdown()
            self._reset_threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ript-reset")
            self._reset_thread_count = threads
        return self._reset_threads

    def _run_lane(self, lane: _Lane) -> list[tuple[int, EpisodeValues]]:
        """Resets the lane's envs one after the other; each episode's values are read off the sampler right
        after its reset (the next one overwrites them)."""
        episodes = []
        for i, rand_vec in lane.jobs:
            reset_on_behalf(lane.sampler, self.models[i], self.datas[i], self._rngs[i], rand_vec)
            episodes.append((i, self._episode_values(lane.sampler, lane.task)))
        return episodes

    @staticmethod
    def _episode_values(env: Any, task: str) -> EpisodeValues:
        target = [float(v) for v in np.asarray(env._target_pos, dtype=np.float64)]
        params = [float(v) for p in TASKS[task].params for v in np.asarray(getattr(env, p))]
        rand_vec = [float(v) for v in np.asarray(env._last_rand_vec, dtype=np.float64)]
        return target, params, rand_vec

    def _observation(self, images: dict[str, np.ndarray] | None) -> Any:
        state = self._out(self._sim.obs)
        if self.obs_mode == "state":
            return state
        if images is None:  # images on demand: the state part of "state+rgb"
            return {"state": state}
        return images["rgb"] if self.obs_mode == "rgb" else {"state": state, **images}
