"""SFT on a tiny demo file: losses fall, checkpoints round-trip bit for bit, a killed run resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from ript_fast.config import ConfigError, load_config
from ript_fast.data import ChunkDataset, write_demo_file
from ript_fast.data.demo_file import read_demo_file
from ript_fast.envs.metaworld.tasks import TASKS
from ript_fast.envs.registry import resolve_tasks
from ript_fast.policies.base import Observation
from ript_fast.train.checkpoint import CheckpointError, load_policy, read_checkpoint_meta, save_policy
from ript_fast.train.run_logger import read_metrics
from ript_fast.train.sft import SftConfig, run_sft

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "sft_quest_smoke.yaml"


def config(smooth_demos: Path, *overrides: str) -> SftConfig:
    return load_config(SftConfig, SMOKE, [f"demos=[{smooth_demos}]", *overrides])


@pytest.fixture(scope="module")
def full_run(smooth_demos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of one uninterrupted smoke run (autoencoder 60 + prior 60 steps)."""
    out = tmp_path_factory.mktemp("full")
    run_sft(config(smooth_demos), out)
    return out


def test_losses_fall_and_run_folder_is_complete(full_run: Path) -> None:
    tmp_path = full_run
    ckpt = tmp_path / "policy.safetensors"
    history = read_metrics(tmp_path)
    ae = [r["autoencoder/loss"] for r in history if "autoencoder/loss" in r]
    prior = [r["prior/loss"] for r in history if "prior/loss" in r]
    assert ae[-1] < 0.6 * ae[0] and prior[-1] < 0.6 * prior[0]
    for name in [
        "config.yaml",
        "loss.png",
        "metrics.jsonl",
        "checkpoints/autoencoder.safetensors",
        "checkpoints/prior.safetensors",
        "checkpoints/train_state.safetensors",
    ]:
        assert (tmp_path / name).is_file(), name
    assert list((tmp_path / "tensorboard").iterdir())
    meta = read_checkpoint_meta(ckpt)
    assert meta["family"] == "quest" and meta["spec"]["task_names"] == ["reach-v3"]
    assert meta["spec"]["action_dim"] == 4 and meta["spec"]["state_dim"] == 39
    assert meta["notes"]["stage"] == "done" and meta["policy"]["quest"]["chunk_size"] == 16


def test_checkpoint_round_trip_is_bitwise(full_run: Path, tmp_path: Path) -> None:
    policy = load_policy(full_run / "policy.safetensors").eval()
    again = load_policy(save_policy(policy, tmp_path / "copy.safetensors")).eval()
    for key, value in policy.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    obs = Observation(torch.randn(5, 39), ["reach"] * 5, torch.zeros(5, dtype=torch.long))
    torch.manual_seed(1)
    a = policy.act(obs)
    torch.manual_seed(1)
    b = again.act(obs)
    assert torch.equal(a.actions, b.actions) and torch.equal(a.decision, b.decision)
    assert torch.equal(a.logprob, b.logprob)


def test_resume_continues_where_it_stopped(
    smooth_demos: Path, full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sample = ChunkDataset.sample
    calls = {"n": 0}

    def killed_at_step_75(self: ChunkDataset, *args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 75:
            raise KeyboardInterrupt  # the run dies between checkpoints (last one: step 50)
        return real_sample(self, *args)

    monkeypatch.setattr(ChunkDataset, "sample", killed_at_step_75)
    with pytest.raises(KeyboardInterrupt):
        run_sft(config(smooth_demos), tmp_path / "cut")
    monkeypatch.setattr(ChunkDataset, "sample", real_sample)
    resumed = run_sft(config(smooth_demos), tmp_path / "cut", mode="resume")
    a, b = load_policy(full_run / "policy.safetensors").state_dict(), load_policy(resumed).state_dict()
    for key, value in a.items():
        assert torch.allclose(value, b[key], atol=1e-6), key
    steps = [r["step"] for r in read_metrics(tmp_path / "cut")]
    assert steps == list(range(10, 121, 10))  # lines logged after step 50 by the killed run were dropped


def test_bad_checkpoints_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_policy(tmp_path / "absent.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=f"{junk}: not a safetensors"):
        load_policy(junk)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain), metadata={"other": json.dumps({})})
    with pytest.raises(CheckpointError, match="without ript-fast metadata"):
        load_policy(plain)


def test_checkpoints_of_another_format_or_family_are_refused(full_run: Path, tmp_path: Path) -> None:
    path = full_run / "policy.safetensors"
    with pytest.raises(CheckpointError, match="holds a 'quest' policy, but the config asks for family 'openvla_oft'"):
        load_policy(path, config_overrides={"family": "openvla_oft"})
    meta = read_checkpoint_meta(path)
    future = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(2)}, str(future), metadata={"ript_fast": json.dumps({**meta, "format": "x/9"})})
    with pytest.raises(CheckpointError, match=r"format 'x/9', this version reads 'ript_fast.policy/1'"):
        load_policy(future)


def test_stage_of_another_family_is_rejected(smooth_demos: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a quest stage"):
        run_sft(config(smooth_demos, "stages=[{name: scale, steps: 3}]"), tmp_path)


def _relabelled(smooth_demos: Path, out: Path, task: str) -> Path:
    """The demo file's episodes under another task name (a second task for a multi-task policy)."""
    ds = read_demo_file(smooth_demos, obs_keys=["state"])
    return write_demo_file(out, ds.episodes, f"metaworld/{task}", task, task.split("-")[0])


def test_stage2_fine_tunes_a_multitask_policy_on_one_of_its_tasks(smooth_demos: Path, tmp_path: Path) -> None:
    """QueST's stage 2: a policy pretrained on tasks [reach, push] fine-tuned on push's demos alone keeps its
    task table, and the fine-tune feeds it push's id (1), not the id push has in the small demo set (0)."""
    push = _relabelled(smooth_demos, tmp_path / "push.hdf5", "push-v3")
    pretrained = run_sft(config(smooth_demos, f"demos=[{smooth_demos}, {push}]"), tmp_path / "pre")
    data = ChunkDataset([read_demo_file(push, obs_keys=["state"])], 8, ["state"], [])
    data.use_task_table(["reach-v3", "push-v3"], ["reach", "push"])
    assert data.task_names == ["reach-v3", "push-v3"] and set(data.task_ids.tolist()) == {1}
    tuned = run_sft(config(push, f"init_checkpoint={pretrained}", "stages=[{name: prior, steps: 5}]"), tmp_path / "ft")
    policy = load_policy(tuned)
    assert policy.spec.task_names == ["reach-v3", "push-v3"]
    other = _relabelled(smooth_demos, tmp_path / "door.hdf5", "door-open-v3")
    with pytest.raises(ConfigError, match=r"the demos' tasks \['door-open-v3'\] must be among them"):
        run_sft(config(other, f"init_checkpoint={pretrained}"), tmp_path / "bad")


def test_a_task_table_keeps_ids_for_tasks_without_demos(smooth_demos: Path, tmp_path: Path) -> None:
    """QueST's held-out-task protocol: pretraining on reach-v3 alone with MT50's task table gives a policy that knows
    all 50 tasks, so a stage 2 on another task's demos (its row untrained so far) runs with that task's id."""
    pretrained = run_sft(config(smooth_demos, "task_table=metaworld/MT50"), tmp_path / "pre")
    policy = load_policy(pretrained)
    assert policy.spec.task_names == resolve_tasks("metaworld/MT50")
    assert policy.spec.instructions[policy.spec.task_names.index("push-v3")] == TASKS["push-v3"].instruction
    push = _relabelled(smooth_demos, tmp_path / "push.hdf5", "push-v3")
    tuned = run_sft(config(push, f"init_checkpoint={pretrained}", "stages=[{name: prior, steps: 5}]"), tmp_path / "ft")
    assert load_policy(tuned).spec.task_names == resolve_tasks("metaworld/MT50")
    for table, message in (
        ("metaworld/ML45-test", r"^task_table: metaworld/ML45-test has no task \['reach-v3'\]: the demos' tasks"),
        ("metaworld/MT5O", r"^task_table: unknown environment 'metaworld/MT5O'"),
    ):
        with pytest.raises(ConfigError, match=message):
            run_sft(config(smooth_demos, f"task_table={table}"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


CONFIGS = SMOKE.parent


PAPER = pytest.mark.slow  # paper-scale models: seconds each on 2 cores


@pytest.mark.parametrize(
    "name",
    [
        "sft_quest_metaworld_cpu.yaml",
        "sft_quest_mt50_cpu.yaml",
        "sft_quest_smoke.yaml",
        pytest.param("quest_libero_paper.yaml", marks=PAPER),
        pytest.param("quest_ml45_paper.yaml", marks=PAPER),
    ],
)
def test_quest_presets_build_and_act(name: str) -> None:
    from ript_fast.policies.base import PolicySpec
    from ript_fast.policies.factory import build_policy

    cfg = load_config(SftConfig, CONFIGS / name)
    state_dim = 12 if "libero" in name else 39
    policy = build_policy(cfg.policy, PolicySpec(7, state_dim, ["task"], ["do the task"])).eval()
    size = cfg.policy.obs.image_size
    images = {k: torch.randint(0, 255, (2, size, size, 3), dtype=torch.uint8) for k in cfg.policy.obs.image_keys}
    out = policy.act(
        Observation(torch.randn(2, state_dim), ["do the task"] * 2, torch.zeros(2, dtype=torch.long), images)
    )
    assert out.actions.shape == (2, cfg.policy.quest.action_horizon, 7)
    assert out.decision.shape == (2, cfg.policy.quest.chunk_size // cfg.policy.quest.downsample)


def test_oft_scale_head_preset_loads() -> None:
    cfg = load_config(SftConfig, CONFIGS / "oft_scale_head_libero.yaml")
    assert cfg.policy.family == "openvla_oft" and [(s.name, s.steps) for s in cfg.stages] == [("scale", 500)]
    assert cfg.policy.openvla_oft.lora_rank == 32 and cfg.policy.obs.render_size == 256


def test_stage2_preset_fine_tunes_only_the_prior() -> None:
    cfg = load_config(SftConfig, CONFIGS / "sft_quest_stage2_cpu.yaml")
    assert cfg.policy.family == "quest" and [s.name for s in cfg.stages] == ["prior"]
