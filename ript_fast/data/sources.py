"""A demo source by its path: an HDF5 demo file (robomimic/LIBERO layout) or a LeRobot dataset folder.

SFT and RIPT's demo contexts name their demos as paths (`demos=[...]`); this is the one place that tells the
two kinds apart, so both feed the same DemoSets to ChunkDataset and ContextDataset.

A LeRobot dataset names its tasks by their instruction text only ("open the middle drawer of the cabinet"), where
an env names them `goal/open_the_middle_drawer_of_the_cabinet` (LIBERO) or `reach-v3`: given the benchmark the
dataset comes from, each task text is matched to the benchmark's task of that instruction, so that a policy trained
on the dataset knows the env's tasks by their names (a task-conditioned policy's RIPT run checks them).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from pathlib import Path

from ript_fast.data.demo_file import DemoFileError, DemoSet, read_demo_file
from ript_fast.data.lerobot_dataset import read_lerobot_dataset


def read_demos(
    path: str | Path,
    obs_keys: list[str] | None = None,
    max_demos: int | None = None,
    lerobot_keys: Mapping[str, str] | None = None,
    benchmark: str | None = None,
) -> list[DemoSet]:
    """The DemoSets at `path`: a folder is a LeRobot dataset (one set per task, the first `max_demos` episodes
    of each; `lerobot_keys` maps our keys to its feature names; with a `benchmark` such as `libero/goal`, its
    tasks named as that benchmark's envs name them), anything else an HDF5 file (one set)."""
    if Path(path).is_dir():
        sets = read_lerobot_dataset(path, obs_keys, max_demos, lerobot_keys)
        if not benchmark:
            return sets
        from ript_fast.envs.registry import task_instructions

        instructions = task_instructions(benchmark)  # once per dataset (LIBERO reads its suite's task table)
        return [named_in(s, benchmark, instructions) for s in sets]
    return [read_demo_file(path, obs_keys=obs_keys, max_demos=max_demos)]


def named_in(demos: DemoSet, benchmark: str, instructions: Mapping[str, str]) -> DemoSet:
    """`demos` (a LeRobot task: its text) as the task of `benchmark` whose instruction (or name) it is (case, spacing
    and a final period aside): the env's task name and single-task env name; a text that is no task of the benchmark
    is a DemoFileError naming the dataset, the text and the closest instructions. `instructions`: the benchmark's
    task -> instruction (`registry.task_instructions`)."""
    from ript_fast.data.contexts import task_env_name

    by_text = {_plain(task): task for task in instructions} | {_plain(t): task for task, t in instructions.items()}
    task = by_text.get(_plain(demos.instruction))
    if task is None:
        close = difflib.get_close_matches(_plain(demos.instruction), list(by_text), n=3, cutoff=0.6)
        hint = f" (closest: {'; '.join(repr(c) for c in close)})" if close else ""
        raise DemoFileError(f"{demos.path}: task {demos.instruction!r} is no task of {benchmark}{hint}")
    return dataclasses.replace(demos, env_name=task_env_name(benchmark, task), task_name=task)


def _plain(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")
