"""A run killed with SIGKILL at random moments and resumed ends exactly like an uninterrupted one."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from python_tests.conftest import RIPT_FAST
from python_tests.ppo_fixtures import smoke_policy
from ript_fast.train.checkpoint import save_policy

TIMING_KEYS = ("seconds", "eval_seconds", "env_steps_per_s", "time_")


def train_cmd(init: Path, out: Path, resume: bool) -> list[str]:
    cmd = [RIPT_FAST, "train"]
    if resume:
        return [*cmd, "--resume", str(out)]
    return [
        *cmd,
        "--config",
        "configs/ript_smoke.yaml",
        "--init",
        str(init),
        "--out",
        str(out),
        "ript.iterations=6",
        "ript.dynamic_sampling=false",
        "contexts.eval_size=2",
        "keep_checkpoints=2",
    ]


def comparable(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING_KEYS)} for r in records]


def run_with_kills(init: Path, out: Path, kills: int, seed: int) -> int:
    """Starts the run, SIGKILLs it `kills` times at random moments, resumes until it completes."""
    rng = random.Random(seed)
    killed = 0
    while True:
        resume = (out / "config.yaml").exists()
        proc = subprocess.Popen(train_cmd(init, out, resume), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if killed < kills:
            try:
                proc.wait(timeout=rng.uniform(2.5, 9.0))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed += 1
                continue
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err.decode()[-3000:]
        return killed


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume")
    init = root / "init.safetensors"
    save_policy(smoke_policy(), init)
    ref = root / "reference"
    result = subprocess.run(train_cmd(init, ref, False), capture_output=True, timeout=900)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return init, ref


def check_same(run: Path, ref: Path) -> None:
    assert comparable(run) == comparable(ref)
    final, expected = load_file(run / "policy.safetensors"), load_file(ref / "policy.safetensors")
    assert final.keys() == expected.keys()
    for name in expected:
        assert final[name].equal(expected[name]), name
    assert not list((run / "checkpoints").glob(".*")), "no temporary checkpoint left behind"


def test_killed_and_resumed_run_matches_uninterrupted(reference: tuple[Path, Path], tmp_path: Path) -> None:
    init, ref = reference
    run = tmp_path / "run"
    start = time.perf_counter()
    killed = run_with_kills(init, run, kills=2, seed=0)
    assert killed == 2, f"the run finished before being killed twice ({time.perf_counter() - start:.0f} s)"
    check_same(run, ref)


KILL_WORKER = Path(__file__).with_name("kill_worker.py")


def test_kills_at_rollout_update_and_checkpoint_write(reference: tuple[Path, Path], tmp_path: Path) -> None:
    """Deterministic kills at the three moments that matter, one after another on the same run: during a
    rollout collection, during a PPO update, and inside a checkpoint write (files in the temporary folder,
    not yet renamed). Each resume must carry on as if nothing happened."""
    init, ref = reference
    run = tmp_path / "run"
    plan = [("rollout", 3), ("update", 2), ("checkpoint", 3)]
    for i, (point, n) in enumerate(plan):
        args = train_cmd(init, run, resume=i > 0)[1:]
        proc = subprocess.run([sys.executable, str(KILL_WORKER), point, str(n), *args], capture_output=True)
        assert proc.returncode == -signal.SIGKILL, (point, proc.stderr.decode()[-3000:])
    if (run / "checkpoints").is_dir():
        assert list((run / "checkpoints").glob(".*")), "the checkpoint kill left its temporary folder"
    result = subprocess.run(train_cmd(init, run, resume=True), capture_output=True, timeout=900)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    check_same(run, ref)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_many_kills(reference: tuple[Path, Path], tmp_path: Path, seed: int) -> None:
    init, ref = reference
    run = tmp_path / "run"
    run_with_kills(init, run, kills=6, seed=seed)
    check_same(run, ref)
