"""Success rate of a policy on held-out contexts: `ript-fast eval` and `evaluate`.

Held-out contexts are fresh env resets with seeds from `EVAL_SEED` on (demo collection uses small seeds, so
they never coincide with training contexts). Episodes run as a few large batches through the engine with
the trainer's own rollout loop (`train/rollout.collect_rollouts`: action chunks, `autoreset=False`), so an
evaluation measures exactly the policy the trainer rolls out. QueST samples in evaluation (top-k, as the
paper reports it); regression policies take their mean (`policy.samples_in_eval`).

Images are rendered on demand (the rollout loop asks only for the frames its queries read). With a video path,
a few more episodes from the first contexts run again, the video asking for every frame of its envs (the first
camera: MetaWorld's "rgb", LIBERO's agentview), and are written as a GIF (or MP4 when the path ends in .mp4 and
imageio's ffmpeg plugin is installed), side by side.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ript_fast.data.contexts import ContextDataset
from ript_fast.policies.base import Policy
from ript_fast.train.atomic import atomic_write, atomic_write_text
from ript_fast.train.rollout import rollout_contexts

EVAL_SEED = 100_000


@dataclass
class EvalResult:
    env: str
    episodes: int
    successes: int
    success_rate: float
    mean_episode_steps: float
    sampled: bool
    seed: int
    seconds: float
    env_steps: int
    video: str | None = None
    per_task: dict[str, float] = field(default_factory=dict)  # success rate of each task, when there are several


def count_by_task(task_names: list[str], success: np.ndarray) -> dict[str, tuple[int, int]]:
    """(episodes, successes) of each task, in first-seen order: how the trainer's held-out evaluation and
    `ript-fast eval` both report a multi-task success rate."""
    counts: dict[str, tuple[int, int]] = {}
    for task, ok in zip(task_names, np.asarray(success, dtype=bool).tolist(), strict=True):
        n, hits = counts.get(task, (0, 0))
        counts[task] = (n + 1, hits + int(ok))
    return counts


def evaluate(
    policy: Policy,
    env_name: str,
    episodes: int = 50,
    seed: int = EVAL_SEED,
    batch_size: int = 50,
    sample: bool | None = None,
    video: str | Path | None = None,
    video_episodes: int = 4,
    progress: bool = True,
) -> EvalResult:
    """Runs `episodes` held-out episodes and returns the success rate (and writes a video if asked)."""
    from tqdm import tqdm

    from ript_fast.envs import make_vec_env

    if episodes < 1 or batch_size < 1:
        raise ValueError("episodes and batch_size must be >= 1")
    sample = policy.samples_in_eval if sample is None else sample
    env_options = policy.policy_config.obs.env_options()
    contexts = ContextDataset.from_env(env_name, episodes, seed)
    policy.eval()
    start = time.perf_counter()
    success, steps, tasks = [], [], []
    env_steps = 0
    with tqdm(total=episodes, desc=f"eval {env_name}", disable=not progress) as bar:
        for first in range(0, episodes, batch_size):
            rows = np.arange(first, min(first + batch_size, episodes))
            # env i runs the task of context rows[i] (a batch of a multi-task name need not start at task 0)
            names = contexts.task_env_names(rows)
            env = make_vec_env(names, len(rows), seed=seed + first, autoreset=False, **env_options)
            try:
                batch, timing = rollout_contexts(env, policy, contexts, rows, seed + first, sample)
            finally:
                env.close()
            success.append(batch.success.numpy())
            steps.append(batch.episode_steps.numpy())
            tasks.extend(contexts.task_names[i] for i in rows)
            env_steps += timing.env_steps
            bar.update(len(rows))
            bar.set_postfix(success=f"{np.concatenate(success).mean():.2f}")
    ok = np.concatenate(success)
    video_path = _record_video(policy, env_name, contexts, seed, sample, video, video_episodes) if video else None
    by_task = count_by_task(tasks, ok)
    return EvalResult(
        env_name,
        episodes,
        int(ok.sum()),
        float(ok.mean()),
        float(np.concatenate(steps).mean()),
        sample,
        seed,
        time.perf_counter() - start,
        env_steps,
        video_path,
        {task: hits / n for task, (n, hits) in by_task.items()} if len(by_task) > 1 else {},
    )


def write_result(result: EvalResult, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    atomic_write_text(path, json.dumps({**asdict(result), **(extra or {})}, indent=2) + "\n")
    return Path(path)


class _FrameRecorder:
    """A vector env that keeps the frame of every env after each reset/step it passes through (its first
    camera). An engine env rendering on demand is asked for them, once per step: the queries' own
    render_observations reuse them; an env that returns images with its observations gives them there."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.key = next(iter(getattr(env, "image_cameras", None) or ["rgb"]))
        self.frames: list[np.ndarray] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, **kwargs: Any) -> Any:
        out = self.env.reset(**kwargs)
        self._record(out[0])
        return out

    def step(self, actions: np.ndarray) -> Any:
        out = self.env.step(actions)
        self._record(out[0])
        return out

    def _record(self, obs: Any) -> None:
        if isinstance(obs, dict) and self.key in obs:
            self.frames.append(np.array(obs[self.key]))
        else:
            self.frames.append(self.env.render_observations(keys=[self.key])[self.key])


def _record_video(
    policy: Policy, env_name: str, contexts: ContextDataset, seed: int, sample: bool, path: str | Path, episodes: int
) -> str:
    from ript_fast.envs import make_vec_env

    n = min(episodes, len(contexts))
    options = {**policy.policy_config.obs.env_options(), "obs_mode": "state+rgb"}  # frames even for state policies
    env = _FrameRecorder(make_vec_env(env_name, num_envs=n, seed=seed, autoreset=False, **options))
    try:
        rollout_contexts(env, policy, contexts, np.arange(n), seed, sample)
    finally:
        env.close()
    frames = [np.concatenate(list(f), axis=1) for f in env.frames]  # the n episodes side by side
    return str(write_video(frames, path))


def write_video(frames: list[np.ndarray], path: str | Path, fps: int = 25) -> Path:
    """(H, W, 3) uint8 frames -> a GIF, or an MP4 when `path` ends in .mp4 (needs imageio-ffmpeg)."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix == ".mp4":
        atomic_write(path, lambda tmp: iio.imwrite(tmp, np.stack(frames), extension=".mp4", fps=fps))
    else:
        atomic_write(
            path, lambda tmp: iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000 / fps, loop=0)
        )
    return path
