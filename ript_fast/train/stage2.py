"""The stage-2 policy a RIPT run starts from: a given checkpoint, or one made here from scripted demos.

With no `init` checkpoint, `ript-fast train` collects `demos.num_demos` scripted-expert demonstrations per
task and runs SFT with the `sft` section of the config, both inside the run folder (`demos/`, `sft/`).
Both are cached: a second run (or a resumed one) with the same folder reuses them, and an SFT killed
half-way resumes from its own checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ript_fast.data.collect import collect_demos
from ript_fast.data.contexts import ContextDataset
from ript_fast.data.demo_file import read_demo_file
from ript_fast.envs.registry import resolve_tasks
from ript_fast.train.run_config import TrainConfig
from ript_fast.train.sft import FINAL_CHECKPOINT, run_sft


def prepare_stage2_policy(cfg: TrainConfig, out: Path) -> Path:
    """Path of the policy checkpoint RIPT starts from (making it first when needed)."""
    if cfg.init is not None:
        return Path(cfg.init)
    sft_dir = out / "sft"
    if (sft_dir / FINAL_CHECKPOINT).exists():
        return sft_dir / FINAL_CHECKPOINT
    sft = dataclasses.replace(
        cfg.sft,
        demos=[str(p) for p in demo_files(cfg, out)],
        num_demos=cfg.demos.num_demos,
        out_dir=str(sft_dir),
        seed=cfg.seed,
        device=cfg.device,
        progress=cfg.progress,
    )
    return run_sft(sft, sft_dir, resume=True)


def demo_files(cfg: TrainConfig, out: Path) -> list[Path]:
    """The run's demo files: the configured ones, or one per task collected into `out/demos/` (cached)."""
    if cfg.demos.files:
        return [Path(f) for f in cfg.demos.files]
    prefix = cfg.env_names[0].split("/", 1)[0]
    files = []
    for task in dict.fromkeys(t for name in cfg.env_names for t in resolve_tasks(name)):
        path = out / "demos" / f"{task}.hdf5"
        if not path.exists():
            collect_demos(
                f"{prefix}/{task}",
                cfg.demos.num_demos,
                path,
                noise=cfg.demos.noise_std,
                seed=cfg.demos.seed,
                progress=cfg.progress,
            )
        files.append(path)
    return files


def demo_context_dataset(cfg: TrainConfig, out: Path) -> ContextDataset:
    """The paper's default context dataset: the initial states of the SFT demos (Sec. 4.1)."""
    sets = [read_demo_file(path, obs_keys=[]) for path in demo_files(cfg, out)]
    return ContextDataset.from_demos(sets, max_per_task=cfg.demos.num_demos)
