"""Context datasets (Sec. 4.1): the initial states + goals RIPT rolls out from.

A context is what `env.reset(options={"init_state": ...})` needs to restart an episode exactly (the env's
`get_state()` vector, `states[0]` of a demo) plus the task and its language goal. Contexts come from the
SFT demos (the paper's default: no extra annotation) or are sampled fresh from the env with `reset(seed)`,
for held-out evaluation and for the context-dataset-size study (App. A.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ript_fast.data.demo_file import DemoFileError, DemoSet


@dataclass
class ContextBatch:
    """Contexts gathered for one rollout batch."""

    states: np.ndarray  # (n, S) float64, zero-padded to the longest when tasks' state sizes differ
    task_names: list[str]
    instructions: list[str]
    env_names: list[str]


class ContextDataset:
    """A list of (initial state, task, instruction, env name) the trainer samples from."""

    def __init__(
        self,
        states: Sequence[np.ndarray],
        task_names: Sequence[str],
        instructions: Sequence[str],
        env_names: Sequence[str],
    ) -> None:
        if not (len(states) == len(task_names) == len(instructions) == len(env_names)):
            raise ValueError("states, task_names, instructions and env_names must have the same length")
        if not states:
            raise ValueError("a context dataset needs at least one context")
        self.states = [np.asarray(s, dtype=np.float64).reshape(-1) for s in states]
        self.task_names = list(task_names)
        self.instructions = list(instructions)
        self.env_names = list(env_names)

    def __len__(self) -> int:
        return len(self.states)

    @classmethod
    def from_demos(cls, demo_sets: Sequence[DemoSet], max_per_task: int | None = None) -> ContextDataset:
        """`states[0]` of every episode (of the first `max_per_task` per file)."""
        states, tasks, texts, envs = [], [], [], []
        for ds in demo_sets:
            for i, ep in enumerate(ds.episodes[:max_per_task]):
                if ep.states.shape[1] == 0:
                    raise DemoFileError(f"{ds.path}: data/demo_{i}/states is empty: the file has no initial states")
                states.append(ep.states[0])
                tasks.append(ds.task_name)
                texts.append(ds.instruction)
                envs.append(ds.env_name)
        return cls(states, tasks, texts, envs)

    @classmethod
    def from_env(cls, env_name: str, num_contexts: int, seed: int, **env_options: object) -> ContextDataset:
        """Fresh contexts: `num_contexts` envs reset with seeds seed, seed+1, ... and their `get_state()`."""
        from ript_fast.envs import make_vec_env

        env = make_vec_env(env_name, num_envs=num_contexts, seed=seed, **env_options)
        try:
            env.reset(seed=seed)
            states = np.asarray(env.get_state())
            return cls(list(states), list(env.task_names), list(env.instructions), [env_name] * num_contexts)
        finally:
            env.close()

    def gather(self, index: Sequence[int]) -> ContextBatch:
        rows = [self.states[i] for i in index]
        width = max(r.shape[0] for r in rows)
        states = np.zeros((len(rows), width))
        for j, r in enumerate(rows):
            states[j, : r.shape[0]] = r
        return ContextBatch(
            states,
            [self.task_names[i] for i in index],
            [self.instructions[i] for i in index],
            [self.env_names[i] for i in index],
        )

    def sample(self, n: int, generator: torch.Generator) -> ContextBatch:
        """n contexts drawn uniformly with replacement."""
        return self.gather(torch.randint(len(self), (n,), generator=generator).tolist())
