"""A demo source by its path: an HDF5 demo file (robomimic/LIBERO layout) or a LeRobot dataset folder.

SFT and RIPT's demo contexts name their demos as paths (`demos=[...]`); this is the one place that tells the
two kinds apart, so both feed the same DemoSets to ChunkDataset and ContextDataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ript_fast.data.demo_file import DemoSet, read_demo_file
from ript_fast.data.lerobot_dataset import read_lerobot_dataset


def read_demos(
    path: str | Path,
    obs_keys: list[str] | None = None,
    max_demos: int | None = None,
    lerobot_keys: Mapping[str, str] | None = None,
) -> list[DemoSet]:
    """The DemoSets at `path`: a folder is a LeRobot dataset (one set per task, the first `max_demos` episodes
    of each; `lerobot_keys` maps our keys to its feature names), anything else an HDF5 file (one set)."""
    if Path(path).is_dir():
        return read_lerobot_dataset(path, obs_keys, max_demos, lerobot_keys)
    return [read_demo_file(path, obs_keys=obs_keys, max_demos=max_demos)]
