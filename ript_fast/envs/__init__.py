"""Batched simulators with gymnasium's VectorEnv API (docs/ARCHITECTURE.md, "Environments").

env = make_vec_env("metaworld/pick-place-v3", num_envs=16, seed=0)
obs, info = env.reset()
obs, reward, terminated, truncated, info = env.step(actions)   # reward = binary success (RIPT's reward)
contexts = env.get_state()                                      # (16, S) float64, one context per env
env.reset(options={"init_state": contexts})                     # restart those episodes exactly

env = make_vec_env("metaworld/reach-v3", 16, seed=0, obs_mode="state+rgb", render_every_step=False)
obs, *_ = env.step(actions)                                     # {"state"}: nothing rendered
images = env.render_observations([0, 3])                        # {"rgb": (2, 128, 128, 3)}: just those frames
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ript_fast.envs.batch_vec_env import BatchVecEnv
from ript_fast.envs.metaworld.experts import expert_actions
from ript_fast.envs.metaworld.tasks import TASK_NAMES
from ript_fast.envs.metaworld.vec_env import MetaWorldVecEnv
from ript_fast.envs.registry import GROUPS, is_libero, resolve_libero, resolve_tasks


def make_vec_env(
    name: str | Sequence[str], num_envs: int, seed: int | None = None, obs_mode: str = "state", **options: Any
) -> BatchVecEnv:
    """A vector env of `num_envs` envs.

    name: "metaworld/<task>" (any of the 50 v3 tasks, e.g. "metaworld/reach-v3"), a benchmark group
      ("metaworld/ML45", "metaworld/ML45-test", "metaworld/MT10", "metaworld/MT50", "metaworld/ML10",
      "metaworld/ML10-test"), or a list of those; env i runs task i % len(tasks).
      Or "libero/<suite>/<task>" (suite: spatial, object, goal, 10 or long, 90; task: a LIBERO task name or its
      index in the suite), a whole suite "libero/<suite>", or a list of those (needs the LIBERO extra).
    seed: env i samples its episodes from seed + i.
    obs_mode: "state" -> MetaWorld (N, 39) / LIBERO (N, 16) float64; "rgb" -> MetaWorld (N, H, W, 3) uint8 /
      LIBERO {"agentview_rgb", "eye_in_hand_rgb"}; "state+rgb" -> a dict of both (see libero/vec_env.py).
    options: autoreset (True), terminate_on_success (True), max_episode_steps (MetaWorld 500; LIBERO the
      suite's: spatial 220, object 280, goal 300, 10 520, 90 400), render_size ((128, 128): (height, width)
      positive ints), copy (False), render_every_step (True: reset/step observations carry every env's images;
      False: they carry the state part of "state+rgb" and env.render_observations(ids) renders the images of
      the envs asked for, the same pixels); MetaWorld only: goal_observable (True: the goal is in obs[36:39]
      as in MetaWorld's MT/goal-observable envs and QueST; False zeroes it as MetaWorld's ML benchmarks do),
      camera ("corner2"; any camera of the Sawyer model).
    """
    if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
        raise ValueError(f"num_envs: must be a positive int, got {num_envs!r}")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed: must be None or a non-negative int, got {seed!r}")
    if is_libero(name):
        from ript_fast.envs.libero.vec_env import LiberoVecEnv

        libero_tasks = resolve_libero(name)
        return LiberoVecEnv([libero_tasks[i % len(libero_tasks)] for i in range(num_envs)], seed, obs_mode, **options)
    tasks = resolve_tasks(name)
    return MetaWorldVecEnv([tasks[i % len(tasks)] for i in range(num_envs)], seed, obs_mode, **options)


__all__ = ["GROUPS", "TASK_NAMES", "BatchVecEnv", "MetaWorldVecEnv", "expert_actions", "make_vec_env"]
