"""LIBERO demo files made by replaying action sequences in the engine, in LIBERO's HDF5 layout.

LIBERO's official datasets (robomimic layout: data/demo_i/{actions, obs/<key>, states, rewards, dones}) need a
download; the files written here have the same layout and keys, so the project's demo reader
(ript_fast.data.demo_file) and everything downstream (SFT, context datasets) treat both alike:
  obs/agentview_rgb, obs/eye_in_hand_rgb (T, H, W, 3) uint8, bottom-up rows as LIBERO stores them;
  obs/joint_states (T, 7), obs/ee_pos (T, 3), obs/ee_ori (T, 3: axis-angle), obs/gripper_states (T, 2);
  states (T, 1 + nq + nv): LIBERO's flattened MuJoCo state [time, qpos, qvel] before each action, so states[0]
  is a LIBERO init state that make_vec_env's reset(options={"init_state": ...}) accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ript_fast.data.demo_file import Episode, write_demo_file

OBS_KEYS = ("agentview_rgb", "eye_in_hand_rgb", "joint_states", "ee_pos", "ee_ori", "gripper_states")


def _libero_state(data: object) -> np.ndarray:
    return np.concatenate([[data.time], data.qpos, data.qvel])  # type: ignore[attr-defined]


def record_demos(
    env_name: str,
    actions: Sequence[np.ndarray],
    path: str | Path,
    init_states: np.ndarray | None = None,
    render_size: tuple[int, int] = (128, 128),
) -> Path:
    """Replays `actions[i]` ((T_i, 7) each, stored and stepped as float32) from `init_states[i]` (LIBERO rows
    or contexts; default: the task's shipped init states 0, 1, ...) in one batch; writes the episodes to `path`."""
    from ript_fast.envs import make_vec_env
    from ript_fast.envs.registry import resolve_libero

    if not actions:
        raise ValueError("actions: needs at least one action sequence")
    for i, seq in enumerate(actions):
        if np.ndim(seq) != 2 or np.shape(seq)[1] != 7 or len(seq) < 1:
            raise ValueError(f"actions: sequence {i} must be a non-empty (T, 7) array, got shape {np.shape(seq)}")
    (task,) = resolve_libero(env_name)
    actions = [np.asarray(seq, dtype=np.float32) for seq in actions]  # as stored, so a replay is exact
    n = len(actions)
    env = make_vec_env(
        env_name, n, obs_mode="state+rgb", autoreset=False, terminate_on_success=False, render_size=render_size
    )
    try:
        rows = env.shipped_init_states[0][:n] if init_states is None else np.asarray(init_states)
        obs, _ = env.reset(options={"init_state": rows})
        frames: list[list[dict[str, np.ndarray]]] = [[] for _ in range(n)]
        successes: list[list[bool]] = [[] for _ in range(n)]
        batch = np.zeros((n, 7))
        for t in range(max(len(seq) for seq in actions)):
            live = [i for i in range(n) if t < len(actions[i])]
            for i in live:
                frame = {key: np.array(obs[key][i]) for key in OBS_KEYS}
                frame["states"] = _libero_state(env.datas[i])
                frames[i].append(frame)
                batch[i] = actions[i][t]
            obs, _, _, _, info = env.step(batch)
            for i in live:
                successes[i].append(bool(info["success"][i]))
    finally:
        env.close()
    episodes = [_episode(frames[i], np.asarray(actions[i]), successes[i]) for i in range(n)]
    return write_demo_file(
        path,
        episodes,
        env_name=env_name,
        task_name=f"{task.suite}/{task.name}",
        instruction=env.instructions[0],
        extra={"collector": "libero_replay", "task": task.name, "suite": task.suite},
    )


def _episode(frames: list[dict[str, np.ndarray]], actions: np.ndarray, successes: list[bool]) -> Episode:
    rewards = np.asarray(successes, dtype=np.float32)
    dones = np.zeros(len(frames), dtype=np.uint8)
    dones[-1] = 1
    return Episode(
        actions=actions,
        obs={key: np.stack([f[key] for f in frames]) for key in OBS_KEYS},
        states=np.stack([f["states"] for f in frames]),
        rewards=rewards,
        dones=dones,
    )
