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

Every problem with a file is a `DemoFileError` whose message names the file, the demo and the key, raised
when the file is opened, before anything is trained on it: not HDF5, a missing group or key, a wrong shape or
a non-numeric dtype, lengths that disagree, NaN/inf in a float array (it would train silently into NaN
weights), demos of one file that disagree on action dim, per-step obs shapes or state width, and a
`states[0]` that declares itself a context (ript_fast.envs.contexts) but is cut short or damaged. Reading
never runs code from the file: h5py unpickles nothing, and only numeric datasets are read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ript_fast.envs import contexts as context_layout
from ript_fast.train.atomic import atomic_path

_DEMO_KEY = re.compile(r"^demo_(\d+)$")
NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float: all a demo's arrays may hold


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
    source: str = ""  # its group in the file it was read from (data/demo_<i>), for error messages

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def step_shapes(self) -> dict[str, tuple[int, ...]]:
        """The per-step shape (beyond T) of every array that training stacks across episodes."""
        obs = {f"obs/{key}": value.shape[1:] for key, value in self.obs.items()}
        return {"actions": self.actions.shape[1:], **obs, "states": self.states.shape[1:]}


@dataclass
class DemoSet:
    """The episodes of one file and what they are demonstrations of."""

    path: Path
    env_name: str  # e.g. metaworld/reach-v3, or LIBERO's env class name
    task_name: str
    instruction: str
    episodes: list[Episode]
    attrs: dict[str, Any] = field(default_factory=dict)  # the parsed `data` attributes

    def where(self, index: int) -> str:
        """'<file>: data/demo_<i>' for episode `index` (its position when it was not read from a file)."""
        return f"{self.path}: {self.episodes[index].source or f'episode {index}'}"


def shape_difference(first: tuple[str, Episode], other: tuple[str, Episode], keys: Sequence[str] = ()) -> str | None:
    """How two (label, episode) pairs disagree on the per-step shape of the first of `keys` (default: all of
    their arrays) that differs, in words; None when they agree. Stacked into one dataset, disagreeing
    episodes would fail with an anonymous numpy error, or worse, flatten into states that mean different things."""
    (first_label, a), (other_label, b) = first, other
    shapes_a, shapes_b = a.step_shapes(), b.step_shapes()
    for key in keys or dict.fromkeys([*shapes_a, *shapes_b]):
        shape_a, shape_b = shapes_a.get(key), shapes_b.get(key)
        if shape_a != shape_b:
            return f"{other_label}/{key} {_shape_words(shape_b)} but {first_label}/{key} {_shape_words(shape_a)}"
    return None


def _shape_words(shape: tuple[int, ...] | None) -> str:
    return "is absent" if shape is None else f"has per-step shape {shape}"


def check_stored_context(row: np.ndarray, where: str) -> None:
    """Refuses a stored row that declares itself a context (ript_fast.envs.contexts) but is not a whole one:
    padded later to a batch's width, a cut-short row would restart a different, silently corrupt episode."""
    if context_layout.declares_layout(row):
        problem = context_layout.layout_problem(row)
        if problem is not None:
            raise DemoFileError(f"{where} {problem}")


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
    _check_same_shapes(episodes, path)
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
    if node.dtype.kind not in NUMERIC_KINDS:  # checked before reading: strings, objects, records are never loaded
        raise DemoFileError(f"{path}: {where}/{key} has dtype {node.dtype}; expected numbers (bool, int or float)")
    return node[()]


def _read_episode(grp: h5py.Group, where: str, path: Path, obs_keys: list[str] | None) -> Episode:
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: refused below, as trained
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
        if states.size:
            raise DemoFileError(
                f"{path}: {where}/states has shape {states.shape}; expected (T, S), or (0,) when none were recorded"
            )
        states = np.zeros((length, 0))
    rewards = _dataset(grp, "rewards", where, path, (1,)).astype(np.float32) if "rewards" in grp else np.zeros(length)
    dones = _dataset(grp, "dones", where, path, (1,)).astype(np.uint8) if "dones" in grp else np.zeros(length)
    named = {"actions": actions, **{f"obs/{k}": v for k, v in obs.items()}, "states": states, "rewards": rewards}
    for key, arr in [*named.items(), ("dones", dones)]:
        if arr.shape[0] != length:
            raise DemoFileError(f"{path}: {where}/{key} has {arr.shape[0]} steps but actions has {length}")
        check_finite(arr, f"{where}/{key}", path)
    if states.shape[1]:
        check_stored_context(states[0], f"{path}: {where}/states[0]")  # states[0] is the episode's context
    return Episode(actions, obs, states, rewards.astype(np.float32), dones.astype(np.uint8), where)


def check_finite(arr: np.ndarray, where: str, path: Path) -> None:
    """NaN/inf would train silently into NaN weights: refused naming `path` and `where` (shared by every demo
    reader). Only float arrays can hold them, so integer arrays (uint8 images, the bulk of an image dataset) cost
    nothing; a float array is summed first (one pass, no temporary: a sum is finite whenever every term is), and
    searched only when the sum is not."""
    if arr.dtype.kind != "f":
        return
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(arr.sum()):
            return
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad) == 0:  # large finite values overflowed the sum
        return
    index = tuple(int(i) for i in bad[0])
    raise DemoFileError(
        f"{path}: {where} holds {arr[index]} at step {index[0]} (index {index}, as {arr.dtype}): NaN/inf is refused"
    )


def _check_same_shapes(episodes: list[Episode], path: Path) -> None:
    """Every demo of a file must have the same action dim, per-step obs shapes and state width."""
    for ep in episodes[1:]:
        difference = shape_difference((episodes[0].source, episodes[0]), (ep.source, ep))
        if difference is not None:
            raise DemoFileError(f"{path}: {difference}; every demo of a file must agree")


def _instruction(problem: dict[str, Any], task: str) -> str:
    """LIBERO's language_instruction (a string, or a list of words in some releases), else the task name."""
    text = problem.get("language_instruction")
    if isinstance(text, list):
        text = " ".join(map(str, text))
    return str(text) if text else task.replace("_", " ").replace("-", " ")
