"""Batched simulators with gymnasium's VectorEnv API (docs/ARCHITECTURE.md, "Environments").

env = make_vec_env("metaworld/pick-place-v3", num_envs=16, seed=0)
obs, info = env.reset()
obs, reward, terminated, truncated, info = env.step(actions)   # reward = binary success (RIPT's reward)
contexts = env.get_state()                                      # (16, S) float64, one context per env
env.reset(options={"init_state": contexts})                     # restart those episodes exactly
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ript_fast.envs.experts import expert_actions
from ript_fast.envs.metaworld_tasks import TASK_NAMES
from ript_fast.envs.metaworld_vec import MetaWorldVecEnv
from ript_fast.envs.registry import GROUPS, resolve_tasks


def make_vec_env(
    name: str | Sequence[str], num_envs: int, seed: int | None = None, obs_mode: str = "state", **options: Any
) -> MetaWorldVecEnv:
    """A vector env of `num_envs` envs.

    name: "metaworld/<task>" (any of the 50 v3 tasks, e.g. "metaworld/reach-v3"), a benchmark group
      ("metaworld/ML45", "metaworld/ML45-test", "metaworld/MT10", "metaworld/MT50", "metaworld/ML10",
      "metaworld/ML10-test"), or a list of those; env i runs task i % len(tasks).
    seed: env i samples its episodes from seed + i.
    obs_mode: "state" -> (N, 39) float64; "rgb" -> (N, H, W, 3) uint8; "state+rgb" -> {"state", "rgb"}.
    options: autoreset (True), terminate_on_success (True), goal_observable (True: the goal is in obs[36:39]
      as in MetaWorld's MT/goal-observable envs and QueST; False zeroes it as MetaWorld's ML benchmarks do),
      max_episode_steps (500), render_size ((128, 128)), camera ("corner2"), copy (False).
    """
    if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
        raise ValueError(f"num_envs: must be a positive int, got {num_envs!r}")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed: must be None or a non-negative int, got {seed!r}")
    tasks = resolve_tasks(name)
    return MetaWorldVecEnv([tasks[i % len(tasks)] for i in range(num_envs)], seed, obs_mode, **options)


__all__ = ["GROUPS", "TASK_NAMES", "MetaWorldVecEnv", "expert_actions", "make_vec_env"]
