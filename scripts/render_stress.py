"""Stress for the engine's renderer: LIBERO frames drawn in the pool while another Python thread makes, draws and
drops GL users (mujoco.Renderers, image envs never closed, collections), so that GL contexts come and go on other
threads during engine draws, as in a long one-process test run.

How CI's SIGSEGV inside an engine draw was reproduced and the fix checked (bench/RESULTS.md, "The engine
renderer on Mesa's software rasterizer"); run it under gdb to get the native stacks of a crash:

    MUJOCO_GL=egl gdb -q -batch -ex run -ex "thread apply all bt 30" --args \\
        python scripts/render_stress.py --seconds 900

Prints the draws and churn rounds done; a crash ends the process (SIGSEGV).
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import threading
import time
from typing import Any

import mujoco
import numpy as np

from ript_fast._core import _C
from ript_fast.envs import make_vec_env

TASK = "libero/spatial/0"


def churn_once(kind: int, model: mujoco.MjModel) -> None:
    """One round of GL work on this thread: a mujoco.Renderer drawn and left to the collector, an engine image env
    never closed (freed by the collector, on whichever thread it runs), or a collection."""
    cycle: dict[str, Any] = {}
    if kind == 0:
        renderer = mujoco.Renderer(model, 64, 64)
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        renderer.update_scene(data)
        renderer.render()
        cycle["held"] = renderer
    elif kind == 1:
        env = make_vec_env(TASK, 1, seed=1, obs_mode="rgb", render_every_step=False, render_size=(64, 64))
        env.reset(seed=1)
        env.render_observations()
        cycle["held"] = env
    else:
        gc.collect()
    cycle["self"] = cycle  # a reference cycle: only the collector frees what it holds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--kinds", default="012", help="churn rounds to run: 0 renderers, 1 envs, 2 collections")
    parser.add_argument("--size", type=int, default=256, help="engine frame size (OpenVLA reads 256 px)")
    args = parser.parse_args()
    faulthandler.enable()
    _C.set_num_threads(2)
    env = make_vec_env(TASK, 2, seed=0, obs_mode="rgb", render_every_step=False, render_size=(args.size, args.size))
    env.reset(seed=0)
    stop = threading.Event()
    rounds = [0]

    def churn() -> None:
        kinds = [int(k) for k in args.kinds]
        while not stop.is_set():
            churn_once(kinds[rounds[0] % len(kinds)], env.models[0])
            rounds[0] += 1

    worker = threading.Thread(target=churn)
    worker.start()
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    draws = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < args.seconds:
            env.step(rng.uniform(low, high).astype(np.float32))
            env.render_observations()
            draws += 1
    finally:
        stop.set()
        worker.join()
        env.close()
        gc.collect()  # the churn's leftovers, while the GL displays are up (exit hooks terminate them)
    print(f"ok: {draws} draws of {env.num_envs} envs, {rounds[0]} churn rounds in {args.seconds:.0f} s")


if __name__ == "__main__":
    main()
