"""Checks that a configured torch device exists on this machine, before any demo, SFT or env work.

Why: `device: cuda:1` on a one-GPU machine otherwise fails minutes into a run, after demos and SFT, with a
CUDA traceback.
"""

from __future__ import annotations

import torch

from ript_fast.config import ConfigError


def check_device(device: str, key: str = "device") -> torch.device:
    """The parsed device; a ConfigError naming `key` when it is malformed or absent here."""
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"{key}: {device!r} is not a torch device (e.g. cpu, cuda, cuda:0)") from None
    if parsed.type == "cpu":
        return parsed
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{key}: {device!r} asked for, but this machine has no CUDA device (use cpu)")
        if parsed.index is not None and parsed.index >= count:
            raise ConfigError(f"{key}: {device!r} asked for, but this machine has {count} CUDA device(s)")
        return parsed
    raise ConfigError(f"{key}: {device!r} is not supported (use cpu or cuda[:N])")
