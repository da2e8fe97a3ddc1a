"""RIPT-VLA stage 3 (paper Algorithm 1): `ript-fast train` and `run_train`.

Per iteration: roll out K times from each sampled context (all K x M rollouts in one engine batch), score
successes, compute leave-one-out advantages (`ops.rloo_advantage`), drop uninformative groups and resample
until B informative rollouts are in hand (`dynamic_sampling`), then N PPO epochs with the fused losses.
Held-out contexts are evaluated every `eval.every` iterations.

Where this departs from the released code (`shared/REFERENCE_CODE.md`), on purpose:
- old log-probs are the ones stored at sampling time (the released QueST path recomputes them in a second
  pass); they are equal because the policy is in eval mode (no dropout) both when sampling and when scoring,
  which is also what the released code effectively does;
- collection rounds are capped (`ript.max_rounds`), and hitting the cap is logged (`sampling_cap_hit`);
- a finished env is never stepped again nor queried again (the released code keeps stepping it).

A run folder holds: `config.yaml` (resolved), `metrics.jsonl`, `tensorboard/`, PNG plots, `demos/` and `sft/`
(when the stage-2 policy was made here), `checkpoints/iter_XXXX/` (policy + trainer state, written
atomically, the last few kept), `best.safetensors` (best held-out success) and `policy.safetensors` (final).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ript_fast import ops
from ript_fast.config import ConfigError, to_dict
from ript_fast.data.contexts import ContextDataset
from ript_fast.envs import make_vec_env
from ript_fast.envs.registry import resolve_tasks
from ript_fast.policies.base import Policy
from ript_fast.train.atomic import atomic_write_text
from ript_fast.train.checkpoint import load_policy, save_policy
from ript_fast.train.context_sampling import TaskGroupSampler
from ript_fast.train.dynamic_sampling import SamplingStats, collect_informative_groups
from ript_fast.train.ppo import PPOSettings, ppo_update
from ript_fast.train.rollout import NonFiniteActionError, RolloutBatch, RolloutTiming, collect_rollouts
from ript_fast.train.run_config import TrainConfig
from ript_fast.train.run_logger import RunLogger
from ript_fast.train.stage2 import demo_context_dataset, prepare_stage2_policy
from ript_fast.train.trainer_checkpoints import TrainerCheckpoints

FINAL_POLICY = "policy.safetensors"
BEST_POLICY = "best.safetensors"
PLOTS = {
    "success.png": (["train_success", "eval_success"], "Success rate", "success rate"),
    "reject_rate.png": (["reject_rate"], "Rejected groups (dynamic sampling)", "fraction of groups"),
    "clip_fraction.png": (["clip_fraction"], "PPO clip fraction", "fraction"),
    "approx_kl.png": (["approx_kl"], "Approximate KL(old || new)", "KL"),
}


def run_train(cfg: TrainConfig, out_dir: str | Path | None = None, resume: bool = False) -> Path:
    """Runs (or resumes) a RIPT run and returns the path of its final policy checkpoint."""
    try:
        resolve_tasks(cfg.env)
    except ValueError as err:
        raise ConfigError(f"env: {err}") from None
    out = Path(out_dir or cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
        from ript_fast._core import _C

        _C.set_num_threads(cfg.threads)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    checkpoints = TrainerCheckpoints(out / "checkpoints", keep=cfg.keep_checkpoints)
    resumed = checkpoints.latest() if resume else None
    policy_path = resumed.policy_path if resumed else prepare_stage2_policy(cfg, out)
    policy = load_policy(policy_path, device=cfg.device)
    trainer = RiptTrainer(cfg, policy, out)
    if resumed is not None:
        trainer.restore(resumed.load_state())
    return trainer.train(checkpoints)


class RiptTrainer:
    """Algorithm 1 over a batched env, with held-out evaluation, logging and checkpoints."""

    def __init__(self, cfg: TrainConfig, policy: Policy, out: Path) -> None:
        self.cfg, self.policy, self.out = cfg, policy, out
        self.policy.eval()  # dropout off while sampling and scoring: stored old log-probs stay exact
        groups = self.policy.freeze_for_rl()
        self.optimizer = torch.optim.AdamW(_override_lrs(groups, cfg))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.train_contexts, self.eval_contexts = _context_sets(cfg, out)
        self.tasks = list(dict.fromkeys(self.train_contexts.task_names))
        r = cfg.ript
        if r.contexts_per_round % len(self.tasks):
            raise ConfigError(
                f"ript.contexts_per_round ({r.contexts_per_round}) must be a multiple of the number of tasks "
                f"({len(self.tasks)}): each round rolls out every task equally often"
            )
        group_tasks = [self.tasks[g % len(self.tasks)] for g in range(r.contexts_per_round)]
        self.sampler = TaskGroupSampler(self.train_contexts.task_names, group_tasks, seed=cfg.seed * 7919)
        obs_mode = "state+rgb" if self.policy.policy_config.obs.image_keys else "state"
        self.env = _make_env(cfg, [t for t in group_tasks for _ in range(r.group_size)], cfg.seed, obs_mode)
        self.eval_env = _make_env(cfg, self.eval_contexts.task_names, cfg.contexts.eval_seed, obs_mode)
        self.iteration = 0
        self.total_env_steps = 0
        self.best_eval = -1.0
        self.logger = RunLogger(out)
        self.settings = PPOSettings(
            epochs=r.ppo_epochs,
            minibatch_rollouts=r.minibatch_rollouts,
            clip_eps=r.clip_eps,
            clip_eps_high=r.clip_eps_high,
            ratio_level=r.ratio_level,
            max_grad_norm=r.max_grad_norm,
        )

    # ---- the loop -------------------------------------------------------------------------------------------
    def train(self, checkpoints: TrainerCheckpoints) -> Path:
        from tqdm import tqdm

        r = self.cfg.ript
        bar = tqdm(total=r.iterations, initial=self.iteration, desc="ript", disable=not self.cfg.progress)
        try:
            if self.iteration == 0:
                self._log_initial_eval()
            while self.iteration < r.iterations:
                self.iteration += 1
                record = self._iteration()
                self.logger.log(record)
                self._plot()
                checkpoints.save(self.iteration, self.policy, self.state_dict())
                bar.update(1)
                bar.set_postfix_str(_postfix(record))
            final = save_policy(self.policy, self.out / FINAL_POLICY, {"producer": "ript", "iteration": self.iteration})
        finally:
            bar.close()
            self.logger.close()
            self.env.close()
            self.eval_env.close()
        return final

    def _iteration(self) -> dict[str, Any]:
        start = time.perf_counter()
        seed = _derive_seed(self.cfg.seed, self.iteration)
        torch.manual_seed(seed)
        r = self.cfg.ript
        rounds = iter(range(r.max_rounds))
        try:
            batch, stats, timing = collect_informative_groups(
                lambda idx: self._collect(idx, seed + next(rounds)),
                self.sampler,
                r.contexts_per_round,
                r.group_size,
                r.batch_rollouts,
                r.dynamic_sampling,
                r.max_rounds,
            )
        except NonFiniteActionError as err:
            raise NonFiniteActionError(f"iteration {self.iteration}: {err}") from None
        self.total_env_steps += timing.env_steps
        update: dict[str, float] = {}
        update_seconds = 0.0
        if batch is not None:
            t0 = time.perf_counter()
            advantages = ops.rloo_advantage(batch.rewards.view(-1, r.group_size)).flatten()
            update = ppo_update(
                self.policy,
                self.optimizer,
                batch,
                advantages,
                self.settings,
                torch.Generator().manual_seed(seed),
            )
            update_seconds = time.perf_counter() - t0
        with warnings.catch_warnings():  # an iteration without an informative group made no optimizer step
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            self.scheduler.step()
        record = self._record(stats, timing, update, update_seconds, batch)
        if self.iteration % self.cfg.eval.every == 0 or self.iteration == r.iterations:
            record.update(self._evaluate())
        record["seconds"] = time.perf_counter() - start
        return record

    # ---- rollouts ---------------------------------------------------------------------------------------
    def _collect(self, group_rows: np.ndarray, seed: int) -> tuple[RolloutBatch, RolloutTiming]:
        """K rollouts of each context (rows of the train dataset), group-major, in one engine batch."""
        k = self.cfg.ript.group_size
        rows = np.repeat(group_rows, k)
        ctx = self.train_contexts.gather(rows.tolist())
        return collect_rollouts(
            self.env,
            self.policy,
            ctx.states,
            rows,
            self.policy.task_ids_for(ctx.task_names).numpy(),
            seed,
            sample=True,
            context_noise_std=self.cfg.contexts.noise_std,
        )

    def _evaluate(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        ctx = self.eval_contexts.gather(range(len(self.eval_contexts)))
        sample = self.policy.samples_in_eval if self.cfg.eval.sample is None else self.cfg.eval.sample
        with _seeded(_derive_seed(self.cfg.seed, self.iteration, salt=1)):
            batch, _ = collect_rollouts(
                self.eval_env,
                self.policy,
                ctx.states,
                np.arange(len(ctx.states)),
                self.policy.task_ids_for(ctx.task_names).numpy(),
                self.cfg.contexts.eval_seed,
                sample=sample,
            )
        success = float(batch.rewards.mean())
        result: dict[str, Any] = {"eval_success": success, "eval_seconds": time.perf_counter() - t0}
        tasks = np.asarray(ctx.task_names)
        if len(self.tasks) > 1:
            for task in self.tasks:
                result[f"eval_success/{task}"] = float(batch.rewards[torch.as_tensor(tasks == task)].mean())
        if success > self.best_eval:
            self.best_eval = success
            save_policy(self.policy, self.out / BEST_POLICY, {"producer": "ript", "iteration": self.iteration})
        return result

    def _log_initial_eval(self) -> None:
        record: dict[str, Any] = {"iteration": 0, "train_success": None, "env_steps": 0, "total_env_steps": 0}
        record.update(self._evaluate())
        self.logger.log(record)

    # ---- bookkeeping ------------------------------------------------------------------------------------
    def _record(
        self,
        stats: SamplingStats,
        timing: RolloutTiming,
        update: dict[str, float],
        update_seconds: float,
        batch: RolloutBatch | None,
    ) -> dict[str, Any]:
        rollout_seconds = timing.env_step + timing.env_reset + timing.policy_act
        return {
            "iteration": self.iteration,
            "train_success": stats.success_rate,
            "rejected_groups": stats.groups_rejected,
            "kept_groups": stats.groups_kept,
            "reject_rate": stats.groups_rejected / max(stats.groups_tried, 1),
            "rounds": stats.rounds,
            "sampling_cap_hit": stats.cap_hit,
            "rollouts": len(batch) if batch is not None else 0,
            "env_steps": timing.env_steps,
            "total_env_steps": self.total_env_steps,
            "env_steps_per_s": timing.env_steps / max(rollout_seconds, 1e-9),
            "time_env_step": timing.env_step,
            "time_env_reset": timing.env_reset,
            "time_policy_act": timing.policy_act,
            "time_update": update_seconds,
            "lr": self.scheduler.get_last_lr()[0],
            **update,
        }

    def _plot(self) -> None:
        for filename, (keys, title, ylabel) in PLOTS.items():
            self.logger.plot(filename, keys, title, ylabel)

    def _lr_factor(self, step: int) -> float:
        r = self.cfg.ript
        if r.lr_schedule == "constant":
            return 1.0
        t = min(step / max(r.iterations, 1), 1.0)
        return r.min_lr_ratio + (1 - r.min_lr_ratio) * 0.5 * (1 + np.cos(np.pi * t))

    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "total_env_steps": self.total_env_steps,
            "best_eval": self.best_eval,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.total_env_steps = int(state["total_env_steps"])
        self.best_eval = float(state["best_eval"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.logger.truncate(self.iteration)


def _context_sets(cfg: TrainConfig, out: Path) -> tuple[ContextDataset, ContextDataset]:
    """Training contexts (demo initial states, or fresh env resets) and held-out evaluation contexts."""
    c = cfg.contexts
    train = demo_context_dataset(cfg, out) if c.source == "demos" else _fresh_contexts(cfg, c.size, c.seed)
    return train, _fresh_contexts(cfg, c.eval_size, c.eval_seed)


def _fresh_contexts(cfg: TrainConfig, per_task: int, seed: int) -> ContextDataset:
    """`per_task` env resets of every task (env i of a multi-task env runs task i % num_tasks)."""
    num_tasks = len(resolve_tasks(cfg.env))
    return ContextDataset.from_env(cfg.env, per_task * num_tasks, seed)


def _make_env(cfg: TrainConfig, slot_tasks: list[str], seed: int, obs_mode: str):
    """One engine batch whose env i runs `slot_tasks[i]`, never auto-reset (finished envs are masked); with
    images when the policy reads them."""
    prefix = cfg.env_names[0].split("/", 1)[0]
    names = [f"{prefix}/{task}" for task in slot_tasks]
    return make_vec_env(names, num_envs=len(names), seed=seed, obs_mode=obs_mode, autoreset=False)


def _override_lrs(groups: list[dict[str, Any]], cfg: TrainConfig) -> list[dict[str, Any]]:
    r = cfg.ript
    unknown = set(r.group_lr) - {g["name"] for g in groups}
    if unknown:
        raise ConfigError(f"ript.group_lr names unknown parameter group(s) {sorted(unknown)}")
    for g in groups:
        if r.lr is not None:
            g["lr"] = r.lr
        if g["name"] in r.group_lr:
            g["lr"] = r.group_lr[g["name"]]
        if r.weight_decay is not None:
            g["weight_decay"] = r.weight_decay
    return groups


def _derive_seed(seed: int, iteration: int, salt: int = 0) -> int:
    return (seed * 1_000_003 + iteration * 10_007 + salt * 101) % (2**31)


class _seeded:
    """Runs a block under a fixed torch seed and restores the global RNG afterwards (evaluation must not
    shift the training stream, so a run with a different `eval.every` trains identically)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        self.saved = torch.get_rng_state()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        torch.set_rng_state(self.saved)


def _postfix(record: dict[str, Any]) -> str:
    parts = [f"train {record['train_success']:.2f}"]
    if "eval_success" in record:
        parts.append(f"eval {record['eval_success']:.2f}")
    parts.append(f"kept {record['kept_groups']} rej {record['rejected_groups']}")
    parts.append(f"{record['env_steps_per_s']:.0f} steps/s")
    return " | ".join(parts)
