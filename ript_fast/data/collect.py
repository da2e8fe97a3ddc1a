"""Scripted-expert demonstrations through the batched engine: `ript-fast collect-demos` and `collect_demos`.

MetaWorld's scripted policies (`ript_fast.envs.expert_actions`) act on the 39-d state observation of our
batched env, a batch of episodes at a time (`autoreset=False`: a finished env is not stepped again).
Optional Gaussian action noise, clipped to [-1, 1], as QueST's MetaWorld data used (sigma 0.2). Each
episode is recorded up to and including its first success step; only successful episodes are kept (QueST
kept all; a failed "demonstration" teaches failure). `states[t]` is the env's `get_state()` row, which
the engine defines as the episode's context, so every row equals `states[0]`. Episode i of batch b starts
from `reset(seed=seed + b * num_envs)`, so a file is reproducible from (task, seed, noise) and its contexts
are distinct.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ript_fast.config import SEED, ConfigError, ranged
from ript_fast.data.demo_file import Episode, read_demo_file, write_demo_file


class TooFewDemosError(ValueError):
    """The scripted expert succeeded too rarely (a hard task or too much action noise) to collect the demos
    asked for; a user-facing error: lower the noise or ask for fewer demos."""


Expert = Callable[[np.ndarray, list[str]], np.ndarray]  # (N, 39) state obs, task names -> (N, 4) actions
MAX_BATCHES_FACTOR = 4  # give up after trying this many times the requested episodes
OBS_MODES = ("state", "state+rgb")  # the experts read the state


def collect_demos(
    env_name: str,
    num_demos: int,
    out: str | Path,
    noise: float = 0.0,
    seed: int = 0,
    num_envs: int = 16,
    obs_mode: str = "state",
    expert: Expert | None = None,
    progress: bool = True,
) -> Path:
    """Collects `num_demos` successful episodes of `env_name` (metaworld/<task>) into an HDF5 file."""
    from tqdm import tqdm

    from ript_fast.envs import expert_actions, make_vec_env

    if obs_mode not in OBS_MODES:
        raise ValueError(f"obs_mode must be one of {OBS_MODES} (the experts act on the state), got {obs_mode!r}")
    if num_demos < 1:
        raise ValueError(f"num_demos must be >= 1, got {num_demos}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    task = env_name.split("/", 1)[-1]
    act = expert or expert_actions
    batch = min(num_envs, num_demos)
    env = make_vec_env(env_name, num_envs=batch, seed=seed, obs_mode=obs_mode, autoreset=False)
    rng = np.random.default_rng(seed)
    kept: list[Episode] = []
    tried = 0
    bar = tqdm(total=num_demos, desc=f"demos {task}", disable=not progress)
    try:
        instruction = str(env.instructions[0])
        while len(kept) < num_demos:
            if tried >= MAX_BATCHES_FACTOR * num_demos:
                raise TooFewDemosError(
                    f"only {len(kept)} of {tried} expert episodes of {env_name} succeeded "
                    f"(noise {noise}); wanted {num_demos}: lower the noise or ask for fewer demos"
                )
            episodes = _run_batch(env, act, noise, seed + tried, rng)
            tried += batch
            new = [ep for ep in episodes if ep is not None][: num_demos - len(kept)]
            kept.extend(new)
            bar.update(len(new))
    finally:
        bar.close()
        env.close()
    settings = {"collector": "scripted_expert", "noise": noise, "seed": seed, "attempted": tried, "obs_mode": obs_mode}
    return write_demo_file(out, kept, env_name, task, instruction, extra=settings)


@dataclass
class CollectConfig:
    """Scripted-expert demos a run collects itself into its folder's `demos/` (MetaWorld): e.g. the multi-task data
    a prior is pretrained on, with a few tasks given only a few demos (the paper's few-shot targets)."""

    env: str | list[str] = "metaworld/MT50"  # the tasks: metaworld/<task>, a group (metaworld/MT50), or a list
    num_demos: int = ranged(40, ge=1, le=100_000)  # per task
    noise_std: float = ranged(0.2, ge=0)  # Gaussian action noise of the expert (QueST's MetaWorld data)
    seed: int = ranged(1000, **SEED)
    few_shot: list[str] = field(default_factory=list)  # tasks given only `few_shot_demos` demos
    few_shot_demos: int = ranged(2, ge=1, le=100_000)


def planned_demos(cfg: CollectConfig, folder: Path, section: str) -> list[tuple[str, int, Path]]:
    """(env name, number of demos, file) for every task of `cfg` (each once), checked before anything is collected: a
    ConfigError naming `section`'s key for an unknown env, a non-MetaWorld one (the experts are MetaWorld's)
    or a few-shot task that is not among the env's tasks."""
    from ript_fast.envs.registry import PREFIX, is_libero, resolve_tasks

    try:
        tasks = resolve_tasks(cfg.env)
    except ValueError as err:
        raise ConfigError(f"{section}.env: {str(err).removeprefix('name: ')}") from None
    if is_libero(cfg.env):
        raise ConfigError(f"{section}.env: scripted experts exist for MetaWorld tasks only, got {cfg.env!r}")
    for task in cfg.few_shot:
        if task not in tasks:
            raise ConfigError(f"{section}.few_shot: {task!r} is not a task of {cfg.env!r}")
    # name order, the many-demo tasks first: the task table (and batches) of the packaged MT50 prior
    order = sorted(set(tasks) - set(cfg.few_shot)) + sorted(set(cfg.few_shot))
    return [
        (PREFIX + task, cfg.few_shot_demos if task in cfg.few_shot else cfg.num_demos, folder / f"{task}.hdf5")
        for task in order
    ]


def collect_or_reuse(
    env_name: str, num_demos: int, path: Path, noise: float, seed: int, section: str, progress: bool = True
) -> Path:
    """The demos of `env_name` at `path`: collected when absent, reused when an earlier start of this run collected
    them with these settings; a file made with other settings is a ConfigError naming `section`'s key, so a
    resumed run never trains on demos its config does not describe."""
    if not path.exists():
        return collect_demos(env_name, num_demos, path, noise=noise, seed=seed, progress=progress)
    made = read_demo_file(path, obs_keys=[])
    found = made.attrs.get("ript_fast", {})
    for key, have, want in (
        ("noise_std", found.get("noise"), noise),
        ("seed", found.get("seed"), seed),
        ("num_demos", len(made.episodes), num_demos),
    ):
        if have != want:
            raise ConfigError(
                f"{path} was collected with {section}.{key}={have!r}, the config says {want!r}: resume with the run's "
                "own config, or start a new run (--overwrite)"
            )
    return path


def _run_batch(env, act: Expert, noise: float, seed: int, rng: np.random.Generator) -> list[Episode | None]:  # type: ignore[no-untyped-def]
    """One episode per env; each is returned cut at its first success, or None if it never succeeded."""
    obs, _ = env.reset(seed=seed)
    context = np.array(env.get_state(), dtype=np.float64)  # the episode's context: `states[t]` for every t
    n = env.num_envs
    frames: list[dict[str, np.ndarray]] = []
    running = np.ones(n, dtype=bool)
    first_success = np.full(n, -1)
    t = 0
    while running.any():
        state_obs = obs["state"] if isinstance(obs, dict) else obs
        actions = np.asarray(act(state_obs, list(env.task_names)), dtype=np.float32)
        if noise > 0:
            actions = np.clip(actions + rng.normal(0.0, noise, actions.shape), -1.0, 1.0).astype(np.float32)
        record = {"actions": actions}  # the engine reuses its output buffers: keep copies
        record.update({f"obs/{k}": np.array(v) for k, v in _obs_dict(obs).items()})
        frames.append(record)
        obs, _, terminated, truncated, info = env.step(actions)
        success = np.asarray(info["success"], dtype=bool) & running & (first_success < 0)
        first_success[success] = t
        running &= ~(np.asarray(terminated) | np.asarray(truncated)) & (first_success < 0)
        t += 1
    return [_episode(frames, context[i], i, int(first_success[i])) if first_success[i] >= 0 else None for i in range(n)]


def _obs_dict(obs: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return dict(obs) if isinstance(obs, dict) else {"state": obs}


def _episode(frames: list[dict[str, np.ndarray]], context: np.ndarray, i: int, last: int) -> Episode:
    steps = frames[: last + 1]
    length = len(steps)
    rewards = np.zeros(length, dtype=np.float32)
    rewards[-1] = 1.0
    dones = np.zeros(length, dtype=np.uint8)
    dones[-1] = 1
    obs = {k[4:]: np.stack([f[k][i] for f in steps]) for k in steps[0] if k.startswith("obs/")}
    return Episode(
        actions=np.stack([f["actions"][i] for f in steps]),
        obs=obs,
        states=np.repeat(context[None], length, axis=0),
        rewards=rewards,
        dones=dones,
    )
