"""MetaWorld's scripted expert policies on batched observations (for demo collection and tests)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from metaworld.policies import ENV_POLICY_MAP


@functools.cache
def expert(task: str) -> Any:
    """MetaWorld's scripted policy for `task` (stateless: it maps one observation to one action)."""
    if task not in ENV_POLICY_MAP:
        raise ValueError(f"task: MetaWorld has no scripted policy for {task!r}")
    return ENV_POLICY_MAP[task]()


def expert_actions(obs: np.ndarray, task_names: Sequence[str]) -> np.ndarray:
    """(N, 39) observations -> (N, 4) float32 actions from each env's task expert (looped in Python).

    The experts read the goal from obs[36:39], so the env must be goal-observable (the default).
    """
    obs = np.asarray(obs, dtype=np.float64)
    if obs.ndim != 2 or obs.shape[0] != len(task_names):
        raise ValueError(f"obs: expected shape ({len(task_names)}, 39), got {obs.shape}")
    actions = np.empty((obs.shape[0], 4), dtype=np.float32)
    with warnings.catch_warnings():
        # The experts' raw outputs often exceed [-1, 1]; MetaWorld warns on every such step, and the env clips.
        warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high", category=UserWarning)
        for i, task in enumerate(task_names):
            actions[i] = expert(task).get_action(obs[i])
    return actions
