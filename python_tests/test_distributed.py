"""torch.distributed: a 2-rank (gloo) PPO update equals a 1-rank update over the same rollouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from python_tests.conftest import RIPT_FAST
from python_tests.ppo_fixtures import frozen_batch, oft_policy, perturb, sgd, smoke_policy
from ript_fast import ops
from ript_fast.policies.base import Policy
from ript_fast.train.distributed import Dist
from ript_fast.train.ppo import PPOObjective, PPOSettings, minibatch_schedule, ppo_update

WORKER = Path(__file__).resolve().parent / "ddp_update_worker.py"
K, ROLLOUTS, MINIBATCH, EPOCHS = 4, 16, 8, 2


def start_policy(oft_folder: Path | None) -> Policy:
    return oft_policy(oft_folder) if oft_folder else smoke_policy()


def one_rank_update(variant: str, oft_folder: Path | None) -> dict[str, torch.Tensor]:
    """The same update in one process: global minibatch j = the union of the ranks' minibatches j."""
    policy = start_policy(oft_folder)
    batch = frozen_batch(policy, ROLLOUTS)
    perturb(policy, 0.05)
    advantages = ops.rloo_advantage(batch.rewards.view(-1, K)).flatten()
    half = ROLLOUTS // 2
    local = minibatch_schedule(half, MINIBATCH // 2, EPOCHS, torch.Generator().manual_seed(5))
    schedule = [torch.cat([idx, idx + half]) for idx in local]
    level, _, average = variant.partition("/")
    settings = PPOSettings(EPOCHS, MINIBATCH, 0.2, None, level, 1.0, average or "tokens")  # type: ignore[arg-type]
    optimizer = sgd(policy)
    ppo_update(PPOObjective(policy, settings), optimizer, batch, advantages, schedule, settings, Dist())
    return {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    ("family", "level"),
    [("quest", "token"), ("quest", "sequence"), ("quest", "token/rollouts"), ("openvla_oft", "token")],
)
def test_two_rank_update_equals_one_rank(family: str, level: str, tmp_path: Path, request) -> None:
    """Also for OpenVLA-OFT (LoRA in peft, frozen base, heads) at its released setting: DDP must see every
    trainable parameter get a gradient on each rank, and average them as one process would sum them."""
    folder = request.getfixturevalue("oft_folder") if family == "openvla_oft" else None
    out = tmp_path / "two_ranks.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    args = [str(WORKER), str(out), level, *([str(folder)] if folder else [])]
    result = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    two = torch.load(out)
    one = one_rank_update(level, folder)
    start = start_policy(folder)
    perturb(start, 0.05)
    moved = max((one[n] - p).abs().max().item() for n, p in start.named_parameters() if n in one)
    assert moved > 1e-4, "the update must actually move the weights"
    assert two.keys() == one.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6, msg=name)


def test_torchrun_train_end_to_end(tmp_path: Path) -> None:
    """`torchrun --nproc-per-node=2 ript-fast train`: both ranks roll out and update, rank 0 alone writes, and
    the metrics are the job's (summed over ranks)."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", RIPT_FAST, "train"]
    args = ["--config", "configs/ript_smoke.yaml", "--out", str(out), "ript.dynamic_sampling=false"]
    result = subprocess.run([*cmd, *args, "contexts.eval_size=2"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [0, 1, 2]
    for r in records[1:]:
        assert r["world_size"] == 2
        assert r["rollouts"] == 4  # B over the job: B / 2 from each rank
        assert r["env_steps"] > 0 and 0.0 <= r["eval_success"] <= 1.0
    assert (out / "policy.safetensors").is_file() and (out / "success.png").is_file()


def test_rank_exit_keeps_output_and_code() -> None:
    """A rank ends without interpreter finalization (gloo's threads can abort it, `exit_process`), yet what
    it printed, unflushed, and its exit code must come through."""
    code = "import sys; from ript_fast.train.distributed import exit_process; "
    code += "sys.stdout.write('out'); sys.stderr.write('err'); exit_process(3)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out", "err")


def test_cli_rank_exits_with_the_commands_code(tmp_path: Path) -> None:
    """Under torchrun (WORLD_SIZE > 1) `ript-fast` leaves through `exit_process` with the command's code and its
    one error line."""
    missing = tmp_path / "missing.yaml"
    env = {**os.environ, "WORLD_SIZE": "2"}
    cmd = [RIPT_FAST, "train", "--config", str(missing)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ript-fast train: error: no config file {missing}")
