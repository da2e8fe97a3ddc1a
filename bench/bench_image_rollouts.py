"""Benchmark of image rollouts rendering on demand: the Python loop against the engine's renderer (measures;
never asserts).

    python bench/bench_image_rollouts.py          # MetaWorld pick-place 128, LIBERO goal/0 128 + 224; 16 and 64 envs
    python bench/bench_image_rollouts.py --quick  # 16 envs, shorter episodes, 128 only
    python bench/bench_image_rollouts.py --families libero   # the LIBERO batches only

The trainer's own loop (`collect_rollouts`, rendering on demand: a step renders nothing, a query renders the
images of the envs it queries) runs episodes of `--steps` env steps with a stand-in policy that reads every
query's images and returns random chunks of `--horizon` actions (QueST's 8), so the time is the engine's and
the renderer's alone. Per batch it runs, alternately and `--repeats` times (best kept):
  * python loop: frames drawn one at a time from Python on one GL context (RIPT_FAST_RENDER=python: the path
    before the engine's renderer);
  * engine: frames drawn by `_C.render` in the core's thread pool, one EGL context per thread, GIL released;
  * state only: the same loop without any camera (the engine's speed, the ceiling for image rollouts).
Each env renders all its frames once before the timed loop (shader compilation is a one-off per GL context).
LIBERO batches of at most `--subproc-max-envs` envs also run LIBERO's SubprocVectorEnv as RIPT's released runner
uses it (one process per env, robosuite rendering both cameras every step; random actions, `--subproc-steps`
steps after its envs are built): the honest alternative for the engine's two-camera rollouts.
Prints a markdown table of env steps/s and the ratios, with the frames each path drew.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from types import SimpleNamespace

import numpy as np
import torch

from ript_fast._core import _C
from ript_fast.envs import make_vec_env
from ript_fast.policies.base import ChunkSample, Observation
from ript_fast.train.rollout import collect_rollouts

warnings.filterwarnings("ignore")


class ImageReadingStub(torch.nn.Module):
    """Stands in for a policy: takes each query's images (as an image encoder would) and returns uniform random
    chunks, so that a rollout costs what the env and the renderer cost."""

    def __init__(self, image_keys: list[str], horizon: int, action_dim: int) -> None:
        super().__init__()
        self.policy_config = SimpleNamespace(obs=SimpleNamespace(image_keys=image_keys, state_keys=["state"]))
        self.horizon, self.action_dim = horizon, action_dim
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # collect_rollouts reads the device off a parameter
        self.generator = torch.Generator().manual_seed(0)

    def act(self, obs: Observation, sample: bool = True) -> ChunkSample:
        n = len(obs.instructions)
        for key in self.policy_config.obs.image_keys:
            if obs.images[key].shape[0] != n:
                raise ValueError(f"{key}: {obs.images[key].shape[0]} images for {n} queries")
        actions = torch.rand(n, self.horizon, self.action_dim, generator=self.generator) * 2 - 1
        return ChunkSample(actions, torch.zeros(n, 1, dtype=torch.int64), torch.zeros(n, 1), {})


MODES = ("python loop", "engine", "state only")


def rollout_rate(name: str, n: int, size: int, steps: int, horizon: int, mode: str) -> tuple[float, int]:
    """Env steps/s of one collection of n episodes of `steps` steps, and the frames it drew."""
    images = mode != "state only"
    os.environ["RIPT_FAST_RENDER"] = "python" if mode == "python loop" else "engine"
    options = {"autoreset": False, "max_episode_steps": steps, "terminate_on_success": False}
    env = make_vec_env(
        name, n, seed=0, obs_mode="state+rgb" if images else "state", render_size=(size, size), **options
    )
    keys = list(env.image_cameras) if images else []
    policy = ImageReadingStub(keys, horizon, env.single_action_space.shape[0])
    env.reset(seed=0)
    if images:  # warm: GL contexts compile their shaders on first use (a training run's envs live long)
        env.render_observations()
    warmup = env._renderer.frames_drawn if images else 0
    contexts = env.get_state()
    start = time.perf_counter()
    _, timing = collect_rollouts(
        env, policy, contexts, np.arange(n), np.zeros(n, np.int64), seed=0, render_every_step=False
    )
    seconds = time.perf_counter() - start
    frames = env._renderer.frames_drawn - warmup if images else 0
    env.close()
    return timing.env_steps / seconds, frames


def subproc_rate(name: str, n: int, size: int, args: argparse.Namespace) -> float | None:
    """LIBERO's SubprocVectorEnv on the same task and image size (None: not a LIBERO batch, or too many envs)."""
    if not name.startswith("libero/") or n > args.subproc_max_envs:
        return None
    from bench_libero import TASK, libero_subproc  # bench/ is on sys.path when run

    assert name == TASK, f"the SubprocVectorEnv baseline runs {TASK}"
    return libero_subproc(n, args.subproc_steps, True, size)


def table(batches: list[tuple[str, int, int]], args: argparse.Namespace) -> list[str]:
    steps, horizon, repeats = args.steps, args.horizon, args.repeats
    rows = [
        "| batch | image size | envs | python loop (env steps/s) | engine | engine / python loop | state only | "
        "frames drawn (python loop / engine) | LIBERO SubprocVectorEnv | engine / Subproc | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, n, size in batches:
        best = {m: 0.0 for m in MODES}
        frames = {}
        load = os.getloadavg()[0]
        for _ in range(repeats):
            for mode in MODES:  # alternating, so a load change hits both paths alike
                rate, frames[mode] = rollout_rate(name, n, size, steps, horizon, mode)
                best[mode] = max(best[mode], rate)
        loop, engine = best["python loop"], best["engine"]
        subproc = subproc_rate(name, n, size, args)
        versus = "- | -" if subproc is None else f"{subproc:,.1f} | {engine / subproc:.1f}x"
        rows.append(
            f"| {name} | {size} | {n} | {loop:,.1f} | {engine:,.1f} | {engine / loop:.2f}x | "
            f"{best['state only']:,.0f} | {frames['python loop']:,} / {frames['engine']:,} | {versus} | "
            f"{load:.1f} -> {os.getloadavg()[0]:.1f} |"
        )
        print(rows[-1], flush=True)
    return rows


def libero_installed() -> bool:
    from ript_fast.envs.libero.setup import libero_available

    return libero_available()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="16 envs, 32-step episodes, 128x128 only")
    parser.add_argument("--steps", type=int, default=64, help="env steps per episode (default 64: 8 queries)")
    parser.add_argument("--horizon", type=int, default=8, help="actions per query (QueST: 8)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--subproc-max-envs", type=int, default=16, help="larger LIBERO batches skip SubprocVectorEnv")
    parser.add_argument("--subproc-steps", type=int, default=12, help="SubprocVectorEnv steps timed per env")
    parser.add_argument("--families", nargs="+", choices=["metaworld", "libero"], default=["metaworld", "libero"])
    args = parser.parse_args()
    args.steps = steps = 32 if args.quick else args.steps
    sizes = [16] if args.quick else [16, 64]
    _C.set_num_threads(args.threads)
    batches = [("metaworld/pick-place-v3", n, 128) for n in sizes] if "metaworld" in args.families else []
    if "libero" in args.families and libero_installed():
        batches += [("libero/goal/0", n, size) for size in ([128] if args.quick else [128, 224]) for n in sizes]
    elif "libero" in args.families:
        print("LIBERO is not installed: its batches are left out (bash scripts/install_libero.sh adds it)")
    print(
        f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}, MUJOCO_GL={os.environ.get('MUJOCO_GL')}, "
        f"{steps} steps per episode, a query every {args.horizon}, best of {args.repeats}, {args.threads} threads"
    )
    rows = table(batches, args)
    print(f"\nload average after: {os.getloadavg()}\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
