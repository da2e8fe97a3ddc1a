"""A run killed with SIGKILL at random moments and resumed ends exactly like an uninterrupted one.

The runs that are killed start from a policy that learns: a smoke QueST policy SFT-trained on 2 scripted demos of
reach-v3 (`sft_init`, made once here), on 8 contexts of which it solves some always, some never and some
sometimes. So groups of K rollouts have mixed success, advantages are non-zero and every PPO step moves the
weights: "exactly like" is then a claim about real updates, not about steps that change nothing. The reference
run checks that this holds (`test_reference_runs_train_on_informative_groups`). The runs use dynamic sampling
(the default preset's path: uninformative groups rejected and replaced, several rounds an iteration), several
PPO epochs and minibatches; the slow tests add the no-dynamic-sampling ablation.
"""

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
from python_tests.ppo_fixtures import moved_tensors
from ript_fast.train.trainer_checkpoints import TrainerCheckpoints

TIMING_KEYS = ("seconds", "eval_seconds", "env_steps_per_s", "time_")

# The random-weight smoke run other tests use (test_run_folder.py): fast, but every group fails, so its updates
# are all zero; resume is proven on LEARNING below, not with these.
STATIC = ["contexts.eval_size=2", "ript.iterations=6", "ript.dynamic_sampling=false"]
# The run that learns (from `sft_init`): 8 contexts (seeds 1008-1015) of which the SFT policy solves some
# sometimes, groups of 4, one informative group (B = 4) an iteration from up to 10 rounds of 2 contexts (3 were
# not always enough: the SFT policy differs with the CPU's floating point), 2 PPO epochs of 2 minibatches.
LEARNING = [
    "contexts.eval_size=1",
    "contexts.seed=1008",
    "contexts.size=8",
    "ript.iterations=5",
    "ript.group_size=4",
    "ript.batch_rollouts=4",
    "ript.contexts_per_round=2",
    "ript.max_rounds=10",
    "ript.ppo_epochs=2",
    "ript.minibatch_rollouts=2",
]
DYNAMIC = [*LEARNING, "ript.dynamic_sampling=true"]
NO_DYNAMIC = [*LEARNING, "ript.dynamic_sampling=false"]


def train_cmd(init: Path, out: Path, resume: bool, settings: list[str] = STATIC) -> list[str]:
    cmd = [RIPT_FAST, "train"]
    if resume:
        return [*cmd, "--resume", str(out)]
    return [*cmd, "--config", "configs/ript_smoke.yaml", "--init", str(init), "--out", str(out), *settings]


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def comparable(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(TIMING_KEYS)} for r in records(run)]


def run_with_kills(init: Path, out: Path, kills: int, seed: int, settings: list[str] = STATIC) -> int:
    """Starts the run, SIGKILLs it `kills` times at random moments, resumes until it completes.

    Even-numbered kills land 2.5-9 s after a start (often before the first checkpoint); odd-numbered ones once
    the process has logged 1 or 2 iterations past where it started, 0-1.5 s later (so some kill lands after a
    checkpoint, and the resume has optimizer moments, sampler and RNG states to restore)."""
    rng = random.Random(seed)
    killed = 0
    while True:
        resume = (out / "config.yaml").exists()
        logged = _checkpointed(out) + 1  # the lines a resumed run keeps in metrics.jsonl (iteration 0 on)
        proc = subprocess.Popen(
            train_cmd(init, out, resume, settings), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        if killed < kills:
            if killed % 2 == 0:
                deadline = time.monotonic() + rng.uniform(2.5, 9.0)
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
            else:
                target, delay = min(logged + rng.randint(1, 2), 5), rng.uniform(0.0, 1.5)
                while proc.poll() is None and _lines(out / "metrics.jsonl") < target:
                    time.sleep(0.05)
                time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed += 1
                continue
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err.decode()[-3000:]
        return killed


def _checkpointed(run: Path) -> int:
    """The iteration of the run's latest checkpoint (0: none)."""
    saved = TrainerCheckpoints(run / "checkpoints", keep=2).saved() if (run / "checkpoints").is_dir() else []
    return saved[-1].iteration if saved else 0


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, timeout=900)
    assert result.returncode == 0, result.stderr.decode()[-3000:]


@pytest.fixture(scope="module")
def sft_init(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke preset's stage-2 policy (2 noisy expert demos of reach-v3, 120 SFT steps on one thread: the
    policy `ript-fast train --config configs/ript_smoke.yaml` makes), about 20 s."""
    root = tmp_path_factory.mktemp("sft")
    demos = root / "reach-v3.hdf5"
    collect = ["collect-demos", "--env", "metaworld/reach-v3", "--num-demos", "2", "--noise", "0.2", "--seed", "0"]
    _run([RIPT_FAST, *collect, "--out", str(demos)])
    sft = ["sft", "--config", "configs/sft_quest_smoke.yaml", f"demos=[{demos}]", "num_demos=2", "threads=1"]
    _run([RIPT_FAST, *sft, "--out", str(root / "sft")])
    return root / "sft" / "policy.safetensors"


SETTINGS = {"dynamic": DYNAMIC, "no_dynamic": NO_DYNAMIC}


def _reference(init: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    ref = tmp_path_factory.mktemp(f"reference-{name}") / "run"
    _run(train_cmd(init, ref, False, SETTINGS[name]))
    return ref


@pytest.fixture(scope="module")
def reference_dynamic(sft_init: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run with dynamic sampling (the default preset's path)."""
    return _reference(sft_init, tmp_path_factory, "dynamic")


@pytest.fixture(scope="module")
def reference_no_dynamic(sft_init: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run keeping every group (the paper's ablation)."""
    return _reference(sft_init, tmp_path_factory, "no_dynamic")


def check_same(run: Path, ref: Path) -> None:
    assert comparable(run) == comparable(ref)
    final, expected = load_file(run / "policy.safetensors"), load_file(ref / "policy.safetensors")
    assert final.keys() == expected.keys()
    for name in expected:
        assert final[name].equal(expected[name]), name
    assert not list((run / "checkpoints").glob(".*")), "no temporary checkpoint left behind"


def check_learns(ref: Path, init: Path, dynamic: bool) -> None:
    """Every iteration of the reference trained on a group with mixed success (non-zero advantages: non-zero
    loss and gradient), dynamic sampling rejected groups, and the weights moved at every checkpoint."""
    its = records(ref)[1:]
    assert len(its) == 5
    for r in its:
        assert r["kept_groups"] >= 1, r
        assert r["loss"] != 0.0 and r["grad_norm"] > 0.0, f"iteration {r['iteration']}: an update with no signal"
    if dynamic:
        assert sum(r["rejected_groups"] for r in its) > 0, "dynamic sampling never rejected a group"
    else:
        assert sum(r["rejected_groups"] for r in its) == 0
    saved = TrainerCheckpoints(ref / "checkpoints", keep=2).saved()
    moved = moved_tensors(init, ref / "policy.safetensors")
    assert moved and all(name.startswith("prior.") for name in moved), moved  # only what RIPT trains moved
    assert moved_tensors(saved[-2].policy_path, saved[-1].policy_path), "the last iteration changed nothing"


@pytest.mark.parametrize("name", ["dynamic", pytest.param("no_dynamic", marks=pytest.mark.slow)])
def test_reference_runs_train_on_informative_groups(request: pytest.FixtureRequest, sft_init: Path, name: str) -> None:
    check_learns(request.getfixturevalue(f"reference_{name}"), sft_init, dynamic=name == "dynamic")


def test_killed_and_resumed_run_matches_uninterrupted(reference_dynamic: Path, sft_init: Path, tmp_path: Path) -> None:
    ref = reference_dynamic
    run = tmp_path / "run"
    start = time.perf_counter()
    killed = run_with_kills(sft_init, run, kills=2, seed=0, settings=DYNAMIC)
    assert killed == 2, f"the run finished before being killed twice ({time.perf_counter() - start:.0f} s)"
    check_same(run, ref)


KILL_WORKER = Path(__file__).with_name("kill_worker.py")


def test_kills_at_rollout_update_and_checkpoint_write(reference_dynamic: Path, sft_init: Path, tmp_path: Path) -> None:
    """Deterministic kills at the three moments that matter, one after another on the same run: during a PPO
    update (iteration 2), inside a checkpoint write (iteration 3's: files in the temporary folder, not yet
    renamed), and during a rollout collection (the 6th after resuming at iteration 3: in the reference, the
    second round of iteration 5, after a rejected group). Each resume must carry on as if nothing happened."""
    ref = reference_dynamic
    run = tmp_path / "run"
    plan = [("update", 2), ("checkpoint", 3), ("rollout", 6)]
    for i, (point, n) in enumerate(plan):
        args = train_cmd(sft_init, run, i > 0, DYNAMIC)[1:]
        proc = subprocess.run([sys.executable, str(KILL_WORKER), point, str(n), *args], capture_output=True)
        assert proc.returncode == -signal.SIGKILL, (point, proc.stderr.decode()[-3000:])
        if point == "checkpoint":
            assert list((run / "checkpoints").glob(".*")), "the checkpoint kill left its temporary folder"
    _run(train_cmd(sft_init, run, True, DYNAMIC))
    check_same(run, ref)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dynamic", "no_dynamic"])
@pytest.mark.parametrize("seed", [1, 2])
def test_many_kills(request: pytest.FixtureRequest, sft_init: Path, tmp_path: Path, name: str, seed: int) -> None:
    run = tmp_path / "run"
    run_with_kills(sft_init, run, kills=4, seed=seed, settings=SETTINGS[name])
    check_same(run, request.getfixturevalue(f"reference_{name}"))
