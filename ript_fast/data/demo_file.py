"""Demonstration files in the robomimic / LIBERO HDF5 layout: one writer, one validating reader.

Layout (what LIBERO's and robomimic's datasets use, so their files load with the same reader):

    data/                      attrs: env_args (JSON: env_name, env_kwargs), problem_info (JSON, LIBERO:
                                      language_instruction, problem_name), total (samples); files written
                                      here add ript_fast (JSON: collector settings, version)
    data/demo_<i>/             attrs: num_samples
        actions   (T, A)       float
        obs/<key> (T, ...)     e.g. state (T, 39) for MetaWorld; agentview_rgb (T, H, W, 3) uint8, joint_states,
                               ee_pos, gripper_states for LIBERO
        states    (T, S)       the env's full state before each step: states[0] is the episode's context
        rewards   (T,), dones (T,)

Every problem with a file (not HDF5, missing group/key, wrong shape, lengths that disagree) is a
`DemoFileError` whose message names the file and the key, raised before anything is trained on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ript_fast.train.atomic import atomic_path

_DEMO_KEY = re.compile(r"^demo_(\d+)$")


class DemoFileError(ValueError):
    """A demo file is missing, not HDF5, or not in the expected layout; the message names file and key."""


@dataclass
class Episode:
    """One demonstration, all arrays with the same leading length T."""

    actions: np.ndarray  # (T, A) float32
    obs: dict[str, np.ndarray]  # key -> (T, ...)
    states: np.ndarray  # (T, S) float64; may be (T, 0) when a file stores no states
    rewards: np.ndarray  # (T,) float32
    dones: np.ndarray  # (T,) uint8

    def __len__(self) -> int:
        return int(self.actions.shape[0])


@dataclass
class DemoSet:
    """The episodes of one file and what they are demonstrations of."""

    path: Path
    env_name: str  # e.g. metaworld/reach-v3, or LIBERO's env class name
    task_name: str
    instruction: str
    episodes: list[Episode]
    attrs: dict[str, Any] = field(default_factory=dict)  # the parsed `data` attributes


def write_demo_file(
    path: str | Path,
    episodes: list[Episode],
    env_name: str,
    task_name: str,
    instruction: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Writes `episodes` atomically (a reader never sees a half-written file) and returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": env_name, "type": "ript_fast", "env_kwargs": {}})
        data.attrs["problem_info"] = json.dumps({"language_instruction": instruction, "problem_name": task_name})
        data.attrs["ript_fast"] = json.dumps(extra or {})
        data.attrs["total"] = int(sum(len(ep) for ep in episodes))
        for i, ep in enumerate(episodes):
            grp = data.create_group(f"demo_{i}")
            grp.attrs["num_samples"] = len(ep)
            grp.create_dataset("actions", data=ep.actions.astype(np.float32))
            grp.create_dataset("states", data=ep.states.astype(np.float64))
            grp.create_dataset("rewards", data=ep.rewards.astype(np.float32))
            grp.create_dataset("dones", data=ep.dones.astype(np.uint8))
            for key, value in ep.obs.items():
                grp.create_dataset(f"obs/{key}", data=value, compression="gzip" if value.dtype == np.uint8 else None)
    return path


def read_demo_file(path: str | Path, obs_keys: list[str] | None = None, max_demos: int | None = None) -> DemoSet:
    """Reads (the first `max_demos`) episodes with the given obs keys (None: all of them), validated."""
    path = Path(path)
    if not path.exists():
        raise DemoFileError(f"{path}: no such demo file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DemoFileError(f"{path}: not a readable HDF5 file ({err})") from None
    with f:
        data = _group(f, "data", path)
        attrs = _parse_attrs(data, path)
        names = _demo_names(data, path)[:max_demos]
        episodes = [_read_episode(_group(data, name, path), f"data/{name}", path, obs_keys) for name in names]
    env_args = attrs.get("env_args", {})
    problem = attrs.get("problem_info", {})
    task = str(problem.get("problem_name") or path.stem.removesuffix("_demo"))
    return DemoSet(path, str(env_args.get("env_name", "")), task, _instruction(problem, task), episodes, attrs)


def _group(parent: h5py.Group, key: str, path: Path) -> h5py.Group:
    node = parent.get(key)
    where = f"{parent.name.strip('/')}/{key}".strip("/")
    if node is None:
        raise DemoFileError(f"{path}: missing group {where!r}")
    if not isinstance(node, h5py.Group):
        raise DemoFileError(f"{path}: {where!r} must be a group, found a dataset")
    return node


def _parse_attrs(data: h5py.Group, path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.attrs.items():
        text = value.decode() if isinstance(value, bytes) else value
        if key in ("env_args", "problem_info", "ript_fast") and isinstance(text, str):
            try:
                out[key] = json.loads(text)
            except json.JSONDecodeError:
                raise DemoFileError(f"{path}: attribute data.attrs[{key!r}] is not valid JSON") from None
        else:
            out[key] = text
    return out


def _demo_names(data: h5py.Group, path: Path) -> list[str]:
    numbered = sorted((int(m.group(1)), k) for k in data if (m := _DEMO_KEY.match(k)))
    if not numbered:
        raise DemoFileError(f"{path}: group 'data' holds no demo_<i> groups")
    return [k for _, k in numbered]


def _dataset(grp: h5py.Group, key: str, where: str, path: Path, ndim: tuple[int, ...]) -> np.ndarray:
    node = grp.get(key)
    if node is None:
        raise DemoFileError(f"{path}: missing key {where}/{key}")
    if not isinstance(node, h5py.Dataset):
        raise DemoFileError(f"{path}: {where}/{key} must be a dataset, found a group")
    if node.ndim not in ndim:
        raise DemoFileError(
            f"{path}: {where}/{key} has shape {node.shape}; expected {' or '.join(map(str, ndim))} dims"
        )
    return node[()]


def _read_episode(grp: h5py.Group, where: str, path: Path, obs_keys: list[str] | None) -> Episode:
    actions = _dataset(grp, "actions", where, path, (2,)).astype(np.float32)
    length = actions.shape[0]
    if length == 0:
        raise DemoFileError(f"{path}: {where}/actions is empty")
    obs_grp = _group(grp, "obs", path) if obs_keys is None or obs_keys else None
    keys = list(obs_grp) if obs_grp is not None and obs_keys is None else list(obs_keys or [])
    obs = {k: _dataset(obs_grp, k, f"{where}/obs", path, (1, 2, 3, 4)) for k in keys} if obs_grp is not None else {}
    states = (
        _dataset(grp, "states", where, path, (1, 2)).astype(np.float64) if "states" in grp else np.zeros((length, 0))
    )
    if states.ndim == 1:  # robomimic stores an empty (0,) array when states were not recorded
        states = states.reshape(length, -1) if states.size else np.zeros((length, 0))
    rewards = _dataset(grp, "rewards", where, path, (1,)).astype(np.float32) if "rewards" in grp else np.zeros(length)
    dones = _dataset(grp, "dones", where, path, (1,)).astype(np.uint8) if "dones" in grp else np.zeros(length)
    for key, arr in [
        *(("obs/" + k, v) for k, v in obs.items()),
        ("states", states),
        ("rewards", rewards),
        ("dones", dones),
    ]:
        if arr.shape[0] != length:
            raise DemoFileError(f"{path}: {where}/{key} has {arr.shape[0]} steps but actions has {length}")
    return Episode(actions, obs, states, rewards.astype(np.float32), dones.astype(np.uint8))


def _instruction(problem: dict[str, Any], task: str) -> str:
    """LIBERO's language_instruction (a string, or a list of words in some releases), else the task name."""
    text = problem.get("language_instruction")
    if isinstance(text, list):
        text = " ".join(map(str, text))
    return str(text) if text else task.replace("_", " ").replace("-", " ")
