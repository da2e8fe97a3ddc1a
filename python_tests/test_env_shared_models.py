"""MetaWorld envs of a task step on views of one shared read-only model (`_C.sim.ModelView`) and get their
episodes from a few sampler envs: the same episodes, bit for bit, as envs that each own a full model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest

from ript_fast._core import _C
from ript_fast.envs import contexts, make_vec_env
from ript_fast.envs.metaworld.spec_compiler import compile_env, live_goal
from ript_fast.envs.metaworld.task_env import make_task_env, reset_task_env, shared_model
from ript_fast.envs.metaworld.tasks import TASK_NAMES, TASKS
from ript_fast.envs.metaworld.vec_env import MetaWorldVecEnv

# Tasks whose resets read what an earlier reset left: goals that are views into mjData (basketball,
# bin-picking), parameters that are views into mjData (door-lock, door-unlock), the previous obj_init_pos
# (basketball, soccer, hand-insert), physics inside reset_model (box-close), the shelf's body_pos
# (shelf-place), a second object (stick-push); plus common ones.
MIXED = [
    "basketball-v3",
    "bin-picking-v3",
    "door-lock-v3",
    "door-unlock-v3",
    "soccer-v3",
    "hand-insert-v3",
    "box-close-v3",
    "shelf-place-v3",
    "stick-push-v3",
    "sweep-into-v3",
    "pick-place-v3",
    "reach-v3",
]


def model_arrays(model: mujoco.MjModel) -> dict[str, np.ndarray]:
    arrays = {}
    for name in dir(model):
        value = getattr(model, name) if not name.startswith("_") else None
        if isinstance(value, np.ndarray):
            arrays[name] = value
    return arrays


def test_views_have_private_body_and_site_positions() -> None:
    template = shared_model(make_task_env("pick-place-v3", True, 0).fullpath)
    a, b = _C.sim.ModelView(template), _C.sim.ModelView(template)
    assert a.template is template and a._address not in (b._address, template._address)
    np.testing.assert_array_equal(a.body_pos, template.body_pos)
    np.testing.assert_array_equal(a.site_pos, template.site_pos)
    before = template.body_pos.copy(), template.site_pos.copy()
    a.body_pos[1] = 7.0
    a.site_pos[0] = 8.0
    assert a.body_pos[1].tolist() == [7.0] * 3 and a.site_pos[0].tolist() == [8.0] * 3
    np.testing.assert_array_equal(b.body_pos, before[0])
    np.testing.assert_array_equal(b.site_pos, before[1])
    np.testing.assert_array_equal(template.body_pos, before[0])
    np.testing.assert_array_equal(template.site_pos, before[1])


def test_metaworld_writes_only_body_and_site_positions() -> None:
    """What sharing one model per task rests on, for every task: MetaWorld's __init__ leaves the model equal to
    `shared_model` in every array, and its resets write body_pos and site_pos only."""
    for task in TASK_NAMES:
        env = make_task_env(task, True, 0)
        shared = model_arrays(shared_model(env.fullpath))
        fresh = model_arrays(env.model)
        assert [k for k in shared if not np.array_equal(shared[k], fresh[k], equal_nan=True)] == [], task
        for _ in range(2):
            reset_task_env(env)
        after = model_arrays(env.model)
        changed = {k for k in shared if not np.array_equal(shared[k], after[k], equal_nan=True)}
        assert changed <= {"body_pos", "site_pos"}, (task, changed)


class FullCopyBatch:
    """The batch as it was before models were shared: every env a MetaWorld env with its own full model and
    data, reset by MetaWorld itself, stepped by the engine."""

    def __init__(self, tasks: list[str], seed: int, max_steps: int) -> None:
        self.tasks = tasks
        self.envs = [make_task_env(t, True, seed + i) for i, t in enumerate(tasks)]
        for env in self.envs:
            reset_task_env(env)
        configs = [
            compile_env(
                TASKS[t],
                env,
                env.model,
                env.data,
                task_id=TASK_NAMES.index(t),
                max_steps=max_steps,
                terminate_on_success=True,
                goal=live_goal(env),
            )
            for t, env in zip(tasks, self.envs, strict=True)
        ]
        self.sim = _C.sim.BatchSim(configs)
        for i in range(len(tasks)):
            self.begin(i)
        self.noise_rngs = [np.random.default_rng([seed, i]) for i in range(len(tasks))]

    def begin(self, i: int) -> None:
        self.sim.begin_episode(i, *MetaWorldVecEnv._episode_values(self.envs[i], self.tasks[i]))

    def reset(self, ids: np.ndarray) -> None:
        for i in ids.tolist():
            reset_task_env(self.envs[i])
            self.begin(i)

    def restart_with_noise(self, states: np.ndarray, noise: float) -> None:
        for i, row in enumerate(states):
            base, rng = contexts.rand_vec(row), self.noise_rngs[i]

            def perturbed(base: np.ndarray = base, rng: np.random.Generator = rng) -> np.ndarray:
                vec = base.copy()
                vec[:2] += rng.normal(0.0, noise, size=2)  # drawn anew each time MetaWorld asks (both passes)
                return vec

            reset_task_env(self.envs[i], perturbed)
            self.begin(i)


@pytest.mark.parametrize(
    ("tasks", "threads"),
    [(MIXED * 2, 2), (["pick-place-v3"] * 4, 2), (MIXED[:4], 1)],
    ids=["mixed-2-threads", "one-task-2-samplers", "1-thread"],
)
def test_rollouts_equal_envs_with_full_models(tasks: list[str], threads: int) -> None:
    """200 random steps with a reset of every env that finishes (episodes of 50 steps, so each env is reset
    from the state its last episode left, by a sampler that served other envs in between), then a context
    restart with noise: observations, rewards, flags and contexts bitwise equal to the full-copy batch's."""
    before = _C.num_threads()
    _C.set_num_threads(threads)
    try:
        seed, n = 4, len(tasks)
        ours = make_vec_env([f"metaworld/{t}" for t in tasks], n, seed=seed, autoreset=False, max_episode_steps=50)
        theirs = FullCopyBatch(tasks, seed, 50)
        obs, _ = ours.reset()
        np.testing.assert_array_equal(obs, theirs.sim.obs)
        np.testing.assert_array_equal(ours.get_state(), theirs.sim.context)
        rng = np.random.default_rng(0)
        resets = 0
        for _ in range(200):
            actions = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
            obs, reward, terminated, truncated, _ = ours.step(actions)
            theirs.sim.step(actions, np.ones(n, bool))
            for mine, ref in ((obs, "obs"), (reward, "reward"), (terminated, "terminated"), (truncated, "truncated")):
                np.testing.assert_array_equal(mine, getattr(theirs.sim, ref), err_msg=ref)
            done = terminated | truncated
            if done.any():
                obs, _ = ours.reset(options={"reset_mask": done})
                theirs.reset(np.flatnonzero(done))
                np.testing.assert_array_equal(obs, theirs.sim.obs)
                np.testing.assert_array_equal(ours.get_state(), theirs.sim.context)
                resets += int(done.sum())
        assert resets >= 3 * n
        states = ours.get_state()
        ours.reset(options={"init_state": states, "context_noise_std": 0.03})
        theirs.restart_with_noise(states, 0.03)
        np.testing.assert_array_equal(ours.get_state(), theirs.sim.context)
        assert not np.array_equal(ours.get_state(), states)
    finally:
        _C.set_num_threads(before)


MEMORY_PROBE = """
import numpy as np
from ript_fast.envs import make_vec_env
def rss_mb():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) / 1024
make_vec_env("metaworld/pick-place-v3", 2, seed=0).reset()  # the shared model, imports, caches
base = rss_mb()
env = make_vec_env("metaworld/pick-place-v3", 100, seed=0)
env.reset()
for _ in range(10):
    env.step(np.zeros((100, 4), np.float32))
print((rss_mb() - base) / 100)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmRSS from /proc")
def test_memory_per_env_is_small(tmp_path: Path) -> None:
    """About 0.7 MB per pick-place env (bench/bench_engine.py measures it; a full model was 21 MB). The loose bound
    also carries the batch's own samplers (a full model each, 2 here) spread over its 100 envs. Run outside the
    checkout, so that the installed package is imported, not the source folder (no built core in a clean clone)."""
    probe = [sys.executable, "-c", MEMORY_PROBE]
    out = subprocess.run(probe, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert float(out.stdout.split()[-1]) < 4.0
