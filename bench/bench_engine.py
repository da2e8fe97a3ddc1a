"""Benchmark of the batched MuJoCo engine and vectorized MetaWorld (measures; never asserts).

    python bench/bench_engine.py            # full run (a few minutes)
    python bench/bench_engine.py --quick    # fewer steps, 16-env configurations only

Prints markdown tables:
  1. env steps/s with random actions: ours vs gymnasium SyncVectorEnv / AsyncVectorEnv over MetaWorld's own
     envs (button-press, pick-place, a mixed ML45 batch; 16 and 64 envs);
  2. raw physics (button-press model): a Python loop of mujoco.mj_step, mujoco.rollout, and our batch
     stepper, at the same thread count;
  3. our thread scaling 1 -> 2, and our env steps/s on one core as a fraction of the physics limit (the same
     envs' frame_skip mj_steps alone, measured in the same run);
  4. reset costs and (if an OpenGL backend exists) 128x128 rendering speed;
  5. memory: RSS per env of pick-place-v3 and a mixed ML45 batch, now (views of one shared model per task) and
     before (each env a full MetaWorld env with its own model, as MetaWorldVecEnv held them until issue #14),
     and of a LIBERO suite when LIBERO is installed;
  6. with --envpool-python (a venv of its own: `pip install envpool==1.2.5`): state stepping beside EnvPool's native
     C++ MetaWorld v3 (same tasks, envs and threads, random actions), run in that venv's interpreter
     (`--envpool-only`: this table alone).
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable

import gymnasium as gym
import mujoco
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS
from mujoco import rollout

from ript_fast._core import _C
from ript_fast.envs import make_vec_env
from ript_fast.envs.libero.setup import libero_available
from ript_fast.envs.metaworld.task_env import make_task_env, reference_env, reset_task_env
from ript_fast.envs.registry import GROUPS, is_libero, resolve_tasks

warnings.filterwarnings("ignore")


def metaworld_env(task: str, seed: int) -> gym.Env:
    """MetaWorld's own env (configured as ours) under gymnasium's TimeLimit, as MetaWorld's vector envs use it."""
    return gym.wrappers.TimeLimit(reference_env(task, seed), 500)


def timed(fn: Callable[[], None], repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def random_actions(n: int, steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(-1, 1, size=(n, 4)).astype(np.float32) for _ in range(steps)]


def ours_steps_per_s(name: str, n: int, steps: int, threads: int, physics_only: bool = False) -> float:
    """Env steps/s of our batch; physics_only: just the frame_skip mj_steps of those same envs (the limit)."""
    _C.set_num_threads(threads)
    env = make_vec_env(name, num_envs=n, seed=0, terminate_on_success=False)
    env.reset()
    actions = random_actions(n, steps)
    addresses = [m._address for m in env.models], [d._address for d in env.datas]

    def run() -> None:
        if physics_only:
            for _ in actions:
                _C.sim.step_raw(*addresses, 5)
        else:
            for a in actions:
                env.step(a)

    run()  # warm-up (and leaves room: steps * 3 < 500, so no reset falls in a timed window)
    return n * steps / timed(run)


def gym_steps_per_s(name: str, n: int, steps: int, vector: str) -> float:
    tasks = resolve_tasks(name)
    fns = [functools.partial(metaworld_env, tasks[i % len(tasks)], i) for i in range(n)]
    cls = gym.vector.SyncVectorEnv if vector == "sync" else gym.vector.AsyncVectorEnv
    env = cls(fns)
    env.reset(seed=0)
    actions = random_actions(n, steps)

    def run() -> None:
        for a in actions:
            env.step(a)

    run()
    rate = n * steps / timed(run)
    env.close()
    return rate


def env_table(configs: list[tuple[str, int]], steps: int, threads: int) -> list[str]:
    rows = [
        f"| batch | envs | ours ({threads} thr) | SyncVectorEnv | AsyncVectorEnv | ours / Sync | ours / Async |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, n in configs:
        ours = ours_steps_per_s(name, n, steps, threads)
        sync = gym_steps_per_s(name, n, max(steps // 4, 10), "sync")
        asyn = gym_steps_per_s(name, n, max(steps // 4, 10), "async")
        rows.append(
            f"| {name.split('/')[1]} | {n} | {ours:,.0f} | {sync:,.0f} | {asyn:,.0f} | {ours / sync:.1f}x "
            f"| {ours / asyn:.1f}x |"
        )
        print(rows[-1], flush=True)
    return rows


ENVPOOL_RATE = """
import sys, time
import numpy as np, envpool
task, n, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
env = envpool.make_gymnasium(task, num_envs=n, num_threads=threads, seed=0)
env.reset()
rng = np.random.default_rng(0)
actions = [rng.uniform(-1, 1, size=(n, 4)).astype(np.float32) for _ in range(steps)]
def run():
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return time.perf_counter() - start
run()
print(n * steps / run())
"""


def envpool_steps_per_s(python: str, task: str, n: int, steps: int, threads: int) -> float:
    """EnvPool's native MetaWorld (`MetaWorld/ButtonPress-v3` for button-press-v3) stepped in its own venv."""
    name = "MetaWorld/" + "".join(part.capitalize() for part in task.removesuffix("-v3").split("-")) + "-v3"
    out = subprocess.run(
        [python, "-c", ENVPOOL_RATE, name, str(n), str(steps), str(threads)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def envpool_table(python: str, sizes: list[int], steps: int, threads: int) -> list[str]:
    """Ours and EnvPool alternated per row (a load change hits both), the same steps after a warm-up pass."""
    header = f"| task | envs | ours ({threads} thr) | EnvPool 1.2.5 ({threads} thr) | ours / EnvPool |"
    rows = [header, "|---|---|---:|---:|---:|"]
    for task in ("button-press-v3", "pick-place-v3", "assembly-v3"):
        for n in sizes:
            ours = ours_steps_per_s(f"metaworld/{task}", n, steps, threads)
            theirs = envpool_steps_per_s(python, task, n, steps, threads)
            rows.append(f"| {task} | {n} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x |")
            print(rows[-1], flush=True)
    return rows


def raw_table(n: int, nstep: int, threads: int) -> list[str]:
    """mj_steps/s on the button-press model from the same initial state, zero control."""
    path = ALL_V3_ENVIRONMENTS["button-press-v3"]().model_name
    model = mujoco.MjModel.from_xml_path(path)
    size = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    start = np.zeros((n, size))
    probe = mujoco.MjData(model)
    mujoco.mj_getState(model, probe, start[0], mujoco.mjtState.mjSTATE_FULLPHYSICS)
    start[:] = start[0]
    datas = [mujoco.MjData(model) for _ in range(n)]

    def fresh() -> None:
        for d in datas:
            mujoco.mj_resetData(model, d)

    def python_loop() -> None:
        for d in datas:
            mujoco.mj_step(model, d, nstep=nstep)

    thread_datas = [mujoco.MjData(model) for _ in range(threads)]

    def mujoco_rollout() -> None:
        rollout.rollout(model, thread_datas, start, nstep=nstep)

    _C.set_num_threads(threads)
    addresses = [model._address] * n, [d._address for d in datas]

    def ours() -> None:
        _C.sim.step_raw(*addresses, nstep)

    total = n * nstep
    results = {}
    for label, fn in (("Python loop of mj_step (1 thread)", python_loop), ("mujoco.rollout", mujoco_rollout)):
        fresh()
        results[label] = total / timed(fn, repeats=3)
    fresh()
    results["ours: _C.sim.step_raw"] = total / timed(ours, repeats=3)
    rollout_rate = results["mujoco.rollout"]
    rows = [f"| raw physics, button-press, {n} datas x {nstep} steps, {threads} threads | mj_step/s | vs rollout |"]
    rows.append("|---|---|---|")
    for label, rate in results.items():
        rows.append(f"| {label} | {rate:,.0f} | {rate / rollout_rate:.2f} |")
        print(rows[-1], flush=True)
    return rows


def scaling_table(names: list[str], n: int, steps: int) -> list[str]:
    rows = [
        "| batch | envs | ours 1 thread | ours 2 threads | speed-up | physics only, 1 thread | ours / physics |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        one = ours_steps_per_s(name, n, steps, 1)
        two = ours_steps_per_s(name, n, steps, 2)
        limit = ours_steps_per_s(name, n, steps, 1, physics_only=True)
        cells = [name.split("/")[1], str(n), f"{one:,.0f}", f"{two:,.0f}", f"{two / one:.2f}x", f"{limit:,.0f}"]
        rows.append(f"| {' | '.join(cells)} | {one / limit:.2f} |")
        print(rows[-1], flush=True)
    return rows


def reset_table(n: int) -> list[str]:
    _C.set_num_threads(2)
    rows = ["| reset of 16 pick-place envs | ms per env |", "|---|---|"]
    env = make_vec_env("metaworld/pick-place-v3", num_envs=n, seed=0, autoreset=False)
    env.reset()
    states = env.get_state()
    sampled = timed(lambda: env.reset(), repeats=2) / n
    restored = timed(lambda: env.reset(options={"init_state": states}), repeats=3) / n
    ref = [metaworld_env("pick-place-v3", i) for i in range(n)]
    theirs = timed(lambda: [e.reset() for e in ref], repeats=2) / n
    for label, t in (
        ("MetaWorld's own reset (Python settling loop)", theirs),
        ("ours, fresh sample (MetaWorld reset_model + C++ settling)", sampled),
        ("ours, from a context (C++ restore)", restored),
    ):
        rows.append(f"| {label} | {t * 1e3:.3f} |")
        print(rows[-1], flush=True)
    return rows


def render_table(n: int, steps: int) -> list[str]:
    try:
        env = make_vec_env("metaworld/pick-place-v3", num_envs=n, seed=0, obs_mode="state+rgb")
    except Exception as err:  # no GL backend: report and move on
        return [f"rendering skipped: {err}"]
    how = f"{env._renderer.backend} renderer"  # RIPT_FAST_RENDER=python: one GL context, Python loop
    env.reset()
    actions = random_actions(n, steps)
    rate = n * steps / timed(lambda: [env.step(a) for a in actions])
    env.close()
    row = f"| state+rgb 128x128, pick-place, {n} envs | {rate:,.0f} env steps/s ({how}) |"
    print(row, flush=True)
    return ["| rendering | speed |", "|---|---|", row]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def rss_probe(layout: str, name: str, n: int) -> None:
    """Prints the RSS growth (MB) from making and resetting n envs of `name`, in this fresh interpreter, after a
    warm-up batch of one env per task (kept alive) loaded the imports and the tasks' shared models. layout
    "ours": make_vec_env (then 10 steps); "full": one full MetaWorld env per env (make_task_env, reset), what
    MetaWorldVecEnv held per env before its envs shared their task's model."""
    _C.set_num_threads(2)
    tasks = resolve_tasks(name)
    warm = make_vec_env(name, len(tasks), seed=0)
    warm.reset()
    base = rss_mb()
    if layout == "full":
        envs = [make_task_env(tasks[i % len(tasks)], True, i) for i in range(n)]
        for env in envs:
            reset_task_env(env)
    else:
        vec = make_vec_env(name, n, seed=1)
        vec.reset()
        for _ in range(10):
            vec.step(np.zeros((n, vec.single_action_space.shape[0]), np.float32))
    print(rss_mb() - base)


def rss_growth_mb(layout: str, name: str, n: int) -> float:
    command = [sys.executable, __file__, "--rss-probe", layout, name, str(n)]
    return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-1])


def memory_table(configs: list[tuple[str, int, int]]) -> list[str]:
    """RSS per env: the growth between a batch of n1 and one of n2 envs (in separate fresh interpreters) over
    n2 - n1, so a batch's fixed part (its reset samplers: a full model each) drops out and is given apart."""
    rows = [
        "| batch | envs | before: full env per env, MB/env | now: MB/env | now: fixed per batch, MB |",
        "|---|---|---:|---:|---:|",
    ]
    for name, n1, n2 in configs:
        small, large = rss_growth_mb("ours", name, n1), rss_growth_mb("ours", name, n2)
        per_env = (large - small) / (n2 - n1)
        if is_libero(name):
            before = "same (LIBERO envs always shared their task's model)"
        else:
            before = f"{(rss_growth_mb('full', name, n2) - rss_growth_mb('full', name, n1)) / (n2 - n1):.2f}"
        rows.append(f"| {name} | {n1} -> {n2} | {before} | {per_env:.2f} | {small - n1 * per_env:.0f} |")
        print(rows[-1], flush=True)
    return rows


def memory_configs(quick: bool) -> list[tuple[str, int, int]]:
    configs = [("metaworld/pick-place-v3", 20, 80), ("metaworld/ML45", 45, 90)]
    if not quick:
        configs = [("metaworld/pick-place-v3", 50, 200), ("metaworld/ML45", 45, 225)]
    if libero_available():
        configs.append(("libero/spatial", 10, 20 if quick else 50))
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="16-env configurations and fewer steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--envpool-python", help="the python of a venv with envpool==1.2.5 (adds table 6)")
    parser.add_argument("--envpool-only", action="store_true", help="with --envpool-python: table 6 alone")
    parser.add_argument("--rss-probe", nargs=3, metavar=("LAYOUT", "NAME", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_probe:
        layout, name, n = args.rss_probe
        rss_probe(layout, name, int(n))
        return
    steps = 40 if args.quick else 150
    sizes = [16] if args.quick else [16, 64]
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}, GROUPS ML45: {len(GROUPS['ML45'])} tasks")
    if args.envpool_python and args.envpool_only:
        rows = envpool_table(args.envpool_python, sizes, steps, args.threads)
        print(f"\nload average after: {os.getloadavg()}\n\n" + "\n".join(rows))
        return
    configs = [(f"metaworld/{t}", n) for t in ("button-press-v3", "pick-place-v3") for n in sizes]
    configs += [("metaworld/ML45", n) for n in sizes]
    tables = [
        env_table(configs, steps, args.threads),
        raw_table(64, 100 if args.quick else 500, args.threads),
        scaling_table(["metaworld/button-press-v3", "metaworld/pick-place-v3", "metaworld/ML45"], 64, steps),
        reset_table(16),
        render_table(16, 10),
        memory_table(memory_configs(args.quick)),
    ]
    if args.envpool_python:
        tables.append(envpool_table(args.envpool_python, sizes, steps, args.threads))
    print(f"\nload average after: {os.getloadavg()}\n")
    for table in tables:
        print("\n".join(table), end="\n\n")


if __name__ == "__main__":
    main()
