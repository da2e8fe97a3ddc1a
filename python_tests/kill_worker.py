"""Run by test_resume.py: `ript-fast train` with a SIGKILL planted at the N-th pass through one point of the
trainer, so a kill lands exactly where a preemption hurts most:

  demos       the N-th batched scripted-expert step while demos are collected
  sft_step    the N-th SFT optimizer step (after its backward pass)
  sft_save    the N-th SFT checkpoint write (before it starts)
  sft_state   the N-th SFT state write (the checkpoint's new weights on disk, the state naming them not yet)
  rollout     the N-th rollout collection (mid-iteration, before its update)
  update      the N-th PPO update (after the rollouts, before the checkpoint)
  checkpoint  the N-th fsync of the checkpoint writer: odd N is inside a write (the files are in the
              temporary folder, not yet renamed into place), even N just after a rename

    python python_tests/kill_worker.py POINT N train ARGS...
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import torch

from ript_fast import cli, envs
from ript_fast.train import ript, sft, trainer_checkpoints

POINTS = {
    "demos": (envs, "expert_actions"),  # one batched expert step of demo collection
    "sft_step": (torch.nn.utils, "clip_grad_norm_"),  # one SFT optimizer step (RIPT's come after it)
    "sft_save": (sft, "save_policy"),  # an SFT checkpoint about to be written
    "sft_state": (sft, "_write_state"),  # an SFT checkpoint's weights written, its state not yet
    "rollout": (ript, "rollout_contexts"),
    "update": (ript, "ppo_update"),
    "checkpoint": (trainer_checkpoints, "fsync_path"),
}


def plant(module: Any, name: str, n: int) -> None:
    real: Callable[..., Any] = getattr(module, name)
    calls = 0

    def killed_on_nth(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(module, name, killed_on_nth)


if __name__ == "__main__":
    point, n = sys.argv[1], int(sys.argv[2])
    plant(*POINTS[point], n)
    sys.exit(cli.main(sys.argv[3:]))
