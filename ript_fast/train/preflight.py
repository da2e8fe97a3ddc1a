"""Every check of a `ript-fast train` config that can run before demos, SFT or env creation.

Why: a run spends minutes collecting demos and training the stage-2 policy before RIPT starts. A mistake
found only then (a device this machine lacks, an `--init` policy of another task or action size, a task count
that does not divide the round) wastes those minutes and leaves a half-made run folder behind. These checks
read configs and checkpoint headers only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ript_fast.config import ConfigError, from_dict, merge, to_dict
from ript_fast.envs.registry import resolve_tasks
from ript_fast.policies.config import PolicyConfig
from ript_fast.policies.factory import check_policy_files, policy_class
from ript_fast.policies.openvla_oft.folder_policy import is_model_folder
from ript_fast.train.checkpoint import read_checkpoint_meta
from ript_fast.train.devices import check_device
from ript_fast.train.run_config import TrainConfig
from ript_fast.train.run_logger import check_logging

# Memory of one env the engine steps (a MetaWorld env object: ~21 MB RSS, measured; shared/ENVIRONMENT.md)
ENV_BYTES = 21 * 2**20
# The action size of each env family: MetaWorld's (x, y, z, gripper) and LIBERO's OSC_POSE delta + gripper
ACTION_DIMS = {"metaworld": 4, "libero": 7}


def check_train_config(cfg: TrainConfig) -> list[str]:
    """Runs every early check; returns the run's distinct tasks (in env order)."""
    tasks = env_tasks(cfg)
    check_device(cfg.device, "device")
    check_logging(cfg.logging, "logging")
    check_tasks_divide(cfg.ript.contexts_per_round, len(tasks))
    check_env_memory(cfg, len(tasks))
    meta = read_checkpoint_meta(cfg.init) if cfg.init is not None else None  # read once (an OFT folder: its heads)
    if meta is not None:
        check_init_checkpoint(cfg, meta, tasks)
    check_stage2_policy_files(cfg, meta)
    for i, path in enumerate(cfg.demos.files):
        if not Path(path).exists():  # an HDF5 file, or a LeRobot dataset folder
            raise ConfigError(f"demos.files[{i}]: no such demo file or dataset folder {path}")
    return tasks


def env_tasks(cfg: TrainConfig) -> list[str]:
    try:
        return list(dict.fromkeys(resolve_tasks(cfg.env)))
    except ValueError as err:
        raise ConfigError(f"env: {err}") from None


def check_tasks_divide(contexts_per_round: int, num_tasks: int) -> None:
    if contexts_per_round % num_tasks:
        raise ConfigError(
            f"ript.contexts_per_round ({contexts_per_round}) must be a multiple of the number of tasks "
            f"({num_tasks}): each round rolls out every task equally often"
        )


def check_env_memory(cfg: TrainConfig, num_tasks: int) -> None:
    """Refuses a run whose env batches (the rollout batch of contexts_per_round x K envs and the held-out
    batch, on every process of this machine) need more memory than this machine has: it would be killed by
    the kernel minutes in. (Total, not currently free memory: others' processes may end before the run.)"""
    per_process = cfg.ript.contexts_per_round * cfg.ript.group_size + cfg.contexts.eval_size * num_tasks
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun's ranks on this machine
    need = per_process * processes * ENV_BYTES
    total = total_memory()
    if total is not None and need > total:
        raise ConfigError(
            f"ript.contexts_per_round x ript.group_size + contexts.eval_size x tasks = {per_process} envs "
            f"(x {processes} process(es)) need ~{need / 2**30:.1f} GiB, this machine has {total / 2**30:.1f} GiB "
            "of memory: lower them"
        )


def total_memory() -> int | None:
    """MemTotal from /proc/meminfo in bytes (None where there is no such file)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_stage2_policy_files(cfg: TrainConfig, init_meta: dict[str, Any] | None) -> None:
    """The files the stage-2 policy reads besides its checkpoint (an OpenVLA-OFT folder, its scale-head file),
    as the run will build it: the `init` checkpoint's policy config (`init_meta`), or the SFT section's, with
    `policy` on top."""
    recorded = init_meta["policy"] if init_meta is not None else to_dict(cfg.sft.policy)
    policy = from_dict(PolicyConfig, merge(recorded, cfg.policy), "policy")
    oft_folder = cfg.init is not None and is_model_folder(cfg.init) and policy.family == "openvla_oft"
    if oft_folder and not policy.openvla_oft.scale_head_file:
        raise ConfigError(
            f"init {cfg.init}: an OpenVLA-OFT folder has no scale head to sample with; give RIPT's file "
            "(policy.openvla_oft.scale_head_file=...) or train one first (ript-fast sft --config "
            f"oft_scale_head_libero.yaml policy.openvla_oft.checkpoint={cfg.init} demos=[...])"
        )
    check_policy_files(policy)


def check_init_checkpoint(cfg: TrainConfig, meta: dict[str, Any], tasks: list[str]) -> None:
    """The `init` policy (its header: `meta`) must be of the configured family, act in this env's action space, and
    know its tasks."""
    path = cfg.init
    family = cfg.policy.get("family", meta["family"])
    if family != meta["family"]:
        raise ConfigError(f"init {path}: holds a {meta['family']!r} policy, but the config asks for family {family!r}")
    spec = meta["spec"]
    env_family = cfg.env_names[0].split("/", 1)[0]
    want = ACTION_DIMS.get(env_family)
    if want is not None and spec["action_dim"] != want:
        raise ConfigError(
            f"init {path}: the policy acts with {spec['action_dim']}-d actions, {env_family} envs take {want}-d"
        )
    if not policy_class(meta["family"]).task_conditioned:
        return  # it reads the instruction text: any task of the env is one it can be given
    unknown = [t for t in tasks if t not in spec["task_names"]]
    if unknown:
        raise ConfigError(f"init {path}: the policy was not trained on {unknown} (its tasks: {spec['task_names']})")
