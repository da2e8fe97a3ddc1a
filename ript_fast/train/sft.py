"""Supervised training (the paper's stages 1-2) of a policy on demo files: `ript-fast sft` and `run_sft`.

A run is a list of stages, each a number of optimizer steps on one of the family's supervised losses
(QueST: `autoencoder` then `prior`; OFT: `action` then `scale`), AdamW with a cosine decay per stage. It
writes into its run folder: `config.yaml` (the resolved config), `metrics.jsonl` + TensorBoard + `loss.png`
(run_logger), `checkpoints/step_<N>.safetensors` + `checkpoints/train_state.safetensors` every `checkpoint_every` steps
and at every stage end (`checkpoints/<stage>.safetensors`), and `policy.safetensors` at the end. A killed
run resumes from the latest checkpoint (`mode="resume"`) with its optimizer, schedule and RNG state.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from ript_fast.config import SEED, ConfigError, from_dict, ranged, to_dict
from ript_fast.data.chunks import ChunkDataset
from ript_fast.data.collect import CollectConfig, collect_or_reuse, planned_demos
from ript_fast.data.sources import read_demos
from ript_fast.policies.base import Policy
from ript_fast.policies.config import PolicyConfig
from ript_fast.policies.factory import build_policy, check_policy_files
from ript_fast.policies.param_groups import decay_groups
from ript_fast.train.atomic import atomic_write, atomic_write_text
from ript_fast.train.checkpoint import load_policy, save_policy
from ript_fast.train.devices import check_device
from ript_fast.train.interrupts import safe_section
from ript_fast.train.run_folder import Mode, check_same_run, claim_run_folder
from ript_fast.train.run_logger import METRICS_FILE, LoggingConfig, PlotSpec, RunLogger, check_logging, read_metrics
from ript_fast.train.state_file import SFT_STATE_FORMAT, load_state, older_version_error, save_state

FINAL_CHECKPOINT = "policy.safetensors"
STEP_KEY = "step"
STATE_FILE = "train_state.safetensors"
LEGACY_STATE_FILE = "train_state.pt"  # the pickled state of ript-fast before state files (refused, never read)
# What a resumed SFT run may change: how it runs, not what it trains
RESUME_FREE_KEYS = ("out_dir", "device", "threads", "log_every", "checkpoint_every", "progress", "logging")


@dataclass
class StageConfig:
    name: str  # a stage of the policy family: quest: autoencoder | prior; openvla_oft: scale
    steps: int = ranged(dataclasses.MISSING, ge=0)
    lr: float = ranged(1e-4, gt=0, le=1)
    weight_decay: float = ranged(1e-4, ge=0)
    batch_size: int = ranged(64, ge=1)
    min_lr_ratio: float = ranged(0.1, ge=0, le=1)  # cosine decay from lr to lr * min_lr_ratio (QueST: 1e-4 -> 1e-5)
    grad_clip: float = ranged(100.0, gt=0)  # QueST's training.grad_clip


@dataclass
class SftConfig:
    demos: list[str] = field(default_factory=list)  # HDF5 files (one task each) or LeRobot dataset folders
    num_demos: int | None = ranged(None, ge=1)  # use the first N episodes of each file (of each task of a folder)
    # LeRobot folders: our key (an obs key, actions, states) -> its feature, where the default lookup misses it
    lerobot_keys: dict[str, str] = field(default_factory=dict)
    # LeRobot folders: the benchmark their tasks come from (libero/goal, libero/10, metaworld/MT50): task texts are
    # named as its envs name them (`goal/open_the_...`); None keeps the text. A `train` run's SFT uses its env's.
    lerobot_benchmark: str | None = None
    collect: CollectConfig | None = None  # or scripted demos this run collects into <out>/demos/ (a prior's data)
    # a benchmark (metaworld/MT50, libero/90) every task of which a new policy knows, demos or not: QueST's ML45
    # pretraining keeps ids for the 5 held-out tasks, whose rows then train in a stage 2 on their few demos
    task_table: str | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    stages: list[StageConfig] = field(default_factory=list)  # empty: every stage of the family, 1000 steps each
    out_dir: str = "runs/sft"
    seed: int = ranged(0, **SEED)
    device: str = "cpu"
    threads: int = ranged(0, ge=0, le=4096)  # torch intra-op threads; 0 keeps torch's default
    log_every: int = ranged(25, ge=1)
    checkpoint_every: int = ranged(500, ge=1)
    init_checkpoint: str | None = None  # start from this policy (e.g. a pretrained autoencoder)
    progress: bool = True
    logging: LoggingConfig = field(default_factory=LoggingConfig)  # trackers: TensorBoard (default), W&B


@dataclass
class _Progress:
    """Where a run is: stage index, step within it, global step (what resume restores)."""

    stage: int = 0
    stage_step: int = 0
    step: int = 0


def run_sft(cfg: SftConfig, out_dir: str | Path | None = None, mode: Mode = "new") -> Path:
    """Trains, checkpoints and returns the path of the final checkpoint (`<out>/policy.safetensors`).

    `mode` follows the run-folder rules (`run_folder.py`): `new` refuses a folder that holds a run, `resume`
    continues one (its config must match `cfg` but for `RESUME_FREE_KEYS`), `auto` does whichever applies.
    """
    out = Path(out_dir or cfg.out_dir)
    cfg = dataclasses.replace(cfg, out_dir=str(out))  # config.yaml names the folder really written
    check_device(cfg.device, "device")
    check_logging(cfg.logging, "logging")
    check_policy_files(cfg.policy)
    if cfg.collect is not None and cfg.demos:
        raise ConfigError("demos, collect: give demo files or a collect section, not both")
    data = None
    if cfg.collect is None:
        data = load_chunk_dataset(cfg)  # demo files are validated before the folder is touched
    else:
        demo_paths(cfg)  # as are the tasks the collect section names

    def same_run(path: Path) -> None:
        check_same_run(path / "config.yaml", _comparable(cfg), RESUME_FREE_KEYS, _comparable)

    with claim_run_folder(out, "sft", mode, same_run) as folder:
        if folder.resumed and (out / FINAL_CHECKPOINT).is_file():  # finished: nothing to train or rewrite
            return out / FINAL_CHECKPOINT
        if data is None:
            data = _collect(cfg, out)
        return _train(cfg, data, out, folder.resumed)


def _collect(cfg: SftConfig, out: Path) -> ChunkDataset:
    """The `collect` section's demos, into `out/demos/`. The folder holds the run from the start (config.yaml),
    so a collection stopped half-way continues with --resume, reusing the files already made."""
    assert cfg.collect is not None
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    c = cfg.collect
    for env_name, num, path in planned_demos(c, out / "demos", "collect"):
        collect_or_reuse(env_name, num, path, c.noise_std, c.seed, "collect", cfg.progress)
    return load_chunk_dataset(cfg)


def _comparable(cfg: SftConfig | dict[str, Any]) -> dict[str, Any]:
    """The config as compared on resume: file paths resolved (`runs/x` and `./runs/x` are one file), and files
    beside the run folder (the demos `train` collects next to its `sft/`) relative to it, so a run folder that
    was moved or renamed as a whole still resumes."""
    plain = to_dict(from_dict(SftConfig, cfg) if isinstance(cfg, dict) else cfg)  # as this version reads it
    anchor = Path(plain.get("out_dir") or ".").resolve().parent

    def where(path: str) -> str:
        resolved = Path(path).resolve()
        return str(resolved.relative_to(anchor)) if resolved.is_relative_to(anchor) else str(resolved)

    plain["demos"] = [where(p) for p in plain.get("demos") or []]
    if plain.get("init_checkpoint"):
        plain["init_checkpoint"] = where(plain["init_checkpoint"])
    return plain


def _train(cfg: SftConfig, data: ChunkDataset, out: Path, resume: bool) -> Path:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    state_file = out / "checkpoints" / STATE_FILE
    if resume and not state_file.exists() and (out / "checkpoints" / LEGACY_STATE_FILE).exists():
        raise older_version_error(out / "checkpoints" / LEGACY_STATE_FILE)  # never start an old run over silently
    saved: dict[str, Any] | None = load_state(state_file, SFT_STATE_FORMAT) if resume and state_file.exists() else None
    policy = _initial_policy(cfg, data, out, saved).to(cfg.device)
    stages = cfg.stages or [StageConfig(name, 1000) for name in policy.sft_stages]
    _check_stages(policy, stages)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    generator = torch.Generator().manual_seed(cfg.seed)
    progress = _Progress()
    if saved is not None:
        progress = _Progress(**saved["progress"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        _truncate_metrics(out, progress.step)
    logger = RunLogger(out, step_key=STEP_KEY, logging=cfg.logging, config=to_dict(cfg))
    try:
        for index in range(progress.stage, len(stages)):
            progress.stage = index
            _run_stage(cfg, policy, data, stages[index], progress, generator, out, logger, saved)
            saved = None
            progress = _Progress(index + 1, 0, progress.step)
        final = save_policy(policy, out / FINAL_CHECKPOINT, _notes(cfg, data, progress, "done"))
        _write_state(state_file, progress, None, None, generator, FINAL_CHECKPOINT)
    finally:
        logger.close()
    return final


def demo_paths(cfg: SftConfig) -> list[str]:
    """The demos a run trains on: its files, or those its `collect` section makes in its folder."""
    if cfg.collect is None:
        return list(cfg.demos)
    return [str(path) for _, _, path in planned_demos(cfg.collect, Path(cfg.out_dir) / "demos", "collect")]


def load_chunk_dataset(cfg: SftConfig) -> ChunkDataset:
    paths = demo_paths(cfg)
    if not paths:
        raise ConfigError("demos: the sft config lists no demo files (and has no collect section)")
    obs = cfg.policy.obs
    keys = list(dict.fromkeys([*obs.state_keys, *obs.image_keys]))
    sets = [s for path in paths for s in read_demos(path, keys, cfg.num_demos, cfg.lerobot_keys, cfg.lerobot_benchmark)]
    data = ChunkDataset(sets, cfg.policy.chunk_size, obs.state_keys, obs.image_keys)
    if cfg.task_table is not None:
        _use_benchmark_tasks(data, cfg.task_table)
    return data


def _use_benchmark_tasks(data: ChunkDataset, benchmark: str) -> None:
    """The data's task ids re-expressed in `benchmark`'s task table (the one a new policy is built with)."""
    from ript_fast.envs.registry import task_instructions

    try:
        table = task_instructions(benchmark)
    except ValueError as err:
        raise ConfigError(f"task_table: {str(err).removeprefix('name: ')}") from None
    missing = sorted(set(data.task_names) - set(table))
    if missing:
        raise ConfigError(f"task_table: {benchmark} has no task {missing}: the demos' tasks must be among its tasks")
    data.use_task_table(list(table), list(table.values()))


def _initial_policy(cfg: SftConfig, data: ChunkDataset, out: Path, saved: dict[str, Any] | None) -> Policy:
    """A resumed run's weights (the file its saved state names), the init checkpoint (possibly a multi-task
    policy fine-tuned here on some of its tasks: the data then takes its task table), or a new policy fitted to
    the data."""
    family = {"family": cfg.policy.family}  # a checkpoint of another family is refused, not half-loaded
    if saved is None and not cfg.init_checkpoint:
        policy = build_policy(cfg.policy, data.spec)
        policy.fit_normalizers(data.states, data.actions)
        return policy
    path = out / saved["weights"] if saved is not None else cfg.init_checkpoint
    policy = load_policy(path, config_overrides=family)
    try:
        data.use_task_table(policy.spec.task_names, policy.spec.instructions)
    except ValueError as err:
        raise ConfigError(f"init_checkpoint {path}: {err}") from err
    return policy


def _check_stages(policy: Policy, stages: list[StageConfig]) -> None:
    for stage in stages:
        if stage.name not in policy.sft_stages:
            raise ConfigError(f"stages: {stage.name!r} is not a {policy.family} stage; use {list(policy.sft_stages)}")


def _cosine(stage: StageConfig) -> Any:
    def factor(step: int) -> float:
        t = min(step / max(stage.steps, 1), 1.0)
        return stage.min_lr_ratio + (1 - stage.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return factor


def _run_stage(
    cfg: SftConfig,
    policy: Policy,
    data: ChunkDataset,
    stage: StageConfig,
    progress: _Progress,
    generator: torch.Generator,
    out: Path,
    logger: RunLogger,
    saved: dict[str, Any] | None,
) -> None:
    from tqdm import tqdm

    params = policy.sft_parameters(stage.name)
    for p in policy.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(decay_groups(params, policy, stage.lr, stage.weight_decay, stage.name))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine(stage))
    if saved is not None and saved["optimizer"] is not None:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    policy.train()
    with tqdm(
        total=stage.steps, initial=progress.stage_step, desc=f"sft {stage.name}", disable=not cfg.progress
    ) as bar:  # closed before an error or a stop is reported
        start = time.perf_counter()
        while progress.stage_step < stage.steps:
            loss, metrics = policy.sft_loss(stage.name, data.sample(stage.batch_size, generator))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
            optimizer.step()
            scheduler.step()
            progress.stage_step += 1
            progress.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
            if progress.stage_step % cfg.log_every == 0 or progress.stage_step == stage.steps:
                record = {f"{stage.name}/{k}": v for k, v in metrics.items()}
                record.update(
                    {
                        STEP_KEY: progress.step,
                        "stage": stage.name,
                        f"{stage.name}/grad_norm": float(grad_norm),
                        f"{stage.name}/lr": scheduler.get_last_lr()[0],
                        "elapsed_s": time.perf_counter() - start,
                    }
                )
                logger.log(record)
            if progress.stage_step % cfg.checkpoint_every == 0 and progress.stage_step < stage.steps:
                _checkpoint(cfg, policy, data, progress, optimizer, scheduler, generator, out)
    _checkpoint(cfg, policy, data, progress, optimizer, scheduler, generator, out)
    save_policy(policy, out / "checkpoints" / f"{stage.name}.safetensors", _notes(cfg, data, progress, stage.name))
    logger.plot("loss.png", PlotSpec(tuple(f"{s}/loss" for s in policy.sft_stages), "SFT loss", "loss"))


def _checkpoint(
    cfg: SftConfig,
    policy: Policy,
    data: ChunkDataset,
    progress: _Progress,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    out: Path,
) -> None:
    """New weights under a new name, then the train state that names them, then the older weights removed: a
    kill at any moment leaves a state whose weights exist, so the resume is exact (Ctrl-C and SIGTERM wait)."""
    folder = out / "checkpoints"
    weights = folder / f"step_{progress.step:08d}.safetensors"
    with safe_section():
        save_policy(policy, weights, _notes(cfg, data, progress, "latest"))
        _write_state(folder / STATE_FILE, progress, optimizer, scheduler, generator, str(weights.relative_to(out)))
        for old in folder.glob("step_*.safetensors"):
            if old != weights:
                old.unlink(missing_ok=True)


def _write_state(
    path: Path,
    progress: _Progress,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    generator: torch.Generator,
    weights: str,
) -> None:
    """The resume state; `weights`: the policy file (relative to the run folder) it belongs with."""
    state = {
        "progress": dataclasses.asdict(progress),
        "weights": weights,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    atomic_write(path, lambda tmp: save_state(tmp, state, SFT_STATE_FORMAT))  # a state file: reading runs no code


def _notes(cfg: SftConfig, data: ChunkDataset, progress: _Progress, stage: str) -> dict[str, Any]:
    return {
        "producer": "sft",
        "stage": stage,
        "step": progress.step,
        "demos": demo_paths(cfg),
        "num_episodes": data.num_episodes,
        "num_samples": len(data),
    }


def _truncate_metrics(out: Path, step: int) -> None:
    """Drops metric lines logged after the checkpoint being resumed (they will be logged again)."""
    kept = [r for r in read_metrics(out, STEP_KEY) if r[STEP_KEY] <= step]
    atomic_write_text(out / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in kept))
