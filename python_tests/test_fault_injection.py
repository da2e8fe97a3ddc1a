"""A whole `ript-fast train` (demos -> SFT -> RIPT) SIGKILLed at random points of every stage and resumed each
time ends exactly like an uninterrupted run: same demos, same SFT policy, same RIPT metrics and weights."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from python_tests.conftest import RIPT_FAST
from python_tests.test_resume import KILL_WORKER, comparable
from ript_fast.data.demo_file import read_demo_file

FRESH = ["--config", "configs/ript_smoke.yaml", "contexts.eval_size=2", "ript.iterations=3"]


def train_args(out: Path) -> list[str]:
    return ["train", "--resume", str(out)] if (out / "config.yaml").exists() else ["train", *FRESH, "--out", str(out)]


def kill_plan(seed: int) -> list[tuple[str, int]]:
    """One kill in each stage, at a random pass through it (smoke config: ~40 expert steps per demo batch,
    120 SFT steps with a checkpoint every 50, 3 RIPT iterations)."""
    rng = random.Random(seed)
    return [
        ("demos", rng.randint(1, 30)),
        ("sft_step", rng.randint(1, 110)),
        ("sft_save", rng.randint(1, 3)),
        ("sft_state", rng.randint(1, 2)),
        ("rollout", rng.randint(1, 3)),
        ("update", rng.randint(1, 2)),
        ("checkpoint", rng.randint(1, 4)),
    ]


def assert_same_run(run: Path, ref: Path) -> None:
    for name in ["demos/reach-v3.hdf5"]:
        got, want = read_demo_file(run / name), read_demo_file(ref / name)
        assert len(got.episodes) == len(want.episodes)
        for a, b in zip(got.episodes, want.episodes, strict=True):
            assert np.array_equal(a.actions, b.actions) and np.array_equal(a.states, b.states)
    for name in ["sft/policy.safetensors", "policy.safetensors"]:
        got, want = load_file(run / name), load_file(ref / name)
        assert got.keys() == want.keys()
        assert all(got[k].equal(want[k]) for k in want), name
    assert comparable(run) == comparable(ref)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ref = tmp_path_factory.mktemp("fault") / "ref"
    result = subprocess.run([RIPT_FAST, *train_args(ref)], capture_output=True, timeout=900)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return ref


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_killed_in_every_stage_and_resumed_equals_uninterrupted(reference: Path, tmp_path: Path, seed: int) -> None:
    run = tmp_path / "run"
    kills = 0
    for point, n in kill_plan(seed):
        proc = subprocess.run([sys.executable, str(KILL_WORKER), point, str(n), *train_args(run)], capture_output=True)
        assert proc.returncode in (-signal.SIGKILL, 0), (point, n, proc.stderr.decode()[-3000:])
        kills += proc.returncode == -signal.SIGKILL
    assert kills >= 5, f"only {kills} of the planned kills landed"
    result = subprocess.run([RIPT_FAST, *train_args(run)], capture_output=True, timeout=900)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert_same_run(run, reference)
