"""Dynamic rollout sampling (paper Sec. 4.2, Algorithm 1 lines 5-15).

Contexts are drawn from the context dataset, K rollouts are run for each and rewarded (binary success by
default: the trainer's `reward_fn`), and a group whose K rewards are all equal (all-zero advantage: no
gradient signal) is dropped and replaced by a fresh context, until B rollouts with non-zero advantage are
collected. This keeps the PPO batch uniform: every minibatch holds the
same number of informative rollouts, which the paper found important for stable optimisation.

Unlike the released code, the number of collection rounds is capped (`max_rounds`): once every context is
solved (or hopeless) the loop would otherwise never end. Hitting the cap is reported, and the iteration goes
on with the informative groups found so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ript_fast import ops
from ript_fast.train.rollout import RolloutBatch, RolloutTiming


@dataclass
class SamplingStats:
    """What one iteration's collection did (logged as metrics)."""

    rounds: int = 0
    groups_tried: int = 0
    groups_kept: int = 0
    groups_rejected: int = 0
    rollouts_run: int = 0
    successes: int = 0  # over every rollout run, rejected groups included
    reward_sum: float = 0.0  # of the rewards of every rollout run (the success count under the default reward)
    cap_hit: bool = False

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.rollouts_run, 1)


class GroupSampler(Protocol):
    def draw(self, count: int) -> np.ndarray:
        """Context indices for `count` groups."""
        ...


# Runs K rollouts for each of the given context indices; returns them group-major (K consecutive per context).
CollectGroups = Callable[[np.ndarray], tuple[RolloutBatch, RolloutTiming]]


def collect_informative_groups(
    collect: CollectGroups,
    sampler: GroupSampler,
    contexts_per_round: int,
    group_size: int,
    target_rollouts: int,
    dynamic: bool,
    max_rounds: int,
) -> tuple[RolloutBatch | None, SamplingStats, RolloutTiming]:
    """Collects `target_rollouts` rollouts in groups of `group_size` (Algorithm 1, lines 5-15).

    With `dynamic=False` (the paper's ablation, Table 3) every group is kept, informative or not.
    Returns None for the batch when no group was kept before the round cap.
    """
    if target_rollouts % group_size:
        raise ValueError(f"target_rollouts ({target_rollouts}) must be a multiple of group_size ({group_size})")
    groups_needed = target_rollouts // group_size
    stats, timing = SamplingStats(), RolloutTiming()
    kept: list[RolloutBatch] = []
    while stats.groups_kept < groups_needed:
        if stats.rounds == max_rounds:
            stats.cap_hit = True
            break
        batch, round_timing = collect(sampler.draw(contexts_per_round))
        timing.add(round_timing)
        stats.rounds += 1
        stats.rollouts_run += len(batch)
        stats.successes += int(batch.success.sum().item())
        stats.reward_sum += float(batch.rewards.sum().item())
        keep = _groups_to_keep(batch.rewards.view(-1, group_size), dynamic)
        stats.groups_tried += len(keep)
        stats.groups_rejected += int((~keep).sum().item())
        take = torch.nonzero(keep).flatten()[: groups_needed - stats.groups_kept]
        stats.groups_kept += len(take)
        if len(take):
            rows = (take[:, None] * group_size + torch.arange(group_size)).flatten()
            kept.append(batch.select(rows))
    return (RolloutBatch.cat(kept) if kept else None), stats, timing


def _groups_to_keep(rewards: torch.Tensor, dynamic: bool) -> torch.Tensor:
    if not dynamic:
        return torch.ones(rewards.shape[0], dtype=torch.bool)
    return ops.informative_groups(rewards)
