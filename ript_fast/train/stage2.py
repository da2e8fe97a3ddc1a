"""The stage-2 policy a RIPT run starts from: a given checkpoint, or one made here from scripted demos.

With no `init` checkpoint, `ript-fast train` collects `demos.num_demos` scripted-expert demonstrations per
task and runs SFT with the `sft` section of the config, both inside the run folder (`demos/`, `sft/`).
Both are cached for a resumed run: the demos are reused when the settings they were collected with match the
config, the SFT folder when its config matches (`run_sft` in `auto` mode), and an SFT killed half-way
resumes from its own checkpoint; a mismatch is refused naming the key.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ript_fast.data.collect import collect_or_reuse
from ript_fast.data.contexts import ContextDataset
from ript_fast.data.sources import read_demos
from ript_fast.envs.registry import benchmark_of
from ript_fast.train.preflight import env_tasks
from ript_fast.train.run_config import TrainConfig
from ript_fast.train.sft import SftConfig, run_sft


def prepare_stage2_policy(cfg: TrainConfig, out: Path) -> Path:
    """Path of the policy checkpoint RIPT starts from (making it first when needed)."""
    if cfg.init is not None:
        return Path(cfg.init)
    collect_missing_demos(cfg, out)
    return run_sft(sft_config(cfg, out), out / "sft", mode="auto")


def recorded_config(cfg: TrainConfig, out: Path) -> TrainConfig:
    """The config as the run folder's config.yaml records it: the SFT section as the SFT stage really runs
    (its demo files, folder, seed, device), not the defaults the run overrides."""
    return cfg if cfg.init is not None else dataclasses.replace(cfg, sft=sft_config(cfg, out))


def sft_config(cfg: TrainConfig, out: Path) -> SftConfig:
    """The SFT stage's config: the run's `sft` section on the run's demos, seed and device, in `out/sft`."""
    return dataclasses.replace(
        cfg.sft,
        demos=[str(p) for p in demo_files(cfg, out)],
        num_demos=cfg.demos.num_demos,
        lerobot_benchmark=_lerobot_benchmark(cfg, out),
        out_dir=str(out / "sft"),
        seed=cfg.seed,
        device=cfg.device,
        progress=cfg.progress,
    )


def demo_files(cfg: TrainConfig, out: Path) -> list[Path]:
    """The run's demo files: the configured ones, or one per task in `out/demos/` (see collect_missing_demos)."""
    if cfg.demos.files:
        return [Path(f) for f in cfg.demos.files]
    return [out / "demos" / f"{task}.hdf5" for task in env_tasks(cfg)]


def collect_missing_demos(cfg: TrainConfig, out: Path) -> None:
    """Collects the demos of `demo_files` that are not there yet; those that are (an earlier start of this run)
    are reused only when they were collected with the settings the config asks for."""
    if cfg.demos.files:
        return
    prefix = cfg.env_names[0].split("/", 1)[0]
    d = cfg.demos
    for task, path in zip(env_tasks(cfg), demo_files(cfg, out), strict=True):
        collect_or_reuse(f"{prefix}/{task}", d.num_demos, path, d.noise_std, d.seed, "demos", cfg.progress)


def demo_context_dataset(cfg: TrainConfig, out: Path) -> ContextDataset:
    """The paper's default context dataset: the initial states of the SFT demos (Sec. 4.1)."""
    collect_missing_demos(cfg, out)  # a run from a given `init` policy still needs demos for its contexts
    keys, benchmark = cfg.sft.lerobot_keys, _lerobot_benchmark(cfg, out)
    sets = [s for path in demo_files(cfg, out) for s in read_demos(path, [], lerobot_keys=keys, benchmark=benchmark)]
    return ContextDataset.from_demos(sets, max_per_task=cfg.demos.num_demos)


def _lerobot_benchmark(cfg: TrainConfig, out: Path) -> str | None:
    """The benchmark a run's LeRobot demos name their tasks in: the SFT section's, else the run's env's; None when
    no demo source is a LeRobot folder (the SFT config then records what earlier versions did)."""
    if not any(path.is_dir() for path in demo_files(cfg, out)):
        return cfg.sft.lerobot_benchmark
    return cfg.sft.lerobot_benchmark or benchmark_of(cfg.env)
