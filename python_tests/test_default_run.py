"""The default run (`ript-fast train` with no arguments) and the recipe of the prior it ships with, at smoke size.

The default preset fine-tunes the packaged MT50 prior on the 2 demos of its target task that the prior saw, then runs
RIPT. The prior's recipe is: scripted demos of MT50's tasks (`ript-fast collect-demos`, noise 0.2, seed 1000), then
`ript-fast sft --config sft_quest_mt50_cpu.yaml` on all of them; here with 3 tasks and a few steps, then the default
run from that prior in place of the packaged one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from python_tests.small_runs import SMALL_RIPT
from ript_fast.cli import main
from ript_fast.config import find_config, load_config
from ript_fast.data.demo_file import read_demo_file
from ript_fast.envs.registry import resolve_tasks
from ript_fast.train.checkpoint import read_checkpoint_meta
from ript_fast.train.run_config import TrainConfig

TASKS = ["reach-v3", "push-v3", "door-open-v3"]
TINY_STAGES = "stages=[{name: autoencoder, steps: 4, batch_size: 16}, {name: prior, steps: 4, batch_size: 16}]"
SMALL_RUN = [*SMALL_RIPT, "sft.stages=[{name: prior, steps: 3, batch_size: 8}]", "progress=false"]


@pytest.fixture(scope="module")
def smoke_prior(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prior's recipe at smoke size: 2 demos of each of 3 tasks as the default run collects them, SFT."""
    root = tmp_path_factory.mktemp("prior")
    files = []
    for task in TASKS:
        out = root / "demos" / f"{task}.hdf5"
        argv = ["collect-demos", "--env", f"metaworld/{task}", "--num-demos", "2", "--noise", "0.2", "--seed", "1000"]
        assert main([*argv, "--out", str(out)]) == 0
        files.append(str(out))
    sft = ["sft", "--config", "sft_quest_mt50_cpu.yaml", f"demos=[{','.join(files)}]", TINY_STAGES, "progress=false"]
    assert main([*sft, "--out", str(root / "pretrain")]) == 0
    return root / "pretrain" / "policy.safetensors"


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
    seen = read_demo_file(smoke_prior.parents[1] / "demos" / "door-open-v3.hdf5", obs_keys=["state"]).episodes
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
