"""Dataset statistics of an OpenVLA-OFT checkpoint (`dataset_statistics.json`) and the BOUNDS_Q99 maps.

The official evaluation reads the statistics from dataset_statistics.json (not config.json's norm_stats) under an
"un-normalization key", the dataset name: LIBERO eval passes the suite name (`libero_goal`) and falls back to
`<name>_no_noops`, the name the OFT checkpoints were trained under.

- proprio -> model: 2 (x - q01) / (q99 - q01 + 1e-8) - 1 where the mask is set (proprio has no mask: all set),
  then clipped to [-1, 1];
- model -> action: 0.5 (a + 1) (q99 - q01 + 1e-8) + q01 where the action mask is set (the gripper dimension is
  not: it passes through); not clipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ript_fast.policies.openvla_oft.errors import FolderError

EPS = 1e-8


@dataclass(frozen=True)
class Bounds:
    """The q01/q99 bounds of one quantity and which of its dimensions are normalized."""

    low: np.ndarray
    high: np.ndarray
    mask: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.low.shape[0])


@dataclass(frozen=True)
class DatasetStatistics:
    unnorm_key: str
    action: Bounds
    proprio: Bounds | None


def resolve_unnorm_key(stats: dict[str, Any], key: str | None, path: Path) -> str:
    """The dataset name to read: `key`, else `key`_no_noops; with no key, the file's only dataset."""
    if key is None:
        if len(stats) != 1:
            raise FolderError(path, "unnorm_key", f"must be given: the file has several datasets {sorted(stats)}")
        return next(iter(stats))
    for candidate in (key, f"{key}_no_noops"):
        if candidate in stats:
            return candidate
    raise FolderError(path, key, f"is not a dataset of this file (it has {sorted(stats)})")


def _bounds(entry: Any, path: Path, where: str, with_mask: bool) -> Bounds:
    if not isinstance(entry, dict):
        raise FolderError(path, where, "is missing or not an object")
    arrays = {}
    for name in ("q01", "q99"):
        try:
            arrays[name] = np.asarray(entry[name], dtype=np.float64)
        except KeyError:
            raise FolderError(path, f"{where}.{name}", "is missing") from None
        except (TypeError, ValueError):
            raise FolderError(path, f"{where}.{name}", "is not a list of numbers") from None
        if arrays[name].ndim != 1 or not np.isfinite(arrays[name]).all():
            raise FolderError(path, f"{where}.{name}", "must be a flat list of finite numbers")
    if arrays["q01"].shape != arrays["q99"].shape:
        raise FolderError(path, f"{where}.q99", "has another length than q01")
    mask = np.ones(arrays["q01"].shape, dtype=bool)
    if with_mask and "mask" in entry:
        mask = np.asarray(entry["mask"], dtype=bool)
        if mask.shape != arrays["q01"].shape:
            raise FolderError(path, f"{where}.mask", "has another length than q01")
    return Bounds(low=arrays["q01"], high=arrays["q99"], mask=mask)


def read_statistics(stats: dict[str, Any], unnorm_key: str | None, path: Path, need_proprio: bool) -> DatasetStatistics:
    """The statistics of one dataset of a loaded dataset_statistics.json (`path` names it in errors)."""
    key = resolve_unnorm_key(stats, unnorm_key, path)
    entry = stats[key]
    if not isinstance(entry, dict):
        raise FolderError(path, key, "is not an object")
    action = _bounds(entry.get("action"), path, f"{key}.action", with_mask=True)
    proprio = _bounds(entry.get("proprio"), path, f"{key}.proprio", with_mask=False) if need_proprio else None
    return DatasetStatistics(unnorm_key=key, action=action, proprio=proprio)


def normalize_proprio(proprio: np.ndarray, bounds: Bounds) -> np.ndarray:
    """Raw proprio (..., D) -> the model's input in [-1, 1] (official `normalize_proprio`)."""
    scaled = 2 * (proprio - bounds.low) / (bounds.high - bounds.low + EPS) - 1
    return np.clip(np.where(bounds.mask, scaled, proprio), -1.0, 1.0)


def unnormalize_actions(actions: np.ndarray, bounds: Bounds, eps: float = EPS) -> np.ndarray:
    """Normalized actions (..., D) -> the dataset's action units (OFT's `_unnormalize_actions`; OpenVLA's
    `predict_action` has no epsilon: eps=0)."""
    return np.where(bounds.mask, 0.5 * (actions + 1) * (bounds.high - bounds.low + eps) + bounds.low, actions)
