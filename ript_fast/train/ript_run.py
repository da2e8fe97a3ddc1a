"""`ript-fast train`: a RIPT run from a `TrainConfig`, in a run folder (`run_train`).

It builds what `RiptTrainer` is handed (the stage-2 policy, the rollout and held-out envs, the context sets) and
what a run folder holds, as a trainer callback (`RunRecorder`):
`config.yaml` (resolved), `metrics.jsonl`, `tensorboard/`, PNG plots, `demos/` and `sft/` (when the stage-2
policy was made here), `checkpoints/iter_XXXX/` (policy + trainer state, written atomically, the last few
kept), `best.safetensors` (best held-out success) and `policy.safetensors` (final), also written as the
checkpoint folder `policy/` with a model card of the held-out success before -> after.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import yaml

from ript_fast._core import _C
from ript_fast.config import ConfigError, from_dict, to_dict
from ript_fast.data.contexts import ContextDataset, task_env_name
from ript_fast.envs import make_vec_env
from ript_fast.envs.registry import resolve_tasks
from ript_fast.policies.base import Policy
from ript_fast.train.atomic import atomic_write_text
from ript_fast.train.checkpoint import load_policy, save_policy
from ript_fast.train.distributed import Dist, init_distributed, rank_device, rank_share, shutdown
from ript_fast.train.preflight import check_tasks_divide, check_train_config
from ript_fast.train.pretrained import run_eval_scores, save_pretrained
from ript_fast.train.ript import RiptTrainer, TrainerCallback
from ript_fast.train.run_config import TrainConfig
from ript_fast.train.run_folder import Mode, RunFolder, RunFolderError, check_same_run, claim_run_folder
from ript_fast.train.run_logger import PlotSpec, RunLogger
from ript_fast.train.stage2 import demo_context_dataset, prepare_stage2_policy, recorded_config
from ript_fast.train.trainer_checkpoints import TrainerCheckpoints

FINAL_POLICY = "policy.safetensors"
FINAL_FOLDER = "policy"  # the final policy again, as a checkpoint folder with its model card (`pretrained.py`)
BEST_POLICY = "best.safetensors"
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
    "logging",
)
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
        _train(cfg, policy, out, dist, checkpoints, saved.load_state() if saved is not None else None)
        dist.barrier()
        return out / FINAL_POLICY
    finally:
        if folder is not None:
            folder.release()
        shutdown(dist)


def _train(
    cfg: TrainConfig,
    policy: Policy,
    out: Path,
    dist: Dist,
    checkpoints: TrainerCheckpoints,
    saved_state: dict[str, Any] | None,
) -> None:
    """Builds the trainer's envs and contexts, trains, and closes the envs whatever happens."""
    contexts, eval_contexts = _context_sets(cfg, out)
    tasks = list(dict.fromkeys(contexts.task_names))
    r = cfg.ript
    check_tasks_divide(r.contexts_per_round, len(tasks))
    env_options = policy.policy_config.obs.env_options()
    slots = [task_env_name(cfg.env_names[0], tasks[g % len(tasks)]) for g in range(r.contexts_per_round)]
    env = _make_env([name for name in slots for _ in range(r.group_size)], cfg.seed + dist.rank, env_options)
    # Held-out contexts are split over ranks (`rank_share`, as the trainer deals them)
    eval_names = eval_contexts.task_env_names(rank_share(len(eval_contexts), dist))
    eval_env = _make_env(eval_names, cfg.contexts.eval_seed, env_options) if eval_names else None
    recorder = RunRecorder(cfg, out, checkpoints, dist)
    try:
        trainer = RiptTrainer(
            policy,
            env,
            contexts,
            r,
            eval_env=eval_env,
            eval_contexts=eval_contexts,
            callbacks=[recorder],
            seed=cfg.seed,
            eval_every=cfg.eval.every,
            eval_sample=cfg.eval.sample,
            context_noise_std=cfg.contexts.noise_std,
            progress=cfg.progress,
            dist=dist,
        )
        if saved_state is not None:
            trainer.load_state_dict(saved_state)
            recorder.load_state_dict(saved_state)
        trainer.train()
    finally:
        recorder.close()
        env.close()
        if eval_env is not None:
            eval_env.close()


class RunRecorder(TrainerCallback):
    """What a run folder records of the trainer: metrics and plots, iteration checkpoints (the trainer's state
    plus the best held-out success so far), the best policy, and the final policy with its model card. Rank 0
    writes; every rank takes part in the state's collectives."""

    def __init__(self, cfg: TrainConfig, out: Path, checkpoints: TrainerCheckpoints, dist: Dist) -> None:
        self.cfg, self.out, self.checkpoints, self.dist = cfg, out, checkpoints, dist
        self.logger = RunLogger(out, logging=cfg.logging, config=to_dict(cfg)) if dist.is_main else None
        self.best_eval = -1.0

    def on_train_begin(self, trainer: RiptTrainer) -> None:
        if self.logger is not None:  # drop what a killed run logged past its checkpoint (or an old run's log)
            self.logger.truncate(trainer.iteration if trainer.iteration else -1)

    def on_evaluate(self, trainer: RiptTrainer, result: dict[str, Any]) -> None:
        if result["eval_success"] > self.best_eval:
            self.best_eval = result["eval_success"]
            if self.dist.is_main:
                notes = {"producer": "ript", "iteration": trainer.iteration}
                save_policy(trainer.policy, self.out / BEST_POLICY, notes)

    def on_log(self, trainer: RiptTrainer, record: dict[str, Any]) -> None:
        if self.logger is None:
            return
        self.logger.log(record)
        for filename, spec in PLOTS.items():
            self.logger.plot(filename, spec)

    def on_iteration_end(self, trainer: RiptTrainer) -> None:
        state = {**trainer.state_dict(), "best_eval": self.best_eval}  # a collective: every rank takes part
        if self.dist.is_main:
            self.checkpoints.save(trainer.iteration, trainer.policy, state)

    def on_train_end(self, trainer: RiptTrainer) -> None:
        if not self.dist.is_main:
            return
        notes = {"producer": "ript", "iteration": trainer.iteration}
        save_policy(trainer.policy, self.out / FINAL_POLICY, notes)
        assert self.logger is not None and trainer.eval_contexts is not None
        scores = run_eval_scores(self.logger.history, self.cfg.env, len(trainer.eval_contexts))
        card_notes = {**notes, **_run_notes(self.cfg)}
        save_pretrained(trainer.policy, self.out / FINAL_FOLDER, scores, card_notes, name=self.out.name)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_eval = float(state["best_eval"])

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()


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


def _context_sets(cfg: TrainConfig, out: Path) -> tuple[ContextDataset, ContextDataset]:
    """Training contexts (demo initial states, or fresh env resets) and held-out evaluation contexts."""
    c = cfg.contexts
    train = demo_context_dataset(cfg, out) if c.source == "demos" else _fresh_contexts(cfg, c.size, c.seed)
    return train, _fresh_contexts(cfg, c.eval_size, c.eval_seed)


def _fresh_contexts(cfg: TrainConfig, per_task: int, seed: int) -> ContextDataset:
    """`per_task` env resets of every task (env i of a multi-task env runs task i % num_tasks)."""
    num_tasks = len(resolve_tasks(cfg.env))
    return ContextDataset.from_env(cfg.env, per_task * num_tasks, seed)


def _make_env(names: list[str], seed: int, env_options: dict[str, Any]):
    """One engine batch whose env i runs the single-task env `names[i]`, never auto-reset (finished envs are
    masked); with images (at the policy's render size) when the policy reads them."""
    return make_vec_env(names, num_envs=len(names), seed=seed, autoreset=False, **env_options)


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
