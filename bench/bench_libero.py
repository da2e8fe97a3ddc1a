"""Benchmark of vectorized LIBERO on the engine against LIBERO's own envs (measures; never asserts).

    python bench/bench_libero.py                # one task per suite for creation, then the speed tables
    python bench/bench_libero.py --quick        # fewer steps, creation of one suite only
    python bench/bench_libero.py --full-suites  # also build whole suites (libero/90: minutes)

Prints markdown tables:
  1. env creation: seconds to make_vec_env a task (LIBERO builds it, the engine compiles it) per suite, and
     with --full-suites the whole-suite batch (one env per task);
  2. env steps/s without rendering, random actions, on one task: ours (1 and 2 threads) against LIBERO's own
     env stepped in one process and LIBERO's SubprocVectorEnv (one spawned process per env, as RIPT's runner
     uses it), side by side in the same run;
  3. the same with agentview + wrist 128x128 images: ours (light render profile) against LIBERO's offscreen
     envs in SubprocVectorEnv.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import warnings

import numpy as np
from bench_engine import timed  # the same timer as the engine benchmark (bench/ is on sys.path when run)

from ript_fast._core import _C
from ript_fast.envs import make_vec_env
from ript_fast.envs.libero.reference import reference_env
from ript_fast.envs.libero.suites import SUITES, resolve, suite_tasks

warnings.filterwarnings("ignore")
TASK = "libero/goal/0"


def random_actions(n: int, steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, size=(n, 7)) for _ in range(steps)]
    for a in actions:
        a[:, 6] = np.sign(a[:, 6])
    return actions


def creation_table(suites: list[str], full: bool) -> None:
    print("\n### Env creation (seconds)\n")
    print("| suite | one task (`libero/<suite>/0`, 1 env) | whole suite (one env per task) |")
    print("|---|---|---|")
    for suite in suites:
        one = timed(lambda s=suite: make_vec_env(f"libero/{s}/0", 1).close())
        whole = "not run"
        if full:
            n = len(suite_tasks(suite))
            whole = f"{timed(lambda s=suite, n=n: make_vec_env(f'libero/{s}', n).close()):.1f} ({n} tasks)"
        print(f"| {suite} | {one:.1f} | {whole} |")


def ours(n: int, steps: int, threads: int, images: bool) -> float:
    _C.set_num_threads(threads)
    env = make_vec_env(TASK, n, seed=0, obs_mode="state+rgb" if images else "state", terminate_on_success=False)
    env.reset()
    actions = random_actions(n, steps)

    def run() -> None:
        for a in actions:
            env.step(a)

    run()  # warm-up (3 x steps stays inside the goal suite's 300-step episodes)
    rate = n * steps / timed(run)
    env.close()
    return rate


def _libero_env(images: bool, size: int = 128) -> object:
    return reference_env(resolve(TASK)[0], cameras=images, size=size)


def libero_single(steps: int) -> float:
    env = _libero_env(False)
    env.set_init_state(env_init_states()[0])
    actions = random_actions(1, steps)
    return steps / timed(lambda: [env.step(a[0]) for a in actions])


@functools.cache
def env_init_states() -> np.ndarray:
    from ript_fast.envs.libero.suites import init_states

    return init_states(resolve(TASK)[0])


def libero_subproc(n: int, steps: int, images: bool, size: int = 128) -> float:
    """Env steps/s of LIBERO's SubprocVectorEnv (one spawned process per env; with `images`, agentview + wrist at
    `size`, rendered every step by robosuite as LIBERO's env returns them) on random actions."""
    from libero.libero.envs.venv import SubprocVectorEnv

    # As RIPT's runner does: worker processes start fresh (a forked copy of a process holding GL contexts hangs).
    multiprocessing.set_start_method("spawn", force=True)
    venv = SubprocVectorEnv([functools.partial(_libero_env, images, size) for _ in range(n)])
    try:
        venv.set_init_state(env_init_states()[:n])
        actions = random_actions(n, steps)
        return n * steps / timed(lambda: [venv.step(a) for a in actions])
    finally:
        venv.close()


def speed_tables(n: int, steps: int, image_steps: int) -> None:
    print(f"\n### Env steps/s without rendering ({TASK}, {n} envs, random actions)\n")
    one, two = ours(n, steps, 1, False), ours(n, steps, 2, False)
    single = libero_single(steps)
    subproc = libero_subproc(n, steps, False)
    print("| ours 1 thread | ours 2 threads | LIBERO, 1 process | LIBERO SubprocVectorEnv | ours / Subproc |")
    print("|---|---|---|---|---|")
    print(f"| {one:,.0f} | {two:,.0f} | {single:,.0f} | {subproc:,.0f} | {two / subproc:.1f}x |")
    print(f"\n### Env steps/s with agentview + wrist 128x128 images ({n} envs)\n")
    ours_rgb = ours(n, image_steps, 2, True)
    subproc_rgb = libero_subproc(n, image_steps, True)
    print("| ours 2 threads (light profile) | LIBERO SubprocVectorEnv (robosuite's renderer) | ratio |")
    print("|---|---|---|")
    print(f"| {ours_rgb:,.1f} | {subproc_rgb:,.1f} | {ours_rgb / subproc_rgb:.1f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps; creation of the goal suite only")
    parser.add_argument("--full-suites", action="store_true", help="also time whole-suite batches")
    parser.add_argument("--envs", type=int, default=4, help="envs per batch (processes for LIBERO's Subproc)")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    creation_table(["goal"] if args.quick else list(SUITES), args.full_suites)
    speed_tables(args.envs, 20 if args.quick else 60, 5 if args.quick else 15)
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
