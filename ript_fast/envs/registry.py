"""Environment names -> MetaWorld task lists or LIBERO tasks, with errors that suggest close matches."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from metaworld import env_dict

from ript_fast.envs.metaworld.tasks import TASK_NAMES, TASKS

PREFIX = "metaworld/"
LIBERO_PREFIX = "libero/"

# Benchmark groups by MetaWorld's own lists, in MetaWorld's order (env i of a group batch runs task i % len).
GROUPS: dict[str, tuple[str, ...]] = {
    "ML45": tuple(env_dict.ML45_V3["train"]),
    "ML45-test": tuple(env_dict.ML45_V3["test"]),
    "ML10": tuple(env_dict.ML10_V3["train"]),
    "ML10-test": tuple(env_dict.ML10_V3["test"]),
    "MT10": tuple(env_dict.MT10_V3),
    "MT50": tuple(env_dict.MT50_V3),
}


def known_names() -> list[str]:
    return [PREFIX + t for t in TASK_NAMES] + [PREFIX + g for g in GROUPS]


def names_of(name: str | Sequence[str]) -> list[str]:
    """The name as a list of names, each a string."""
    if isinstance(name, str):
        return [name]
    if not name:
        raise ValueError("name: an empty list names no environment")
    for item in name:
        if not isinstance(item, str):
            raise TypeError(f"name: list items must be strings, got {type(item).__name__}")
    return list(name)


def is_libero(name: str | Sequence[str]) -> bool:
    """True for LIBERO names; ValueError if a list mixes LIBERO and MetaWorld (one engine batch each)."""
    flags = {n.startswith(LIBERO_PREFIX) for n in names_of(name)}
    if len(flags) > 1:
        raise ValueError("name: a batch cannot mix LIBERO and MetaWorld environments")
    return flags.pop()


def resolve_libero(name: str | Sequence[str]) -> list:
    """The LIBERO tasks (ript_fast.envs.libero.suites.LiberoTask) a name or list of names stands for.

    Without LIBERO this raises LiberoNotInstalled (an ImportError and a ValueError) naming the env and the
    install script, whichever of make_vec_env, resolve_tasks or the trainer asked."""
    from ript_fast.envs.libero.setup import LiberoNotInstalled
    from ript_fast.envs.libero.suites import resolve

    try:
        return [task for n in names_of(name) for task in resolve(n)]
    except LiberoNotInstalled as err:
        raise LiberoNotInstalled(f"name: {name!r} needs LIBERO: {err}") from None


def resolve_tasks(name: str | Sequence[str]) -> list[str]:
    """The tasks a name stands for, as the env's `task_names` spell them (the name after its family prefix):
    MetaWorld tasks (one task, a benchmark group, or a list of those, concatenated), or LIBERO's
    "<suite>/<task name>" for LIBERO names."""
    if is_libero(name):
        return [f"{t.suite}/{t.name}" for t in resolve_libero(name)]
    return [task for item in names_of(name) for task in _resolve_one(item)]


def _resolve_one(name: str) -> list[str]:
    if name.startswith(PREFIX):
        key = name[len(PREFIX) :]
        if key in GROUPS:
            return list(GROUPS[key])
        if key in TASK_NAMES:
            return [key]
    close = difflib.get_close_matches(name, known_names(), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"name: unknown environment {name!r}{hint} (e.g. 'metaworld/reach-v3', 'metaworld/ML45', 'libero/goal/0')"
    )


def task_instructions(name: str | Sequence[str]) -> dict[str, str]:
    """The instruction of each task `name` stands for, by the task name its envs report (`env.task_names`:
    `reach-v3`, `goal/open_the_middle_drawer_of_the_cabinet`)."""
    if is_libero(name):
        return {f"{t.suite}/{t.name}": t.instruction for t in resolve_libero(name)}
    return {t: TASKS[t].instruction for t in resolve_tasks(name)}


def benchmark_of(name: str | Sequence[str]) -> str:
    """The whole benchmark an env name belongs to: `libero/<suite>` for LIBERO names, `metaworld/MT50` else."""
    first = names_of(name)[0]
    return "/".join(first.split("/")[:2]) if first.startswith(LIBERO_PREFIX) else PREFIX + "MT50"
