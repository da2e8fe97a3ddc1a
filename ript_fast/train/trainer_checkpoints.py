"""Iteration checkpoints of a RIPT run: the policy plus everything needed to continue exactly.

Each checkpoint is a folder `iter_XXXXXX/` holding `policy.safetensors` and `trainer_state.safetensors`
(optimizer, schedule, context samplers, counters: a state file, `state_file.py`, whose reading executes
nothing, since run folders travel). It is written under a temporary name and renamed into place, so a
folder with the final name is always complete: a run killed mid-write (SIGKILL included) resumes from the
previous one. The newest `keep` folders are kept.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ript_fast.policies.base import Policy
from ript_fast.train.atomic import fsync_path
from ript_fast.train.checkpoint import CheckpointError, save_policy
from ript_fast.train.state_file import TRAINER_STATE_FORMAT, load_state, older_version_error, save_state

PREFIX = "iter_"
POLICY_FILE = "policy.safetensors"
STATE_FILE = "trainer_state.safetensors"
LEGACY_STATE_FILE = "trainer_state.pt"  # the pickle ript-fast wrote before state files: refused, never read


@dataclass
class SavedIteration:
    iteration: int
    folder: Path

    @property
    def policy_path(self) -> Path:
        return self.folder / POLICY_FILE

    def load_state(self) -> dict[str, Any]:
        """The trainer state; CheckpointError naming the file if it is missing, damaged or of an older version."""
        path = self.folder / STATE_FILE
        legacy = self.folder / LEGACY_STATE_FILE
        if not path.exists() and legacy.exists():
            raise older_version_error(legacy)
        state = load_state(path, TRAINER_STATE_FORMAT)
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a trainer state")
        return state


class TrainerCheckpoints:
    """The `checkpoints/` folder of a run."""

    def __init__(self, root: str | Path, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {keep}")
        self.root = Path(root)
        self.keep = keep

    def save(self, iteration: int, policy: Policy, state: dict[str, Any]) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"{PREFIX}{iteration:06d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=self.root))
        try:
            save_policy(policy, tmp / POLICY_FILE, {"producer": "ript", "iteration": iteration})
            save_state(tmp / STATE_FILE, state, TRAINER_STATE_FORMAT)
            fsync_path(tmp / STATE_FILE)
            if final.exists():  # a re-run of an iteration after a kill between rename and metrics
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_path(self.root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._prune()
        return final

    def saved(self) -> list[SavedIteration]:
        """Complete checkpoints, oldest first (temporary folders of interrupted writes are ignored)."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in self.root.iterdir():
            name = folder.name
            if folder.is_dir() and name.startswith(PREFIX) and name[len(PREFIX) :].isdigit():
                found.append(SavedIteration(int(name[len(PREFIX) :]), folder))
        return sorted(found, key=lambda s: s.iteration)

    def latest(self) -> SavedIteration | None:
        saved = self.saved()
        return saved[-1] if saved else None

    def _prune(self) -> None:
        for old in self.saved()[: -self.keep]:
            shutil.rmtree(old.folder, ignore_errors=True)
        for leftover in self.root.glob(f".{PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
