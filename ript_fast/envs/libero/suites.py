"""The five LIBERO suites: their tasks (LIBERO's own order), episode lengths, task ids and init states.

Names: `libero/<suite>/<task>` with suite one of spatial, object, goal, 10 (alias long) and 90 (LIBERO's
`libero_<suite>` folders), task a LIBERO task name or its index in the suite (LIBERO's task order 0, the
order of its benchmark tables); `libero/<suite>` is the whole suite, env i running task i % len.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ript_fast.envs.libero.setup import config_path, ensure_libero

SUITES = ("spatial", "object", "goal", "10", "90")
SUITE_ALIASES = {"long": "10", "libero_10": "10", "libero_90": "90"} | {f"libero_{s}": s for s in SUITES}

# Max control steps per episode: LIBERO's evaluation lengths as the RIPT/OpenVLA-OFT runners use them
# (QueST's runner uses 600 for every suite: pass max_episode_steps=600 to match it).
MAX_STEPS = {"spatial": 220, "object": 280, "goal": 300, "10": 520, "90": 400}

# Context task ids: above MetaWorld's (0..49) so rows of the two never pass for each other.
TASK_ID_BASE = 1000


@dataclass(frozen=True)
class LiberoTask:
    suite: str  # one of SUITES
    index: int  # in the suite, LIBERO's order
    name: str  # LIBERO's task name (the bddl file's stem)
    task_id: int  # the context task id

    @property
    def folder(self) -> str:
        return f"libero_{self.suite}"

    @property
    def env_name(self) -> str:
        return f"libero/{self.suite}/{self.name}"

    @property
    def instruction(self) -> str:
        """The task's instruction as LIBERO's benchmark (and so its demos' task embeddings and the LeRobot datasets
        made from them) words it: from the task name, which for some tasks differs from the BDDL file's own
        (language ...) line."""
        from libero.libero.benchmark import grab_language_from_filename

        return str(grab_language_from_filename(self.name + ".bddl"))


def suite_key(name: str) -> str:
    """The canonical suite key of a suite name or alias; ValueError naming close matches otherwise."""
    key = SUITE_ALIASES.get(name, name)
    if key not in SUITES:
        close = difflib.get_close_matches(name, list(SUITES) + list(SUITE_ALIASES), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"name: unknown LIBERO suite {name!r}{hint} (one of {', '.join(SUITES)}, or long)")
    return key


def suite_tasks(suite: str) -> list[LiberoTask]:
    """Every task of a suite, in LIBERO's order."""
    key = suite_key(suite)
    ensure_libero()
    from libero.libero.benchmark import libero_task_map

    base = TASK_ID_BASE + sum(len(libero_task_map[f"libero_{s}"]) for s in SUITES[: SUITES.index(key)])
    names = libero_task_map[f"libero_{key}"]
    return [LiberoTask(key, i, n, base + i) for i, n in enumerate(names)]


def resolve(name: str) -> list[LiberoTask]:
    """The tasks `libero/<suite>[/<task name or index>]` stands for."""
    parts = name.split("/")
    if len(parts) not in (2, 3) or parts[0] != "libero":
        raise ValueError(f"name: {name!r} is not of the form 'libero/<suite>' or 'libero/<suite>/<task>'")
    tasks = suite_tasks(parts[1])
    if len(parts) == 2:
        return tasks
    task = parts[2]
    if task.isdigit():
        if int(task) >= len(tasks):
            raise ValueError(f"name: task index {task} is out of range for libero/{parts[1]} ({len(tasks)} tasks)")
        return [tasks[int(task)]]
    by_name = {t.name: t for t in tasks}
    if task in by_name:
        return [by_name[task]]
    close = difflib.get_close_matches(task, list(by_name), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"name: libero/{parts[1]} has no task {task!r}{hint}")


def bddl_path(task: LiberoTask) -> Path:
    return Path(ensure_libero().get_libero_path("bddl_files")) / task.folder / f"{task.name}.bddl"


def init_states(task: LiberoTask) -> np.ndarray:
    """The task's shipped init states (its *.pruned_init file): (50, 1 + nq + nv) rows [time, qpos, qvel]."""
    libero_root = ensure_libero()
    path = Path(libero_root.get_libero_path("init_states")) / task.folder / f"{task.name}.pruned_init"
    return read_shipped_init_states(path, Path(libero_root.__file__).parent)


def read_shipped_init_states(path: Path, package: Path) -> np.ndarray:
    """Reads a *.pruned_init file: a pickled numpy array, as LIBERO ships it, and unpickling runs whatever code
    the pickle names. So only files inside the installed LIBERO package `package` are read (they are as trusted
    as its Python code); any other path, e.g. a LIBERO config whose `init_states` points elsewhere, is refused
    unread. Enforced here, on the resolved path (no symlink or `..` leads out), for every caller."""
    import torch

    resolved = path.resolve()
    if not resolved.is_relative_to(package.resolve()):
        raise ValueError(
            f"{path}: LIBERO init states are read only from the installed LIBERO package ({package}), as they are "
            f"pickles; point init_states in {config_path()} back at {package / 'init_files'}"
        )
    states = torch.load(resolved, weights_only=False)  # inside the installed package only: see above
    return np.ascontiguousarray(np.asarray(states, dtype=np.float64))
