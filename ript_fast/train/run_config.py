"""The config of a `ript-fast train` run: task, stage-2 policy (given, or made by demos + SFT), RIPT settings.

The defaults follow the paper (K=16 rollouts per context, PPO clip 0.2, dynamic sampling on) where they
carry over to a small CPU policy; `configs/default.yaml` is the tuned CPU preset. Each key is documented
beside its field, and the whole resolved config is written to the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ript_fast.config import from_dict
from ript_fast.policies.config import PolicyConfig
from ript_fast.train.sft import SftConfig


@dataclass
class DemoConfig:
    """Demonstrations for the SFT stage run when no `init` checkpoint is given."""

    files: list[str] = field(default_factory=list)  # existing HDF5 demo files; empty: collect them
    num_demos: int = 5  # per task
    noise_std: float = 0.2  # Gaussian action noise of the scripted expert (QueST's MetaWorld data)
    seed: int = 0


@dataclass
class ContextConfig:
    """The context dataset D_c (Sec. 4.1) and the held-out evaluation contexts."""

    source: Literal["demos", "env"] = "env"  # initial states of the SFT demos, or fresh env resets (App. A.3)
    size: int = 64  # fresh contexts per task when source=env (App. A.3's context dataset size)
    seed: int = 1_000  # fresh contexts come from env resets seeded seed, seed+1, ...
    noise_std: float = 0.0  # Gaussian noise (m) on object initial positions of every rollout (App. A.4)
    eval_size: int = 50  # held-out contexts per task
    eval_seed: int = 100_000  # far from the training seeds: held-out contexts are never trained on


@dataclass
class RiptConfig:
    """Algorithm 1 and its PPO update (Eq. 5-7)."""

    iterations: int = 15  # M: optimisation steps (collect, then update)
    group_size: int = 16  # K: rollouts per context
    batch_rollouts: int = 64  # B: informative rollouts per iteration (a multiple of K)
    contexts_per_round: int = 8  # contexts rolled out together (the engine steps contexts_per_round * K envs)
    max_rounds: int = 12  # cap on collection rounds per iteration (the released code has none)
    dynamic_sampling: bool = True  # drop all-equal groups and resample (Sec. 4.2); false = Table 3 ablation
    ppo_epochs: int = 4  # N
    minibatch_rollouts: int = 16
    clip_eps: float = 0.2
    clip_eps_high: float | None = None  # None: same as clip_eps
    ratio_level: Literal["sequence", "token"] = "token"  # Eq. 6 per rollout, or the released code's per token
    # token level: average over the minibatch's tokens (released code) or each rollout's tokens, then rollouts
    token_average: Literal["tokens", "rollouts"] = "tokens"
    lr: float | None = None  # None: the policy's own RL learning rates (per parameter group)
    group_lr: dict[str, float] = field(default_factory=dict)  # override a parameter group's lr by name
    weight_decay: float | None = None
    lr_schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last iteration
    max_grad_norm: float = 1.0


@dataclass
class EvalConfig:
    every: int = 1  # held-out evaluation every E iterations (and before the first)
    sample: bool | None = None  # None: the policy's own choice (QueST samples, regression takes the mean)


@dataclass
class TrainConfig:
    env: str | list[str] = "metaworld/button-press-v3"  # the task(s): metaworld/<task>, a list, metaworld/ML45
    seed: int = 0
    device: str = "cpu"
    # Small policies run fastest on one torch thread: torch's OpenMP workers spin between calls and fight the
    # engine's threads for the same cores during rollouts (measured: 5 ms vs 233 ms per query on 2 busy cores).
    torch_threads: int = 1  # 0 keeps torch's default (all cores)
    engine_threads: int = 0  # the engine's C++ pool; 0 keeps its default (all cores)
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
    keep_checkpoints: int = 3  # iteration checkpoints kept (the best-eval and final policies are kept too)
    progress: bool = True

    def __post_init__(self) -> None:
        from_dict(PolicyConfig, self.policy, "policy")  # key names and types, before any demo or SFT work
        r = self.ript
        if r.group_size < 2:
            raise ValueError(f"ript.group_size (K) must be >= 2 for a leave-one-out baseline, got {r.group_size}")
        if r.batch_rollouts < r.group_size or r.batch_rollouts % r.group_size:
            raise ValueError(
                f"ript.batch_rollouts (B={r.batch_rollouts}) must be a positive multiple of "
                f"ript.group_size (K={r.group_size})"
            )
        for name in ("iterations", "contexts_per_round", "max_rounds", "ppo_epochs", "minibatch_rollouts"):
            if getattr(r, name) < 1:
                raise ValueError(f"ript.{name} must be >= 1, got {getattr(r, name)}")
        if r.clip_eps <= 0 or (r.clip_eps_high is not None and r.clip_eps_high <= 0):
            raise ValueError("ript.clip_eps and ript.clip_eps_high must be > 0")
        if self.eval.every < 1:
            raise ValueError(f"eval.every must be >= 1, got {self.eval.every}")
        if self.contexts.size < 1 or self.contexts.eval_size < 1:
            raise ValueError("contexts.size and contexts.eval_size must be >= 1")
        if self.contexts.noise_std < 0:
            raise ValueError(f"contexts.noise_std must be >= 0, got {self.contexts.noise_std}")

    @property
    def env_names(self) -> list[str]:
        return [self.env] if isinstance(self.env, str) else list(self.env)
