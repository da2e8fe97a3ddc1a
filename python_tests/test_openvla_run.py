"""OpenVLA end to end in LIBERO through the CLI with the shipped preset: `train` (the folder wrapped as the stage-2
policy, then RIPT) writes every artifact, `eval` measures the result and the downloaded folder as it is; a bad folder
is one line before any run folder or env exists.

The tiny random model never succeeds, so every advantage is zero here: what the update does with informative groups is
covered by test_openvla_policy.py. This proves the wiring: the one camera rendered at 256 px, a query every step, stored
log-probs that the update re-scores to the same values, LoRA-only checkpoints.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from python_tests.folder_damage import assert_cli_refuses, damaged_copy
from python_tests.libero_helpers import requires_gl, requires_libero
from python_tests.small_runs import SMALL_RIPT
from ript_fast.cli import main

pytestmark = [*requires_libero, requires_gl]

TASK = "libero/spatial/0"  # the shortest LIBERO episodes (220 steps): a random model runs every one to the end
PRESET = "ript_openvla_libero.yaml"
CPU = [
    "device=cpu",
    "sft.policy.openvla.dtype=float32",
    "policy.openvla.dtype=float32",
    "progress=false",
    f"env={TASK}",
]
ARTIFACTS = [
    "config.yaml",
    "run.json",
    "metrics.jsonl",
    "policy.safetensors",
    "best.safetensors",
    "policy/config.json",
    "policy/model.safetensors",
    "policy/README.md",
    "checkpoints/iter_000001/policy.safetensors",
    "checkpoints/iter_000001/trainer_state.safetensors",
    "success.png",
    "reject_rate.png",
    "clip_fraction.png",
    "approx_kl.png",
    "sft/policy.safetensors",
]


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short LIBERO demo file: the SFT section reads the data's shape from it (openvla trains no stage)."""
    from ript_fast.envs.libero.demos import record_demos

    actions = [np.clip(np.random.default_rng(0).normal(0, 0.3, (12, 7)), -1, 1)]
    return record_demos(TASK, actions, tmp_path_factory.mktemp("openvla_demos") / "spatial0.hdf5", render_size=(64, 64))


def folder_args(folder: Path, demos: Path) -> list[str]:
    return [f"sft.policy.openvla.checkpoint={folder}", f"demos.files=[{demos}]"]


def test_train_writes_every_artifact_then_eval_runs(openvla_folder: Path, demos: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ript"
    argv = ["train", "--config", PRESET, *folder_args(openvla_folder, demos), *CPU, *SMALL_RIPT, "--out", str(out)]
    assert main(argv) == 0
    missing = [name for name in ARTIFACTS if not (out / name).is_file()]
    assert not missing and any((out / "tensorboard").iterdir())
    config = (out / "config.yaml").read_text()
    assert "family: openvla" in config and "clip_eps: 0.2" in config and "temperature: 1.0" in config
    obs = json.loads((out / "policy" / "config.json").read_text())["policy"]["obs"]
    assert obs["image_keys"] == ["agentview_rgb"] and obs["render_size"] == 256  # the envs render what it reads
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    update = next(r for r in records if r.get("rollouts"))
    assert update["rollouts"] == 2 and update["env_steps"] >= 2 * 220  # one query per step, to the time limit
    assert abs(update["approx_kl"]) < 1e-5  # the update re-scores the stored tokens to their sampling log-probs
    weights = load_file(str(out / "policy.safetensors"))
    assert weights and all("lora_" in k for k in weights)  # the base is re-read from the folder
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(out / "policy.safetensors"), "--env", TASK, "--episodes", "1"]) == 0
    assert "success" in capsys.readouterr().out


def test_the_downloaded_folder_evaluates_as_it_is(openvla_folder: Path, capsys) -> None:
    """`eval --ckpt <folder>`: the official model's success before any RIPT, with LIBERO's official inputs."""
    assert main(["eval", "--ckpt", str(openvla_folder), "--env", TASK, "--episodes", "1"]) == 0
    assert "success" in capsys.readouterr().out


def test_train_starts_from_the_downloaded_folder_as_init(openvla_folder: Path, tmp_path: Path) -> None:
    """`train init=<official folder>`: the fine-tune is the stage-2 policy as downloaded (no SFT section, no demo
    file), with the preset's RIPT settings on top; the run trains LoRA only and runs no SFT."""
    out = tmp_path / "ript"
    assert main(["train", "--config", PRESET, f"init={openvla_folder}", *CPU, *SMALL_RIPT, "--out", str(out)]) == 0
    assert not (out / "sft").exists() and (out / "policy" / "README.md").is_file()
    recorded = json.loads((out / "policy" / "config.json").read_text())["policy"]
    assert recorded["family"] == "openvla" and recorded["openvla"]["temperature"] == 1.0
    weights = load_file(str(out / "policy.safetensors"))
    assert weights and all("lora_" in k for k in weights)


REFUSED = {
    "no such folder": ([], lambda f: shutil.rmtree(f), "is not a folder"),
    "no tokenizer": ([], lambda f: (f / "tokenizer.json").unlink(), "tokenizer.json: is missing"),
    "unnorm key absent": (["sft.policy.openvla.unnorm_key=libero_10"], lambda f: None, "dataset_statistics.json"),
    "two cameras": (
        ["sft.policy.obs.image_keys=[agentview_rgb,eye_in_hand_rgb]"],
        lambda f: None,
        "OpenVLA reads one",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_folder_is_one_line_before_any_run_starts(
    case: str, openvla_folder: Path, demos: Path, tmp_path: Path, capsys
) -> None:
    overrides, damage, expected = REFUSED[case]
    copy = damaged_copy(openvla_folder, tmp_path, damage)
    argv = ["train", "--config", PRESET, *folder_args(copy, demos), *CPU, *SMALL_RIPT, *overrides]
    assert_cli_refuses(argv, tmp_path / "ript", expected, capsys)
