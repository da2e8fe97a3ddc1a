"""The optimizer of RIPT's update: AdamW over the policy's RL parameter groups, with the run's learning rates.

A policy says which of its parts train under RL and at which rate (`Policy.freeze_for_rl`: e.g. QueST's prior
only, or OpenVLA-OFT's LoRA and action head at their own rates); `ript.lr` / `ript.group_lr` /
`ript.weight_decay` override them. The schedule steps once per iteration: constant (the paper), or a cosine
to `lr * min_lr_ratio` at the last iteration.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ript_fast.config import ConfigError
from ript_fast.train.run_config import RiptConfig


def rl_optimizer(
    groups: list[dict[str, Any]], config: RiptConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW over `groups` (named parameter groups) with `config`'s overrides, and its per-iteration schedule."""
    optimizer = torch.optim.AdamW(_override_lrs(groups, config))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))


def lr_factor(step: int, config: RiptConfig) -> float:
    """The learning-rate multiplier after `step` iterations."""
    if config.lr_schedule == "constant":
        return 1.0
    t = min(step / max(config.iterations, 1), 1.0)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def _override_lrs(groups: list[dict[str, Any]], config: RiptConfig) -> list[dict[str, Any]]:
    unknown = set(config.group_lr) - {g["name"] for g in groups}
    if unknown:
        raise ConfigError(f"ript.group_lr names unknown parameter group(s) {sorted(unknown)}")
    for g in groups:
        if config.lr is not None:
            g["lr"] = config.lr
        if g["name"] in config.group_lr:
            g["lr"] = config.group_lr[g["name"]]
        if config.weight_decay is not None:
            g["weight_decay"] = config.weight_decay
    return groups
