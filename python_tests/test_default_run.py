"""The default run (`ript-fast train` with no arguments) and the recipe of the prior it ships with, at smoke size.

The default preset fine-tunes the packaged MT50 prior on the 2 demos of its target task that the prior saw, then runs
RIPT. The prior is made by one command, `ript-fast sft --config prior_quest_mt50_cpu.yaml`: scripted demos of MT50's
tasks (noise 0.2, seed 1000; 2 of each few-shot task), then SFT on all of them; here with 3 tasks and a few steps,
then the default run from that prior in place of the packaged one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from python_tests.small_runs import SMALL_RIPT
from ript_fast.cli import main
from ript_fast.config import ConfigError, find_config, load_config
from ript_fast.data.collect import collect_or_reuse
from ript_fast.data.demo_file import read_demo_file
from ript_fast.envs.registry import resolve_tasks
from ript_fast.train.checkpoint import read_checkpoint_meta
from ript_fast.train.run_config import TrainConfig

TASKS = ["push-v3", "reach-v3", "door-open-v3"]  # the prior's task table: name order, the few-shot tasks last
TINY_STAGES = "stages=[{name: autoencoder, steps: 4, batch_size: 16}, {name: prior, steps: 4, batch_size: 16}]"
SMALL_PRIOR = [
    "sft",
    "--config",
    "prior_quest_mt50_cpu.yaml",
    "collect.env=[metaworld/reach-v3, metaworld/door-open-v3, metaworld/push-v3]",
    "collect.num_demos=3",
    "collect.few_shot=[door-open-v3]",
    TINY_STAGES,
    "progress=false",
]
SMALL_RUN = [*SMALL_RIPT, "sft.stages=[{name: prior, steps: 3, batch_size: 8}]", "progress=false"]


@pytest.fixture(scope="module")
def smoke_prior(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prior's command at smoke size: 3 demos of 2 tasks, 2 of the few-shot door-open, a few SFT steps."""
    out = tmp_path_factory.mktemp("prior") / "run"
    assert main([*SMALL_PRIOR, "--out", str(out)]) == 0
    return out / "policy.safetensors"


def test_the_prior_command_is_the_two_step_recipe(smoke_prior: Path, tmp_path: Path) -> None:
    """Its demos are `ript-fast collect-demos` files, its policy bit for bit `ript-fast sft` on those files."""
    files = []
    for task in TASKS:
        n = "2" if task == "door-open-v3" else "3"
        out = tmp_path / f"{task}.hdf5"
        argv = ["collect-demos", "--env", f"metaworld/{task}", "--num-demos", n, "--noise", "0.2", "--seed", "1000"]
        assert main([*argv, "--out", str(out)]) == 0
        ours = read_demo_file(smoke_prior.parent / "demos" / f"{task}.hdf5", obs_keys=["state"]).episodes
        theirs = read_demo_file(out, obs_keys=["state"]).episodes
        assert len(ours) == len(theirs) == int(n)
        for a, b in zip(ours, theirs, strict=True):
            assert np.array_equal(a.actions, b.actions) and np.array_equal(a.obs["state"], b.obs["state"])
        files.append(str(out))
    sft = ["sft", "--config", "sft_quest_mt50_cpu.yaml", f"demos=[{','.join(files)}]", TINY_STAGES, "progress=false"]
    assert main([*sft, "--out", str(tmp_path / "sft")]) == 0
    ours, theirs = load_file(smoke_prior), load_file(tmp_path / "sft" / "policy.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("collect.few_shot=[dial-turn-v3]", "collect.few_shot: 'dial-turn-v3' is not a task of"),
        ("collect.env=metaworld/doo-open-v3", "collect.env: unknown environment 'metaworld/doo-open-v3'"),
        ("collect.env=libero/goal/0", "collect.env: scripted experts exist for MetaWorld tasks only"),
        ("demos=[x.hdf5]", "demos, collect: give demo files or a collect section, not both"),
    ],
)
def test_a_bad_collect_section_is_one_line_before_the_folder_is_made(
    override: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SMALL_PRIOR, override, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_demos_made_with_other_settings_are_never_reused(tmp_path: Path) -> None:
    path = collect_or_reuse("metaworld/reach-v3", 2, tmp_path / "reach-v3.hdf5", 0.2, 1000, "collect", False)
    assert collect_or_reuse("metaworld/reach-v3", 2, path, 0.2, 1000, "collect", False) == path  # reused
    with pytest.raises(ConfigError, match=r"collected with collect.seed=1000, the config says 7"):
        collect_or_reuse("metaworld/reach-v3", 2, path, 0.2, 7, "collect", False)
    with pytest.raises(ConfigError, match=r"collected with collect.num_demos=2, the config says 3"):
        collect_or_reuse("metaworld/reach-v3", 3, path, 0.2, 1000, "collect", False)


def test_the_default_run_fine_tunes_the_prior_on_the_demos_it_saw_then_runs_ript(
    smoke_prior: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["train", f"sft.init_checkpoint={smoke_prior}", *SMALL_RUN, "--out", str(out)]
    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("ript-fast train: metaworld/door-open-v3, fine-tuning policy.safetensors on 2 scripted")
    stage2 = read_checkpoint_meta(out / "sft" / "policy.safetensors")
    assert stage2["spec"]["task_names"] == TASKS  # the prior's task table, kept by the stage-2 fine-tune
    recorded = json.loads((out / "policy" / "config.json").read_text())
    assert recorded["family"] == "quest"
    seen = read_demo_file(smoke_prior.parent / "demos" / "door-open-v3.hdf5", obs_keys=["state"]).episodes
    collected = read_demo_file(out / "demos" / "door-open-v3.hdf5", obs_keys=["state"]).episodes
    assert len(collected) == len(seen) == 2  # the run's demos are the ones the prior saw, step for step
    for a, b in zip(collected, seen, strict=True):
        assert np.array_equal(a.actions, b.actions) and np.array_equal(a.states, b.states)
    assert [json.loads(line)["iteration"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [0, 1]


def test_the_packaged_prior_knows_every_mt50_task() -> None:
    """The default preset loads with the shipped prior, which knows all 50 tasks (any runs with `env=`)."""
    cfg = load_config(TrainConfig, find_config("default"))
    meta = read_checkpoint_meta(cfg.sft.init_checkpoint)
    assert meta["family"] == "quest" and sorted(meta["spec"]["task_names"]) == sorted(resolve_tasks("metaworld/MT50"))
    assert cfg.env == "metaworld/door-open-v3" and cfg.demos.seed == 1000 and cfg.demos.num_demos == 2
