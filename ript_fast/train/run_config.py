"""The config of a `ript-fast train` run: task, stage-2 policy (given, or made by demos + SFT), RIPT settings.

The defaults follow the paper (K=16 rollouts per context, PPO clip 0.2, dynamic sampling on) where they
carry over to a small CPU policy; `configs/default.yaml` is the tuned CPU preset. Each key is documented
beside its field, and the whole resolved config is written to the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ript_fast.config import RANGE, SEED, Range, from_dict, ranged
from ript_fast.policies.config import PolicyConfig
from ript_fast.train.run_logger import LoggingConfig
from ript_fast.train.sft import SftConfig


@dataclass
class DemoConfig:
    """Demonstrations for the SFT stage run when no `init` checkpoint is given."""

    files: list[str] = field(default_factory=list)  # existing HDF5 demo files; empty: collect them
    num_demos: int = ranged(5, ge=1, le=100_000)  # per task
    noise_std: float = ranged(0.2, ge=0)  # Gaussian action noise of the scripted expert (QueST's MetaWorld data)
    seed: int = ranged(0, **SEED)


@dataclass
class ContextConfig:
    """The context dataset D_c (Sec. 4.1) and the held-out evaluation contexts."""

    source: Literal["demos", "env"] = "env"  # initial states of the SFT demos, or fresh env resets (App. A.3)
    size: int = ranged(64, ge=1, le=1_000_000)  # fresh contexts per task when source=env (App. A.3)
    seed: int = ranged(1_000, **SEED)  # fresh contexts come from env resets seeded seed, seed+1, ...
    # Gaussian noise (m) on object initial positions of every rollout (App. A.4)
    noise_std: float = ranged(0.0, ge=0, le=1)
    eval_size: int = ranged(50, ge=1, le=100_000)  # held-out contexts per task
    eval_seed: int = ranged(100_000, **SEED)  # far from the training seeds: held-out contexts are never trained on


@dataclass
class RiptConfig:
    """Algorithm 1 and its PPO update (Eq. 5-7)."""

    iterations: int = ranged(15, ge=1)  # M: optimisation steps (collect, then update)
    group_size: int = ranged(16, ge=2, why="(K: a leave-one-out baseline needs two rollouts per context)")
    batch_rollouts: int = ranged(64, ge=2)  # B: informative rollouts per iteration (a multiple of K)
    # contexts rolled out together (the engine steps contexts_per_round * K envs)
    contexts_per_round: int = ranged(8, ge=1)
    max_rounds: int = ranged(12, ge=1)  # cap on collection rounds per iteration (the released code has none)
    dynamic_sampling: bool = True  # drop all-equal groups and resample (Sec. 4.2); false = Table 3 ablation
    ppo_epochs: int = ranged(4, ge=1)  # N
    minibatch_rollouts: int = ranged(16, ge=1)
    clip_eps: float = ranged(0.2, gt=0, lt=1)  # a ratio clipped to [1 - eps, 1 + eps]: eps >= 1 clips nothing below
    clip_eps_high: float | None = ranged(None, gt=0, le=10)  # None: same as clip_eps (DAPO's clip-higher: 0.28)
    ratio_level: Literal["sequence", "token"] = "token"  # Eq. 6 per rollout, or the released code's per token
    # token level: average over the minibatch's tokens (released code) or each rollout's tokens, then rollouts
    token_average: Literal["tokens", "rollouts"] = "tokens"
    lr: float | None = ranged(None, gt=0, le=1)  # None: the policy's own RL learning rates (per parameter group)
    group_lr: dict[str, float] = field(default_factory=dict, metadata={RANGE: Range(gt=0, le=1)})  # lr by group
    weight_decay: float | None = ranged(None, ge=0)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = ranged(0.1, ge=0, le=1)  # cosine decays to lr * min_lr_ratio at the last iteration
    max_grad_norm: float = ranged(1.0, gt=0)
    # rollouts: the policy acts for one half of the batch while the engine steps the other (both release the GIL);
    # the same rollouts as those halves taking turns, other samples than the one-batch loop (its query batches)
    overlap_acting: bool = False


@dataclass
class EvalConfig:
    every: int = ranged(1, ge=1)  # held-out evaluation every E iterations (and before the first)
    sample: bool | None = None  # None: the policy's own choice (QueST samples, regression takes the mean)


@dataclass
class TrainConfig:
    env: str | list[str] = "metaworld/button-press-v3"  # the task(s): metaworld/<task>, a list, metaworld/ML45
    seed: int = ranged(0, **SEED)
    device: str = "cpu"  # checked when the run starts: cpu, cuda, cuda:N (a device this machine has)
    # Small policies run fastest on one torch thread: torch's OpenMP workers spin between calls and fight the
    # engine's threads for the same cores during rollouts (measured: 5 ms vs 233 ms per query on 2 busy cores).
    torch_threads: int = ranged(1, ge=0, le=4096)  # 0 keeps torch's default (all cores)
    engine_threads: int = ranged(0, ge=0, le=4096)  # the engine's C++ pool; 0 keeps its default (all cores)
    init: str | None = None  # stage-2 policy checkpoint; None: collect demos and run SFT first (cached)
    # Changes to the stage-2 policy's config for RIPT that keep its weights' shapes, e.g. which parts train
    # (`policy.quest.rl_trainable=[prior,obs_encoder]`), its RL learning rate, or top-k sampling.
    policy: dict[str, Any] = field(default_factory=dict)
    out_dir: str = "runs/ript"
    demos: DemoConfig = field(default_factory=DemoConfig)
    sft: SftConfig = field(default_factory=SftConfig)
    contexts: ContextConfig = field(default_factory=ContextConfig)
    ript: RiptConfig = field(default_factory=RiptConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # iteration checkpoints kept (the best-eval and final policies are kept too)
    keep_checkpoints: int = ranged(3, ge=1)
    progress: bool = True
    logging: LoggingConfig = field(default_factory=LoggingConfig)  # trackers: TensorBoard (default), W&B

    def __post_init__(self) -> None:
        """Checks between keys (single values are range-checked by `from_dict` as the config loads)."""
        from_dict(PolicyConfig, self.policy, "policy")  # key names and types, before any demo or SFT work
        r = self.ript
        if r.batch_rollouts % r.group_size:
            raise ValueError(
                f"ript.batch_rollouts (B={r.batch_rollouts}) must be a positive multiple of "
                f"ript.group_size (K={r.group_size})"
            )

    @property
    def env_names(self) -> list[str]:
        return [self.env] if isinstance(self.env, str) else list(self.env)
