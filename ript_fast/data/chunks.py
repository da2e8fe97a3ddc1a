"""Supervised samples: the observation at step t and the action chunk a[t : t + chunk], from demo files.

Every step of every episode is a sample. Past an episode's end the chunk repeats the last action (robomimic's
`pad_seq_length`, what QueST trains on) and the mask marks those steps. Everything is held in memory as
flat tensors and gathered by index: demo sets for this project are small (a few to a few hundred episodes),
and gathering a batch is then one indexing op instead of a Python loop over samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ript_fast.data.demo_file import DemoFileError, DemoSet, Episode, shape_difference
from ript_fast.policies.base import Observation, PolicySpec, SupervisedBatch


class ChunkDataset:
    """Flat (observation, action chunk) samples over one or more demo sets (one task each)."""

    def __init__(self, demo_sets: list[DemoSet], chunk_size: int, state_keys: list[str], image_keys: list[str]) -> None:
        if not demo_sets or not any(ds.episodes for ds in demo_sets):
            raise ValueError("no demonstrations to train on")
        _check_same_shapes(demo_sets, ["actions", *(f"obs/{k}" for k in dict.fromkeys([*state_keys, *image_keys]))])
        self.chunk_size = chunk_size
        self.task_names = [ds.task_name for ds in demo_sets]
        self.instructions = [ds.instruction for ds in demo_sets]
        episodes = [(task, ep) for task, ds in enumerate(demo_sets) for ep in ds.episodes]
        self.actions = torch.from_numpy(np.concatenate([ep.actions for _, ep in episodes])).float()
        states = [_state(ep, state_keys, ds.path) for ds in demo_sets for ep in ds.episodes]
        self.states = torch.from_numpy(np.concatenate(states)).float()
        self.images = {k: torch.from_numpy(np.concatenate([ep.obs[k] for _, ep in episodes])) for k in image_keys}
        lengths = torch.tensor([len(ep) for _, ep in episodes])
        starts = torch.cumsum(lengths, 0) - lengths
        self.episode_end = torch.repeat_interleave(starts + lengths, lengths)  # exclusive end of each sample's episode
        self.task_ids = torch.repeat_interleave(torch.tensor([t for t, _ in episodes]), lengths)
        self.num_episodes = len(episodes)

    def use_task_table(self, task_names: list[str], instructions: list[str]) -> None:
        """Re-expresses the samples' task ids as indices into a larger task table: fine-tuning a multi-task
        policy on a few demos of some of its tasks (QueST's stage 2) must feed it the ids it was trained with."""
        if list(task_names) == self.task_names:  # already this table (also keeps repeated task names apart)
            return
        missing = sorted(set(self.task_names) - set(task_names))
        if missing:
            raise ValueError(
                f"task_names: the policy knows tasks {task_names}; the demos' tasks {missing} must be among them"
            )
        index = torch.tensor([task_names.index(name) for name in self.task_names])
        self.task_ids = index[self.task_ids]
        self.task_names = list(task_names)
        self.instructions = list(instructions)

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def spec(self) -> PolicySpec:
        return PolicySpec(int(self.actions.shape[1]), int(self.states.shape[1]), self.task_names, self.instructions)

    def batch(self, index: torch.Tensor) -> SupervisedBatch:
        """The samples at `index` (B,) as one batch."""
        steps = index.unsqueeze(1) + torch.arange(self.chunk_size)
        last = (self.episode_end[index] - 1).unsqueeze(1)
        mask = steps <= last
        tasks = self.task_ids[index]
        obs = Observation(
            state=self.states[index],
            instructions=[self.instructions[t] for t in tasks.tolist()],
            task_ids=tasks,
            images={k: v[index] for k, v in self.images.items()},
        )
        return SupervisedBatch(obs, self.actions[torch.minimum(steps, last)], mask)

    def sample(self, batch_size: int, generator: torch.Generator) -> SupervisedBatch:
        """A batch drawn uniformly with replacement (training runs a number of steps, not epochs)."""
        return self.batch(torch.randint(len(self), (batch_size,), generator=generator))


def _check_same_shapes(demo_sets: list[DemoSet], keys: list[str]) -> None:
    """One SFT run trains one action space on one observation layout: every episode of every file must agree
    with the first on the action dim and the per-step shapes of the obs keys the policy reads (a file's own
    demos were checked when it was read; this compares files), naming both files."""
    first_set = next(ds for ds in demo_sets if ds.episodes)
    first = (first_set.where(0), first_set.episodes[0])
    for ds in demo_sets:
        for i, ep in enumerate(ds.episodes):
            difference = shape_difference(first, (ds.where(i), ep), keys)
            if difference is not None:
                raise DemoFileError(f"{difference}: the demo files of one run must agree")


def _state(episode: Episode, keys: list[str], path: Path) -> np.ndarray:
    """The state vector: the listed obs keys, flattened per step and concatenated in order."""
    parts = []
    for key in keys:
        if key not in episode.obs:
            raise DemoFileError(f"{path}: episodes lack obs/{key} (policy obs.state_keys asks for it)")
        parts.append(episode.obs[key].reshape(len(episode), -1).astype(np.float32))
    return np.concatenate(parts, axis=1)
