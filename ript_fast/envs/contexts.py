"""Context vectors: one flat float64 row per env that restarts an episode exactly (paper Sec. 4.1).

`env.get_state()` returns them, `reset(options={"init_state": rows})` restarts from them, and a demo file
stores one as `states[0]`. Layout version 1 (defined in csrc/sim/context_layout.h, repeated here):

    [0] layout version (1)     [1] task id (index in ript_fast.envs.TASK_NAMES)   [2] used length L
    [3] nstate  [4] nbody  [5] nsite  [6] nparam  [7] cur_dim  [8] nrand  [9] reserved (0)
    target(3) | params(nparam) | rand_vec(nrand) | reset obs cur(cur_dim) | reset goal(3) |
    MuJoCo state, mj_getState(mjSTATE_INTEGRATION)(nstate) | model.body_pos(3 nbody) | model.site_pos(3 nsite)
    then zeros up to the row width S (the widest task of the batch).

Rows are self-describing, so rows of different tasks can share one (M, S) array (shorter ones zero-padded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

HEADER = 10
VERSION = 1
SECTIONS = ("target", "params", "rand_vec", "cur0", "goal0", "physics", "body_pos", "site_pos")


def _section_bounds(row: np.ndarray) -> dict[str, tuple[int, int]]:
    if row.ndim != 1 or row.size < HEADER or row[0] != VERSION:
        raise ValueError("init_state: not a context vector of layout version 1")
    nstate, nbody, nsite, nparam, cur_dim, nrand = (int(v) for v in row[3:9])
    sizes = (3, nparam, nrand, cur_dim, 3, nstate, 3 * nbody, 3 * nsite)
    out, start = {}, HEADER
    for name, size in zip(SECTIONS, sizes, strict=True):
        out[name] = (start, start + size)
        start += size
    return out


def sections(row: np.ndarray) -> dict[str, np.ndarray]:
    """The named parts of one context row (views), e.g. sections(row)["target"]."""
    row = np.asarray(row, dtype=np.float64)
    return {name: row[a:b] for name, (a, b) in _section_bounds(row).items()}


def section_start(row: np.ndarray, name: str) -> int:
    """Where section `name` starts in a context row (e.g. "physics": MuJoCo's state, time then qpos)."""
    return _section_bounds(np.asarray(row, dtype=np.float64))[name][0]


def declares_layout(row: np.ndarray) -> bool:
    """Whether a row claims to be a version-1 context (header [0] = 1, an integer length at [2]). LIBERO's own
    [time, qpos, qvel] rows, which resets also take, start with a time and joint angles, never with that."""
    row = np.asarray(row, dtype=np.float64)
    return row.ndim == 1 and row.size >= 3 and row[0] == VERSION and bool(np.isfinite(row[2])) and row[2] % 1 == 0


def layout_problem(row: np.ndarray) -> str | None:
    """What keeps a row that declares the layout from being a whole context, in words; None when it is one.

    `row` is the row as stored (its own width, not padded further): a row narrower than its length field was
    cut short and would be zero-padded into a different context (zero physics state, zero body positions);
    section sizes that do not add up to that length, or non-zero values past it, mean a damaged header or
    data that is not padding. The engine re-checks the header against its model at reset.
    """
    row = np.asarray(row, dtype=np.float64)
    length = int(row[2])
    if length < HEADER:
        return f"has a context header whose length {length} is shorter than the header itself ({HEADER})"
    if row.size < length:
        return f"is cut short: {row.size} values, but its context header says {length}"
    counts = row[3:HEADER]
    if np.any(counts < 0) or np.any(counts % 1 != 0):
        return f"has a context header whose section sizes {counts.tolist()} are not counts"
    end = _section_bounds(row)[SECTIONS[-1]][1]
    if end != length:
        return f"has a context header whose sections add up to {end} values, but whose length says {length}"
    if np.any(row[length:] != 0):
        return f"holds non-zero values past its context length {length} (only zero padding may follow)"
    return None


def task_id(row: np.ndarray) -> int:
    return int(row[1])


def rand_vec(row: np.ndarray) -> np.ndarray:
    return sections(row)["rand_vec"].copy()


def rows_for(init_state: Any, ids: np.ndarray, num_envs: int, width: int) -> np.ndarray:
    """The context rows for the envs `ids` being reset, as a C-contiguous float64 (len(ids), width) array.

    Accepts (num_envs, S) (row i for env i) or (len(ids), S) (one row per reset env); S may be narrower than
    the batch's widest context (rows are zero-padded) as long as each row holds its own context.
    """
    states = np.asarray(init_state)
    if states.dtype.kind != "f":
        raise TypeError(f"init_state: dtype must be floating, got {states.dtype}")
    if states.ndim == 1:
        states = states[None, :]
    if states.ndim != 2 or states.shape[0] not in (num_envs, len(ids)):
        raise ValueError(
            f"init_state: expected shape ({num_envs}, S) or ({len(ids)}, S) for {len(ids)} reset envs, "
            f"got {states.shape}"
        )
    if states.shape[0] == num_envs and num_envs != len(ids):
        states = states[ids]
    _check_not_cut_short(states)
    if states.shape[1] > width:
        if np.any(states[:, width:] != 0):
            raise ValueError(f"init_state: rows are wider ({states.shape[1]}) than this batch's contexts ({width})")
        states = states[:, :width]
    out = np.zeros((len(ids), width), dtype=np.float64)
    out[:, : states.shape[1]] = states
    return out


def _check_not_cut_short(states: np.ndarray) -> None:
    """A context row narrower than the length its header states would be zero-padded into a different,
    silently corrupt context (zero physics state, zero body positions): refuse it before padding."""
    if states.shape[1] < 3:
        return
    versioned = states[:, 0] == VERSION
    short = versioned & (states[:, 2] > states.shape[1])
    if short.any():
        r = int(np.flatnonzero(short)[0])
        raise ValueError(
            f"init_state: row {r} is cut short: {states.shape[1]} values, but its header says {int(states[r, 2])}"
        )


def check_tasks(states: np.ndarray, ids: np.ndarray, expected: Sequence[int]) -> None:
    """Each row must be a version-1 context of the task its env runs."""
    for r, (row, i, want) in enumerate(zip(states, ids, expected, strict=True)):
        if row[0] != VERSION:
            raise ValueError(f"init_state: row {r} (for env {i}) is not a context vector of layout version 1")
        if int(row[1]) != want:
            raise ValueError(f"init_state: row {r} belongs to task id {int(row[1])} but env {i} runs task id {want}")
