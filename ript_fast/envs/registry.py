"""Environment names -> MetaWorld task lists, with errors that suggest close matches."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from metaworld import env_dict

from ript_fast.envs.metaworld_tasks import TASK_NAMES

PREFIX = "metaworld/"

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


def resolve_tasks(name: str | Sequence[str]) -> list[str]:
    """The MetaWorld tasks a name stands for: one task, a benchmark group, or a list of those (concatenated)."""
    if isinstance(name, str):
        return _resolve_one(name)
    if not name:
        raise ValueError("name: an empty list names no environment")
    tasks: list[str] = []
    for item in name:
        if not isinstance(item, str):
            raise TypeError(f"name: list items must be strings, got {type(item).__name__}")
        tasks.extend(_resolve_one(item))
    return tasks


def _resolve_one(name: str) -> list[str]:
    if name.startswith(PREFIX):
        key = name[len(PREFIX) :]
        if key in GROUPS:
            return list(GROUPS[key])
        if key in TASK_NAMES:
            return [key]
    if name.startswith("libero/"):
        raise NotImplementedError(f"name: {name!r}: LIBERO environments are not available in this build yet")
    close = difflib.get_close_matches(name, known_names(), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"name: unknown environment {name!r}{hint} (e.g. 'metaworld/reach-v3', 'metaworld/ML45')")
