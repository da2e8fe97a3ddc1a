"""RIPT-VLA stage 3, paper Algorithm 1: `RiptTrainer`, handed a policy, a batched env and its contexts.

    for iteration = 1 .. M:
        collect   draw contexts, roll each out K times in one engine batch, reward the rollouts (binary
                  success by default), drop the groups whose K rewards are all equal and draw again, until
                  B rollouts carry a learning signal                               (lines 5-15, Sec. 4.2)
        advantage leave-one-out within each group: A_k = R_k - mean of the other K - 1        (Eq. 5)
        update    N epochs of minibatch PPO on the clipped objective                (lines 16-18, Eq. 6-7)
        evaluate  one episode per held-out context, every `eval_every` iterations

From Python (the README's example, run by python_tests/test_library_api.py):

    trainer = RiptTrainer(policy, env, contexts, RiptConfig(...), reward_fn=my_reward)
    history = trainer.train()

`ript_run.py` is `ript-fast train`: it builds these objects from a `TrainConfig` and plugs in, as callbacks,
what a run folder holds (metrics, plots, checkpoints, best and final policy).

Where this departs from the released code (`shared/REFERENCE_CODE.md`), on purpose:
- old log-probs are the ones stored at sampling time (the released QueST path recomputes them in a second
  pass); they are equal because the policy is in eval mode (no dropout) both when sampling and when scoring,
  which is also what the released code effectively does;
- collection rounds are capped (`max_rounds`), and hitting the cap is logged (`sampling_cap_hit`);
- a finished env is never stepped again nor queried again (the released code keeps stepping it);
- per-token losses may be averaged per rollout first (`token_average: rollouts`, the CPU preset's choice): the
  released code's token mean lets a long failed episode outweigh a short success.
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ript_fast import ops
from ript_fast.config import ConfigError
from ript_fast.data.contexts import ContextDataset
from ript_fast.policies.base import Policy
from ript_fast.train.context_sampling import TaskGroupSampler
from ript_fast.train.distributed import Dist, rank_share, wrap_ddp
from ript_fast.train.dynamic_sampling import collect_informative_groups
from ript_fast.train.evaluate import count_by_task
from ript_fast.train.interrupts import safe_section
from ript_fast.train.iteration_metrics import iteration_record, progress_postfix
from ript_fast.train.ppo import PPOObjective, PPOSettings, minibatch_schedule, ppo_update
from ript_fast.train.rl_optimizer import rl_optimizer
from ript_fast.train.rollout import NonFiniteActionError, RolloutBatch, RolloutTiming, rollout_contexts
from ript_fast.train.run_config import RiptConfig

# Rewards of a batch of finished rollouts, one per rollout: what RLOO and PPO optimise.
RewardFn = Callable[[RolloutBatch], torch.Tensor]


def success_reward(batch: RolloutBatch) -> torch.Tensor:
    """The paper's sparse reward: 1 for an episode that reached success, else 0."""
    return batch.success.float()


class TrainerCallback:
    """Hooks into `RiptTrainer.train` (all optional; under DDP every rank calls them, in the same order)."""

    def on_train_begin(self, trainer: RiptTrainer) -> None:
        """Before the first iteration of this call (after a restore, `trainer.iteration` is the resumed one)."""

    def on_evaluate(self, trainer: RiptTrainer, result: dict[str, Any]) -> None:
        """After each held-out evaluation (`eval_success`, `eval_episodes`, per task when several)."""

    def on_log(self, trainer: RiptTrainer, record: dict[str, Any]) -> None:
        """Each iteration's record, and iteration 0's (the evaluation before training)."""

    def on_iteration_end(self, trainer: RiptTrainer) -> None:
        """After an iteration's record: where a checkpoint belongs (Ctrl-C waits for it)."""

    def on_train_end(self, trainer: RiptTrainer) -> None:
        """After the last iteration."""


class RiptTrainer:
    """Algorithm 1 over a batched env whose envs are the groups' slots: env i serves group i // K.

    Args:
        policy: a ript-fast `Policy`; its `freeze_for_rl` parameter groups are what trains.
        env: a vector env of `contexts_per_round x group_size` envs made with `autoreset=False` and the policy's
            observation options (`make_vec_env(..., **policy.policy_config.obs.env_options())`); the K envs of a
            group run one task, and each group draws its contexts from that task's.
        contexts: the context dataset D_c (`ContextDataset.from_demos` / `from_env`).
        config: the algorithm's settings (`RiptConfig`: M, K, B, N, clipping, learning rates).
        eval_env, eval_contexts: held-out evaluation, one episode per context (under DDP, this rank's share:
            contexts rank, rank + world, ...; eval_env has one env per context of the share).
        reward_fn: rewards of a batch of finished rollouts (`RolloutBatch`: success, episode_steps,
            context_ids), one per rollout; default `success_reward`. Success rates are reported either way.
        callbacks: `TrainerCallback`s (logging, checkpoints).
        seed: seeds the context draws, the sampling and the minibatch shuffles (a run is reproducible).
        eval_every, eval_sample: evaluation period, and whether it samples (None: `policy.samples_in_eval`).
        context_noise_std: Gaussian noise (m) on the contexts' object positions in training rollouts.
    """

    def __init__(
        self,
        policy: Policy,
        env: Any,
        contexts: ContextDataset,
        config: RiptConfig,
        *,
        eval_env: Any = None,
        eval_contexts: ContextDataset | None = None,
        reward_fn: RewardFn = success_reward,
        callbacks: Sequence[TrainerCallback] = (),
        seed: int = 0,
        eval_every: int = 1,
        eval_sample: bool | None = None,
        context_noise_std: float = 0.0,
        progress: bool = False,
        dist: Dist | None = None,
    ) -> None:
        self.policy, self.env, self.contexts, self.config = policy, env, contexts, config
        self.dist = dist or Dist()
        self.eval_env, self.eval_contexts = eval_env, eval_contexts
        self.reward_fn, self.callbacks = reward_fn, list(callbacks)
        self.seed, self.eval_every, self.eval_sample = seed, eval_every, eval_sample
        self.context_noise_std, self.progress = context_noise_std, progress
        rank, world = self.dist.rank, self.dist.world
        self.sampler = TaskGroupSampler(contexts.task_names, _group_tasks(env, config), seed=seed * 7919 + rank * 7)
        self.eval_rows = rank_share(len(eval_contexts) if eval_contexts is not None else 0, self.dist)
        _check_eval_env(eval_env, len(self.eval_rows), config.overlap_acting)
        self.policy.eval()  # dropout off while sampling and scoring: stored old log-probs stay exact
        self.optimizer, self.scheduler = rl_optimizer(self.policy.freeze_for_rl(), config)
        self.settings = PPOSettings(
            epochs=config.ppo_epochs,
            minibatch_rollouts=config.minibatch_rollouts // world,
            clip_eps=config.clip_eps,
            clip_eps_high=config.clip_eps_high,
            ratio_level=config.ratio_level,
            token_average=config.token_average,
            max_grad_norm=config.max_grad_norm,
        )
        self.objective = wrap_ddp(PPOObjective(policy, self.settings), self.dist, policy.device)
        self.iteration = 0
        self.total_env_steps = 0
        self._told_no_signal = False

    # ---- the loop ---------------------------------------------------------------------------------------------
    def train(self) -> list[dict[str, Any]]:
        """Runs the iterations left (all M, or those after a restored state) and returns their records."""
        from tqdm import tqdm

        show = self.progress and self.dist.is_main
        bar = tqdm(total=self.config.iterations, initial=self.iteration, desc="ript", disable=not show)
        records = []
        try:
            self._call("on_train_begin")
            if self.iteration == 0 and self.eval_contexts is not None:
                start = {"iteration": 0, "train_success": None, "env_steps": 0, "total_env_steps": 0}
                records.append({**start, **self.evaluate()})
                self._call("on_log", records[-1])
            while self.iteration < self.config.iterations:
                self.iteration += 1
                records.append(self.step())
                self._tell_if_no_signal(records[-1])
                with safe_section():  # Ctrl-C waits for the iteration's record and checkpoint to be written
                    self._call("on_log", records[-1])
                    self._call("on_iteration_end")
                bar.update(1)
                bar.set_postfix_str(progress_postfix(records[-1]))
            with safe_section():
                self._call("on_train_end")
        finally:
            bar.close()
        return records

    def step(self) -> dict[str, Any]:
        """Iteration `self.iteration` of Algorithm 1: collect, advantages, update (and evaluate when due)."""
        start = time.perf_counter()
        seed = _derive_seed(self.seed, self.iteration, salt=2 + self.dist.rank)
        torch.manual_seed(seed)
        c, k = self.config, self.config.group_size
        rounds = iter(range(c.max_rounds))
        try:  # lines 5-15: K rollouts per context, uninformative groups rejected, until B rollouts are kept
            batch, stats, timing = collect_informative_groups(
                lambda rows: self._rewarded(*self._collect(rows, seed + next(rounds))),
                self.sampler,
                c.contexts_per_round,
                k,
                c.batch_rollouts // self.dist.world,
                c.dynamic_sampling,
                c.max_rounds,
            )
        except NonFiniteActionError as err:
            raise NonFiniteActionError(f"iteration {self.iteration}, rank {self.dist.rank}: {err}") from None
        batch = self._same_size_on_every_rank(batch)
        update: dict[str, float] = {}
        informative = 0  # groups whose K rewards differ (all-equal ones have zero advantages: no gradient)
        t0 = time.perf_counter()
        if batch is not None:
            advantages = ops.rloo_advantage(batch.rewards.view(-1, k)).flatten()  # Eq. 5
            informative = int(ops.informative_groups(batch.rewards.view(-1, k)).sum())
            # The shuffle is the same on every rank (same seed, same local size): minibatch j of the job is
            # the union of every rank's minibatch j.
            generator = torch.Generator().manual_seed(_derive_seed(self.seed, self.iteration, salt=1))
            schedule = minibatch_schedule(len(batch), self.settings.minibatch_rollouts, c.ppo_epochs, generator)
            update = ppo_update(self.objective, self.optimizer, batch, advantages, schedule, self.settings, self.dist)
        update_seconds = time.perf_counter() - t0
        with warnings.catch_warnings():  # an iteration without an informative group made no optimizer step
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            self.scheduler.step()
        kept = len(batch) if batch is not None else 0
        record = iteration_record(stats, timing, update, update_seconds, kept, informative, k, self.dist)
        self.total_env_steps += record["env_steps"]
        record = {"iteration": self.iteration, **record, "total_env_steps": self.total_env_steps}
        record["lr"] = self.scheduler.get_last_lr()[0]
        if self.eval_contexts is not None and (self.iteration % self.eval_every == 0 or self.iteration == c.iterations):
            record.update(self.evaluate())
        record["seconds"] = time.perf_counter() - start
        return record

    def _tell_if_no_signal(self, record: dict[str, Any]) -> None:
        """Warns (once per trainer) when an iteration had no group with differing rewards, so the policy did not
        change: a run from a policy that never succeeds otherwise spends its whole budget showing a flat curve."""
        if record["informative_groups"] or self._told_no_signal or not self.dist.is_main:
            return
        self._told_no_signal = True
        why = (
            f"none of its {record['train_rollouts']} rollouts succeeded"
            if record["train_success"] == 0
            else "every context's K rewards were equal"
        )
        warnings.warn(
            f"RIPT iteration {record['iteration']}: no group had a learning signal ({why}), so the policy did not "
            "change. RIPT learns from contexts where some of the K rollouts succeed and some fail: start from a "
            "policy that succeeds sometimes (more demos, a longer SFT, a stronger prior).",
            RuntimeWarning,
            stacklevel=3,
        )

    def _collect(self, group_rows: np.ndarray, seed: int) -> tuple[RolloutBatch, RolloutTiming]:
        """K rollouts of each context (rows of the context dataset), group-major, in one engine batch."""
        rows = np.repeat(group_rows, self.config.group_size)
        overlap = self.config.overlap_acting
        return rollout_contexts(
            self.env, self.policy, self.contexts, rows, seed, True, self.context_noise_std, overlap=overlap
        )

    def _rewarded(self, batch: RolloutBatch, timing: RolloutTiming) -> tuple[RolloutBatch, RolloutTiming]:
        rewards = torch.as_tensor(self.reward_fn(batch)).detach().float().cpu()
        wrong_shape = rewards.shape != (len(batch),)
        if wrong_shape or not torch.isfinite(rewards).all():
            got = f"shape {tuple(rewards.shape)}" if wrong_shape else "non-finite values"
            raise ValueError(f"reward_fn: must return {len(batch)} finite rewards, one per rollout, got {got}")
        return replace(batch, rewards=rewards), timing

    def _same_size_on_every_rank(self, batch: RolloutBatch | None) -> RolloutBatch | None:
        """Trims every rank's batch to the smallest rank's number of groups (only differs after a round cap),
        so all ranks take the same number of minibatch steps with equally sized shares."""
        k = self.config.group_size
        groups = self.dist.min(len(batch) // k if batch is not None else 0)
        if groups == 0 or batch is None:
            return None
        return batch if len(batch) == groups * k else batch.select(torch.arange(groups * k))

    # ---- held-out evaluation --------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        """One episode per held-out context (this rank's share), success counted per task over every rank."""
        if self.eval_contexts is None:
            raise ValueError("evaluate: the trainer was given no eval_contexts")
        t0 = time.perf_counter()
        local: dict[str, float] = {}
        if len(self.eval_rows):
            sample = self.policy.samples_in_eval if self.eval_sample is None else self.eval_sample
            seed = _derive_seed(self.seed, self.iteration, salt=3 + self.dist.rank)
            with _seeded(seed):
                env, contexts = self.eval_env, self.eval_contexts
                overlap = self.config.overlap_acting
                batch, _ = rollout_contexts(env, self.policy, contexts, self.eval_rows, seed, sample, overlap=overlap)
            names = [self.eval_contexts.task_names[i] for i in self.eval_rows]
            for task, (n, hits) in count_by_task(names, batch.success.numpy()).items():
                local[f"{task}/n"], local[f"{task}/ok"] = float(n), float(hits)
        tasks = list(dict.fromkeys(self.eval_contexts.task_names))
        counts = self.dist.sum({**{f"{t}/{x}": 0.0 for t in tasks for x in ("n", "ok")}, **local})
        episodes = sum(counts[f"{t}/n"] for t in tasks)
        result: dict[str, Any] = {
            "eval_success": sum(counts[f"{t}/ok"] for t in tasks) / episodes,
            "eval_episodes": int(episodes),
            "eval_seconds": time.perf_counter() - t0,
        }
        if len(tasks) > 1:
            result.update({f"eval_success/{t}": counts[f"{t}/ok"] / max(counts[f"{t}/n"], 1) for t in tasks})
        self._call("on_evaluate", result)
        return result

    # ---- state ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything but the policy's weights needed to continue exactly (a collective under DDP)."""
        return {
            "iteration": self.iteration,
            "total_env_steps": self.total_env_steps,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "world_size": self.dist.world,
            "samplers": self.dist.gather(self.sampler.state_dict()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["world_size"]) != self.dist.world:
            raise ConfigError(
                f"this run was checkpointed with {state['world_size']} rank(s); resume it with the same number"
            )
        self.iteration = int(state["iteration"])
        self.total_env_steps = int(state["total_env_steps"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["samplers"][self.dist.rank])

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)


def _group_tasks(env: Any, config: RiptConfig) -> list[str]:
    """The task of each group slot of `env` (envs g*K .. g*K+K-1), refused with one line when the env does not
    have the round's shape or a group's envs run different tasks."""
    k, groups = config.group_size, config.contexts_per_round
    names = list(getattr(env, "task_names", []))
    if len(names) != groups * k:
        raise ValueError(
            f"env: has {len(names)} envs, but a collection round runs contexts_per_round x group_size = "
            f"{groups} x {k} = {groups * k}"
        )
    if getattr(env, "autoreset", False):
        raise ValueError("env: must be made with autoreset=False (a finished rollout's env is masked, not reset)")
    _check_overlap(env, "env", config.overlap_acting)
    tasks = names[::k]
    for g, task in enumerate(tasks):
        if set(names[g * k : (g + 1) * k]) != {task}:
            raise ValueError(f"env: envs {g * k}..{g * k + k - 1} form group {g} and must run one task")
    return tasks


def _check_overlap(env: Any, name: str, overlap: bool) -> None:
    """overlap_acting steps half a batch at a time: `env.step` must take `env_ids` (ript_fast's vector envs do)."""
    step = getattr(env, "step", None)
    if overlap and (step is None or "env_ids" not in inspect.signature(step).parameters):
        raise ValueError(f"{name}: overlap_acting needs an env that can step some of its envs (step(..., env_ids=))")


def _check_eval_env(eval_env: Any, rows: int, overlap: bool) -> None:
    envs = 0 if eval_env is None else eval_env.num_envs
    if envs != rows:
        raise ValueError(f"eval_env: must have one env per held-out context of this rank ({rows}), has {envs}")
    if eval_env is not None:
        _check_overlap(eval_env, "eval_env", overlap)


def _derive_seed(seed: int, iteration: int, salt: int = 0) -> int:
    return (seed * 1_000_003 + iteration * 10_007 + salt * 101) % (2**31)


class _seeded:
    """Runs a block under a fixed torch seed and restores the global RNG afterwards (evaluation must not
    shift the training stream, so a run with a different `eval_every` trains identically)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        self.saved = torch.get_rng_state()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        torch.set_rng_state(self.saved)
