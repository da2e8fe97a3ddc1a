"""The interface every policy family gives the trainer.

A policy is queried once per action chunk for a whole batch of envs (`act`), and can later recompute, with
gradients, the log-probability of what it sampled (`score` / `sequence_logprob`). Both go through the same
distribution code so the log-prob stored at sampling time and the recomputed one agree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

ActionKind = Literal["categorical", "gaussian", "laplace"]


@dataclass
class Observation:
    """What a policy sees at one query, batched over the n queried envs."""

    state: torch.Tensor | None  # (n, obs_dim) float32: proprio / MetaWorld state vector
    instructions: list[str]  # (n,) language goals
    task_ids: torch.Tensor  # (n,) int64 index of each env's task in the policy's task list
    images: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (n, H, W, 3) uint8

    def __len__(self) -> int:
        return int(self.task_ids.shape[0])


@dataclass
class ChunkSample:
    """One batched query's output: what to execute and what is needed to re-score it."""

    actions: torch.Tensor  # (n, horizon, action_dim) float32, executed in the env
    decision: torch.Tensor  # what was sampled: tokens (n, L) int64, or continuous (n, L, D) float32
    logprob: torch.Tensor  # (n, L) per-element log-prob under the sampling policy
    cond: dict[str, torch.Tensor]  # (n, ...) each: the conditioning `score` needs (e.g. cached context embeddings)


@dataclass
class Scores:
    """Distribution parameters recomputed with gradients for (cond, decision)."""

    logits: torch.Tensor | None = None  # (n, L, V) for categorical policies
    loc: torch.Tensor | None = None  # (n, L, D) for gaussian / laplace policies
    log_scale: torch.Tensor | None = None  # (n, L, D)


class Policy(nn.Module, ABC):
    """Base class of the policy families (QueST-style tokenized, OFT-style regression)."""

    action_kind: ActionKind
    action_horizon: int  # env steps executed per query
    action_dim: int

    @abstractmethod
    def act(self, obs: Observation, sample: bool = True) -> ChunkSample:
        """One batched forward for all queried envs; `sample=False` takes the mode (evaluation)."""

    @abstractmethod
    def score(self, cond: dict[str, torch.Tensor], decision: torch.Tensor) -> Scores:
        """Distribution parameters of `decision` given `cond`, with gradients (teacher forcing for tokens)."""
