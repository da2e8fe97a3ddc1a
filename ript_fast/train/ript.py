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
- a finished env is never stepped again nor queried again (the released code keeps stepping it);
- per-token losses may be averaged per rollout first (`ript.token_average: rollouts`, the CPU preset's
  choice): the released code's token mean lets a long failed episode outweigh a short success.

A run folder holds: `config.yaml` (resolved), `metrics.jsonl`, `tensorboard/`, PNG plots, `demos/` and `sft/`
(when the stage-2 policy was made here), `checkpoints/iter_XXXX/` (policy + trainer state, written
atomically, the last few kept), `best.safetensors` (best held-out success) and `policy.safetensors` (final), also
written as the checkpoint folder `policy/` with a model card of the held-out success before -> after.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ript_fast import ops
from ript_fast._core import _C
from ript_fast.config import ConfigError, from_dict, to_dict
from ript_fast.data.contexts import ContextDataset
from ript_fast.envs import make_vec_env
from ript_fast.envs.registry import resolve_tasks
from ript_fast.policies.base import Policy
from ript_fast.train.atomic import atomic_write_text
from ript_fast.train.checkpoint import load_policy, save_policy
from ript_fast.train.context_sampling import TaskGroupSampler
from ript_fast.train.distributed import Dist, init_distributed, rank_device, shutdown
from ript_fast.train.dynamic_sampling import SamplingStats, collect_informative_groups
from ript_fast.train.interrupts import safe_section
from ript_fast.train.ppo import PPOObjective, PPOSettings, minibatch_schedule, ppo_update
from ript_fast.train.preflight import check_tasks_divide, check_train_config
from ript_fast.train.pretrained import run_eval_scores, save_pretrained
from ript_fast.train.rollout import NonFiniteActionError, RolloutBatch, RolloutTiming, collect_rollouts
from ript_fast.train.run_config import TrainConfig
from ript_fast.train.run_folder import Mode, RunFolder, RunFolderError, check_same_run, claim_run_folder
from ript_fast.train.run_logger import PlotSpec, RunLogger
from ript_fast.train.stage2 import demo_context_dataset, prepare_stage2_policy, recorded_config
from ript_fast.train.trainer_checkpoints import TrainerCheckpoints

FINAL_POLICY = "policy.safetensors"
FINAL_FOLDER = "policy"  # the final policy again, as a checkpoint folder with its model card (`pretrained.py`)
# What `--resume` may change: how the run runs and how long, not what it trains
RESUME_FREE_KEYS = (
    "out_dir",
    "device",
    "torch_threads",
    "engine_threads",
    "progress",
    "keep_checkpoints",
    "ript.iterations",
    "eval.every",
)
BEST_POLICY = "best.safetensors"
PLOTS = {
    "success.png": PlotSpec(
        ("train_success", "eval_success"),
        "Success rate (bands: 95% Wilson intervals)",
        "success rate",
        labels={"train_success": "rollouts (sampled)", "eval_success": "held-out contexts"},
        counts={"train_success": "train_rollouts", "eval_success": "eval_episodes"},
    ),
    "reject_rate.png": PlotSpec(("reject_rate",), "Rejected groups (dynamic sampling)", "fraction of groups"),
    "clip_fraction.png": PlotSpec(("clip_fraction",), "PPO clip fraction", "fraction"),
    "approx_kl.png": PlotSpec(("approx_kl",), "Approximate KL(old || new)", "KL"),
}


def run_train(cfg: TrainConfig, out_dir: str | Path | None = None, mode: Mode = "new") -> Path:
    """Runs (or resumes) a RIPT run and returns the path of its final policy checkpoint.

    `mode` follows the run-folder rules (`run_folder.py`): `new` refuses a folder that holds a run,
    `overwrite` moves it aside first, `resume` continues it (under its own config: only
    `RESUME_FREE_KEYS` may change, e.g. more iterations). Every check that needs no demos, SFT or env runs
    before the folder is touched. Under `torchrun` every rank calls this; rank 0 makes the stage-2 policy and
    writes the run folder (which must be on a filesystem all ranks see, for a multi-node resume).
    """
    out = Path(out_dir or cfg.out_dir)
    cfg = dataclasses.replace(cfg, out_dir=str(out))  # config.yaml names the folder really written
    check_train_config(cfg)
    dist = init_distributed(cfg.device)
    folder = None
    try:
        _check_divisible(cfg, dist)
        folder = _claim(cfg, out, mode, dist)
        resumed = dist.broadcast(folder.resumed if folder is not None else None)
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        if cfg.engine_threads > 0:
            _C.set_num_threads(cfg.engine_threads)
        checkpoints = TrainerCheckpoints(out / "checkpoints", keep=cfg.keep_checkpoints)
        saved = checkpoints.latest() if resumed else None
        policy_path = _stage2_policy(cfg, out, dist) if saved is None else saved.policy_path
        dist.barrier()
        policy = load_policy(policy_path, device=rank_device(cfg.device, dist), config_overrides=cfg.policy)
        trainer = RiptTrainer(cfg, policy, out, dist)
        if saved is not None:
            trainer.restore(saved.load_state())
        final = trainer.train(checkpoints)
        dist.barrier()
        return final
    finally:
        if folder is not None:
            folder.release()
        shutdown(dist)


def _claim(cfg: TrainConfig, out: Path, mode: Mode, dist: Dist) -> RunFolder | None:
    """Rank 0 claims the run folder (lock and rules), checks a resumed run's config against its own and
    records the config; a refusal reaches every rank, so none waits forever."""
    folder, error = None, None
    if dist.is_main:
        try:
            folder = claim_run_folder(out, "ript", mode, lambda path: _check_same_run(cfg, path))
            atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(recorded_config(cfg, out)), sort_keys=False))
        except RunFolderError as err:
            error = str(err)
    error = dist.broadcast(error)
    if error is not None:
        if folder is not None:
            folder.release()
        raise RunFolderError(error)
    return folder


def _check_same_run(cfg: TrainConfig, out: Path) -> None:
    """The saved config is read as this version reads it (keys added since take their defaults, retired ones
    are dropped), so a run made by an earlier version resumes unless a setting really differs."""
    check_same_run(
        out / "config.yaml", to_dict(cfg), RESUME_FREE_KEYS, lambda saved: to_dict(from_dict(TrainConfig, saved))
    )


def _stage2_policy(cfg: TrainConfig, out: Path, dist: Dist) -> Path:
    """Rank 0 finds or makes (demos + SFT) the stage-2 policy; the others wait for its path."""
    path = None
    if dist.is_main:
        if cfg.contexts.source == "demos":
            demo_context_dataset(cfg, out)  # demos unusable as contexts are refused before SFT trains on them
        path = str(prepare_stage2_policy(cfg, out))
    return Path(dist.broadcast(path))


def _check_divisible(cfg: TrainConfig, dist: Dist) -> None:
    r = cfg.ript
    if r.batch_rollouts % (r.group_size * dist.world):
        raise ConfigError(
            f"ript.batch_rollouts (B={r.batch_rollouts}) must be a multiple of group_size x ranks "
            f"({r.group_size} x {dist.world}): every rank contributes the same number of groups"
        )
    if r.minibatch_rollouts % dist.world:
        raise ConfigError(
            f"ript.minibatch_rollouts ({r.minibatch_rollouts}) must be a multiple of the {dist.world} ranks"
        )


class RiptTrainer:
    """Algorithm 1 over a batched env, with held-out evaluation, logging and checkpoints."""

    def __init__(self, cfg: TrainConfig, policy: Policy, out: Path, dist: Dist | None = None) -> None:
        self.cfg, self.policy, self.out = cfg, policy, out
        self.dist = dist or Dist()
        self.policy.eval()  # dropout off while sampling and scoring: stored old log-probs stay exact
        groups = self.policy.freeze_for_rl()
        self.optimizer = torch.optim.AdamW(_override_lrs(groups, cfg))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.train_contexts, self.eval_contexts = _context_sets(cfg, out)
        self.tasks = list(dict.fromkeys(self.train_contexts.task_names))
        r = cfg.ript
        check_tasks_divide(r.contexts_per_round, len(self.tasks))
        group_tasks = [self.tasks[g % len(self.tasks)] for g in range(r.contexts_per_round)]
        rank = self.dist.rank
        self.sampler = TaskGroupSampler(self.train_contexts.task_names, group_tasks, seed=cfg.seed * 7919 + rank * 7)
        env_options = self.policy.policy_config.obs.env_options()
        self.env = _make_env(cfg, [t for t in group_tasks for _ in range(r.group_size)], cfg.seed + rank, env_options)
        # Held-out contexts are split over ranks: rank r evaluates contexts r, r + world, ...
        self.eval_rows = np.arange(rank, len(self.eval_contexts), self.dist.world)
        eval_tasks = [self.eval_contexts.task_names[i] for i in self.eval_rows]
        self.eval_env = _make_env(cfg, eval_tasks, cfg.contexts.eval_seed, env_options) if eval_tasks else None
        self.iteration = 0
        self.total_env_steps = 0
        self.best_eval = -1.0
        self.logger = RunLogger(out) if self.dist.is_main else None
        self.settings = PPOSettings(
            epochs=r.ppo_epochs,
            minibatch_rollouts=r.minibatch_rollouts // self.dist.world,
            clip_eps=r.clip_eps,
            clip_eps_high=r.clip_eps_high,
            ratio_level=r.ratio_level,
            token_average=r.token_average,
            max_grad_norm=r.max_grad_norm,
        )
        self.objective = _ddp(PPOObjective(policy, self.settings), self.dist, policy.device)

    # ---- the loop -------------------------------------------------------------------------------------------
    def train(self, checkpoints: TrainerCheckpoints) -> Path:
        from tqdm import tqdm

        r = self.cfg.ript
        main = self.dist.is_main
        bar = tqdm(total=r.iterations, initial=self.iteration, desc="ript", disable=not (self.cfg.progress and main))
        try:
            if self.logger is not None:  # drop what a killed run logged past its checkpoint (or an old run's log)
                self.logger.truncate(self.iteration if self.iteration else -1)
            if self.iteration == 0:
                self._log(self._initial_eval())
            while self.iteration < r.iterations:
                self.iteration += 1
                record = self._iteration()
                with safe_section():  # Ctrl-C waits for the iteration's record and checkpoint to be written
                    self._log(record)
                    state = self.state_dict()  # a collective: every rank takes part
                    if main:
                        checkpoints.save(self.iteration, self.policy, state)
                bar.update(1)
                bar.set_postfix_str(_postfix(record))
            final = self.out / FINAL_POLICY
            if main:
                with safe_section():
                    notes = {"producer": "ript", "iteration": self.iteration}
                    save_policy(self.policy, final, notes)
                    scores = run_eval_scores(self.logger.history, self.cfg.env, len(self.eval_contexts))
                    card_notes = {**notes, **_run_notes(self.cfg)}
                    save_pretrained(self.policy, self.out / FINAL_FOLDER, scores, card_notes, name=self.out.name)
        finally:
            bar.close()
            if self.logger is not None:
                self.logger.close()
            self.env.close()
            if self.eval_env is not None:
                self.eval_env.close()
        return final

    def _iteration(self) -> dict[str, Any]:
        start = time.perf_counter()
        seed = _derive_seed(self.cfg.seed, self.iteration, salt=2 + self.dist.rank)
        torch.manual_seed(seed)
        r = self.cfg.ript
        rounds = iter(range(r.max_rounds))
        try:
            batch, stats, timing = collect_informative_groups(
                lambda idx: self._collect(idx, seed + next(rounds)),
                self.sampler,
                r.contexts_per_round,
                r.group_size,
                r.batch_rollouts // self.dist.world,
                r.dynamic_sampling,
                r.max_rounds,
            )
        except NonFiniteActionError as err:
            raise NonFiniteActionError(f"iteration {self.iteration}, rank {self.dist.rank}: {err}") from None
        batch = self._same_size_on_every_rank(batch)
        update: dict[str, float] = {}
        update_seconds = 0.0
        if batch is not None:
            t0 = time.perf_counter()
            advantages = ops.rloo_advantage(batch.rewards.view(-1, r.group_size)).flatten()
            # The shuffle is the same on every rank (same seed, same local size): minibatch j of the job is
            # the union of every rank's minibatch j.
            generator = torch.Generator().manual_seed(_derive_seed(self.cfg.seed, self.iteration, salt=1))
            schedule = minibatch_schedule(len(batch), self.settings.minibatch_rollouts, r.ppo_epochs, generator)
            update = ppo_update(self.objective, self.optimizer, batch, advantages, schedule, self.settings, self.dist)
            update_seconds = time.perf_counter() - t0
        with warnings.catch_warnings():  # an iteration without an informative group made no optimizer step
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            self.scheduler.step()
        record = self._record(stats, timing, update, update_seconds, batch)
        if self.iteration % self.cfg.eval.every == 0 or self.iteration == r.iterations:
            record.update(self._evaluate())
        record["seconds"] = time.perf_counter() - start
        return record

    def _same_size_on_every_rank(self, batch: RolloutBatch | None) -> RolloutBatch | None:
        """Trims every rank's batch to the smallest rank's number of groups (only differs after a round cap),
        so all ranks take the same number of minibatch steps with equally sized shares."""
        k = self.cfg.ript.group_size
        groups = self.dist.min(len(batch) // k if batch is not None else 0)
        if groups == 0 or batch is None:
            return None
        return batch if len(batch) == groups * k else batch.select(torch.arange(groups * k))

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
        """One episode per held-out context (this rank's share), success summed over ranks."""
        t0 = time.perf_counter()
        counts: dict[str, float] = {}
        if self.eval_env is not None:
            ctx = self.eval_contexts.gather(self.eval_rows.tolist())
            sample = self.policy.samples_in_eval if self.cfg.eval.sample is None else self.cfg.eval.sample
            with _seeded(_derive_seed(self.cfg.seed, self.iteration, salt=3 + self.dist.rank)):
                batch, _ = collect_rollouts(
                    self.eval_env,
                    self.policy,
                    ctx.states,
                    self.eval_rows,
                    self.policy.task_ids_for(ctx.task_names).numpy(),
                    self.cfg.contexts.eval_seed,
                    sample=sample,
                )
            for task, reward in zip(ctx.task_names, batch.rewards.tolist(), strict=True):
                counts[f"{task}/n"] = counts.get(f"{task}/n", 0.0) + 1
                counts[f"{task}/ok"] = counts.get(f"{task}/ok", 0.0) + reward
        counts = self.dist.sum({**{f"{t}/{k}": 0.0 for t in self.tasks for k in ("n", "ok")}, **counts})
        success = sum(counts[f"{t}/ok"] for t in self.tasks) / sum(counts[f"{t}/n"] for t in self.tasks)
        episodes = int(sum(counts[f"{t}/n"] for t in self.tasks))
        result: dict[str, Any] = {
            "eval_success": success,
            "eval_episodes": episodes,
            "eval_seconds": time.perf_counter() - t0,
        }
        if len(self.tasks) > 1:
            for t in self.tasks:
                result[f"eval_success/{t}"] = counts[f"{t}/ok"] / max(counts[f"{t}/n"], 1)
        if success > self.best_eval:
            self.best_eval = success
            if self.dist.is_main:
                save_policy(self.policy, self.out / BEST_POLICY, {"producer": "ript", "iteration": self.iteration})
        return result

    def _initial_eval(self) -> dict[str, Any]:
        record: dict[str, Any] = {"iteration": 0, "train_success": None, "env_steps": 0, "total_env_steps": 0}
        record.update(self._evaluate())
        return record

    def _log(self, record: dict[str, Any]) -> None:
        if self.logger is None:
            return
        self.logger.log(record)
        for filename, spec in PLOTS.items():
            self.logger.plot(filename, spec)

    # ---- bookkeeping ------------------------------------------------------------------------------------
    def _record(
        self,
        stats: SamplingStats,
        timing: RolloutTiming,
        update: dict[str, float],
        update_seconds: float,
        batch: RolloutBatch | None,
    ) -> dict[str, Any]:
        """The iteration's metrics, summed (counts) or averaged (times, rates) over ranks."""
        totals = self.dist.sum(
            {
                "rollouts_run": stats.rollouts_run,
                "successes": stats.successes,
                "groups_tried": stats.groups_tried,
                "groups_rejected": stats.groups_rejected,
                "groups_kept": len(batch) // self.cfg.ript.group_size if batch is not None else 0,
                "rounds": stats.rounds,
                "cap_hit": float(stats.cap_hit),
                "env_steps": timing.env_steps,
                "env_step": timing.env_step,
                "env_reset": timing.env_reset,
                "policy_act": timing.policy_act,
                "update": update_seconds,
            }
        )
        world = self.dist.world
        self.total_env_steps += int(totals["env_steps"])
        rollout_seconds = (totals["env_step"] + totals["env_reset"] + totals["policy_act"]) / world
        return {
            "iteration": self.iteration,
            "train_success": totals["successes"] / max(totals["rollouts_run"], 1),
            "train_rollouts": int(totals["rollouts_run"]),
            "rejected_groups": int(totals["groups_rejected"]),
            "kept_groups": int(totals["groups_kept"]),
            "reject_rate": totals["groups_rejected"] / max(totals["groups_tried"], 1),
            "rounds": totals["rounds"] / world,
            "sampling_cap_hit": totals["cap_hit"] > 0,
            "rollouts": int(totals["groups_kept"]) * self.cfg.ript.group_size,
            "env_steps": int(totals["env_steps"]),
            "total_env_steps": self.total_env_steps,
            "env_steps_per_s": totals["env_steps"] / max(rollout_seconds, 1e-9),
            "time_env_step": totals["env_step"] / world,
            "time_env_reset": totals["env_reset"] / world,
            "time_policy_act": totals["policy_act"] / world,
            "time_update": totals["update"] / world,
            "lr": self.scheduler.get_last_lr()[0],
            "world_size": world,
            **update,
        }

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
            "world_size": self.dist.world,
            "samplers": self.dist.gather(self.sampler.state_dict()),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.total_env_steps = int(state["total_env_steps"])
        self.best_eval = float(state["best_eval"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if int(state["world_size"]) != self.dist.world:
            raise ConfigError(
                f"this run was checkpointed with {state['world_size']} rank(s); resume it with the same number"
            )
        self.sampler.load_state_dict(state["samplers"][self.dist.rank])


def _context_sets(cfg: TrainConfig, out: Path) -> tuple[ContextDataset, ContextDataset]:
    """Training contexts (demo initial states, or fresh env resets) and held-out evaluation contexts."""
    c = cfg.contexts
    train = demo_context_dataset(cfg, out) if c.source == "demos" else _fresh_contexts(cfg, c.size, c.seed)
    return train, _fresh_contexts(cfg, c.eval_size, c.eval_seed)


def _fresh_contexts(cfg: TrainConfig, per_task: int, seed: int) -> ContextDataset:
    """`per_task` env resets of every task (env i of a multi-task env runs task i % num_tasks)."""
    num_tasks = len(resolve_tasks(cfg.env))
    return ContextDataset.from_env(cfg.env, per_task * num_tasks, seed)


def _make_env(cfg: TrainConfig, slot_tasks: list[str], seed: int, env_options: dict[str, Any]):
    """One engine batch whose env i runs `slot_tasks[i]`, never auto-reset (finished envs are masked); with
    images (at the policy's render size) when the policy reads them."""
    prefix = cfg.env_names[0].split("/", 1)[0]
    names = [f"{prefix}/{task}" for task in slot_tasks]
    return make_vec_env(names, num_envs=len(names), seed=seed, autoreset=False, **env_options)


def _ddp(objective: PPOObjective, dist: Dist, device: torch.device) -> torch.nn.Module:
    """The objective wrapped in DistributedDataParallel when several ranks train (gradient all-reduce)."""
    if not dist.enabled:
        return objective
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(objective, device_ids=device_ids)


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


def _run_notes(cfg: TrainConfig) -> dict[str, Any]:
    """How the run trained, for the final folder's model card."""
    r = cfg.ript
    return {
        "method": "RIPT-VLA: dynamic-sampling leave-one-out PPO (Algorithm 1)",
        "env": cfg.env,
        "init": cfg.init or "the SFT stage of the same run (its sft/ folder)",
        "rollouts per iteration (B)": r.batch_rollouts,
        "rollouts per context (K)": r.group_size,
        "seed": cfg.seed,
    }


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
