"""The interface every policy family gives the trainer.

A policy is queried once per action chunk for a whole batch of envs (`act`), and can later recompute, with
gradients, the log-probability of what it sampled (`score` / `sequence_logprob`). Both go through the same
distribution code so the log-prob stored at sampling time and the recomputed one agree.

Conventions the trainer relies on:
- Every tensor in `ChunkSample.cond` has a fixed per-row shape (no padding to the batch's longest
  instruction, say), so the conds of different queries can be `torch.cat`-ed along dim 0 and re-scored as
  one batch.
- `score` is deterministic only in eval mode (dropout off); the trainer keeps the policy in `eval()` during
  rollouts and PPO, as the paper's released code effectively does (`../shared/REFERENCE_CODE.md` sec. 1).
- `rl_param_groups()` are ready for `torch.optim.AdamW(groups)`: each group has `params`, `lr`,
  `weight_decay` and a `name` ("prior", "lora", "heads", ...) so a trainer config can override a group's lr
  by name. Everything not in a group is frozen (`requires_grad=False`) by `freeze_for_rl()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ript_fast.policies.logprob import per_element_logprob

ActionKind = Literal["categorical", "gaussian", "laplace"]
ACTION_LOW, ACTION_HIGH = -1.0, 1.0  # LIBERO's and MetaWorld's action boxes: executed actions are clipped to them


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
    """Distribution parameters recomputed with gradients for (cond, decision).

    `logits` already include the sampling temperature and any top-k restriction (entries outside the
    support are -inf), so `log_softmax(logits)` is exactly the distribution tokens were drawn from.
    """

    logits: torch.Tensor | None = None  # (n, L, V) for categorical policies
    loc: torch.Tensor | None = None  # (n, L, D) for gaussian / laplace policies
    log_scale: torch.Tensor | None = None  # (n, L, D)
    # A categorical policy whose logits are a linear head over hidden states may give those instead of logits:
    # logits = hidden @ head_weight.T / temperature, and the log-probs and the PPO loss take them to the fused
    # linear ops (`ops.linear_categorical_*`), so no (n, L, V) tensor is made.
    hidden: torch.Tensor | None = None  # (n, L, H)
    head_weight: torch.Tensor | None = None  # (V, H)
    temperature: float = 1.0

    @property
    def linear_head(self) -> bool:
        """Whether the logits are given as a linear head (hidden states and head weight) rather than a tensor."""
        return self.hidden is not None and self.head_weight is not None

    def token_logits(self) -> torch.Tensor:
        """(n, L, V) float32 logits, made from the linear head when given as one (for a caller that needs the
        tensor): the product in the inputs' dtype, as the fused ops and the policy's sampling compute it."""
        if self.linear_head:
            return (self.hidden @ self.head_weight.T).float() / self.temperature
        if self.logits is None:
            raise ValueError("a categorical policy's Scores must hold logits, or hidden states and a head weight")
        return self.logits


@dataclass
class PolicySpec:
    """What a policy is built for, read from the data (and stored in its checkpoint)."""

    action_dim: int
    state_dim: int
    task_names: list[str]
    instructions: list[str]  # one per task, same order


@dataclass
class SupervisedBatch:
    """What supervised training (SFT) feeds a policy: observations and the action chunks that followed."""

    obs: Observation
    actions: torch.Tensor  # (B, chunk_size, action_dim) env actions; past a demo's end the last one repeats
    action_mask: torch.Tensor  # (B, chunk_size) bool, False on that end padding


class Policy(nn.Module, ABC):
    """Base class of the policy families (QueST-style tokenized, OFT-style regression)."""

    family: str  # "quest" | "openvla_oft": the checkpoint's `family` field
    action_kind: ActionKind
    action_horizon: int  # env steps executed per query
    action_dim: int
    task_names: list[str]  # the task list `Observation.task_ids` index into
    chunk_size: int  # actions per supervised sample (>= action_horizon)
    samples_in_eval: bool  # evaluation draws from the policy (QueST's paper numbers: top-k) or takes the mode
    policy_config: Any  # the PolicyConfig it was built from (set by policies.factory.build_policy)
    spec: PolicySpec  # the data it was built for (set by build_policy)
    sft_stages: tuple[str, ...]  # supervised stages in their usual order
    task_conditioned: bool = True  # reads task ids (a task table); False: only the instruction text

    @abstractmethod
    def act(self, obs: Observation, sample: bool = True) -> ChunkSample:
        """One batched forward for all queried envs; `sample=False` takes the mode (evaluation)."""

    @abstractmethod
    def score(self, cond: dict[str, torch.Tensor], decision: torch.Tensor) -> Scores:
        """Distribution parameters of `decision` given `cond`, with gradients (teacher forcing for tokens)."""

    @abstractmethod
    def rl_param_groups(self) -> list[dict[str, Any]]:
        """The parameters RIPT trains, as optimizer param groups (see the module docstring)."""

    @abstractmethod
    def sft_parameters(self, stage: str) -> list[nn.Parameter]:
        """The parameters a supervised stage trains (everything else stays as it is)."""

    @abstractmethod
    def sft_loss(self, stage: str, batch: SupervisedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """The stage's scalar loss and the metrics to log."""

    @abstractmethod
    def fit_normalizers(self, states: torch.Tensor, actions: torch.Tensor) -> None:
        """Sets the state/action statistics from the training data (N, state_dim) and (N, action_dim)."""

    def sequence_logprob(self, cond: dict[str, torch.Tensor], decision: torch.Tensor) -> torch.Tensor:
        """(n, L) per-element log-probs of `decision`, through `ript_fast.ops`, with gradients."""
        return per_element_logprob(self.action_kind, self.score(cond, decision), decision)

    def is_base_weight(self, key: str) -> bool:
        """True for a frozen weight a family re-reads from elsewhere (a pretrained LM folder) rather than
        storing it in every checkpoint; none by default."""
        return False

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: every weight but the base weights."""
        return {k: v for k, v in self.state_dict().items() if not self.is_base_weight(k)}

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        """Loads a checkpoint's weights; any weight missing (but base weights) or unexpected is a KeyError."""
        result = self.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not self.is_base_weight(k)]
        if missing or result.unexpected_keys:
            raise KeyError(
                f"{self.family} checkpoint does not match the policy: missing {missing}, "
                f"unexpected {result.unexpected_keys}"
            )

    def freeze_for_rl(self) -> list[dict[str, Any]]:
        """Freezes every parameter outside `rl_param_groups()` and returns the groups."""
        groups = self.rl_param_groups()
        trainable = {id(p) for g in groups for p in g["params"]}
        for p in self.parameters():
            p.requires_grad_(id(p) in trainable)
        return groups

    def task_ids_for(self, names: Sequence[str]) -> torch.Tensor:
        """(n,) int64 indices of `names` in `task_names`; an unknown task is a ValueError naming it. A family that
        reads only the instruction text (`task_conditioned` False) takes any task: its ids are all 0."""
        if not self.task_conditioned:
            return torch.zeros(len(names), dtype=torch.int64)
        index = {name: i for i, name in enumerate(self.task_names)}
        missing = sorted({n for n in names if n not in index})
        if missing:
            raise ValueError(f"task(s) {missing} unknown to this policy (trained on {self.task_names})")
        return torch.tensor([index[n] for n in names], dtype=torch.int64)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
