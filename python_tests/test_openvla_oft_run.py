"""OpenVLA-OFT end to end in LIBERO through the CLI, with the shipped presets: the scale-head stage (`sft`), RIPT
(`train`) and `eval`, on a tiny random-weight folder in the official layout; and the one-line refusals of a bad
folder before any run folder or env exists.

The tiny model never succeeds, so every advantage is zero here: what RIPT's update does with informative groups is
covered by test_openvla_oft_policy.py / test_ript_ppo_reference.py. This proves the wiring: 256 px renders of both
cameras, the 8-d proprio from the env's views, stored log-probs that the update re-scores to the same values.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from python_tests.folder_damage import assert_cli_refuses, damaged_copy
from python_tests.libero_helpers import requires_gl, requires_libero
from python_tests.small_runs import SMALL_RIPT
from ript_fast.cli import main

pytestmark = [*requires_libero, requires_gl]

TASK = "libero/goal/0"
CPU = ["device=cpu", "policy.openvla_oft.dtype=float32", "progress=false"]
SFT_STEPS = "stages=[{name: scale, steps: 3, lr: 1.0e-2, batch_size: 2}]"


@pytest.fixture(scope="module")
def folder(oft_folder: Path) -> Path:
    """The session's tiny random folder (conftest); tests that damage one work on a copy."""
    return oft_folder


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ript_fast.envs.libero.demos import record_demos

    rng = np.random.default_rng(0)
    actions = [np.clip(rng.normal(0, 0.3, (12, 7)), -1, 1) for _ in range(2)]
    return record_demos(TASK, actions, tmp_path_factory.mktemp("oft_demos") / "goal0.hdf5", render_size=(64, 64))


@pytest.fixture(scope="module")
def scale_stage(folder: Path, demos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("oft_sft") / "scale"
    code = main(
        [
            "sft",
            "--config",
            "oft_scale_head_libero.yaml",
            f"policy.openvla_oft.checkpoint={folder}",
            f"demos=[{demos}]",
            SFT_STEPS,
            *CPU,
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_the_scale_head_stage_trains_only_the_scale_head(scale_stage: Path) -> None:
    weights = load_file(str(scale_stage / "policy.safetensors"))
    assert any(k.startswith("scale_head.") for k in weights)
    base = [k for k in weights if k.startswith("model.vlm.") and "lora_" not in k]
    assert not base  # the frozen base is re-read from the folder
    lora = [v for k, v in weights.items() if "lora_B" in k]
    assert lora and all(bool((v == 0).all()) for v in lora)  # LoRA untouched (B starts at 0)
    records = [json.loads(line) for line in (scale_stage / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records if "stage" in r} == {"scale"}
    assert all(np.isfinite(r["loss"]) for r in records if "loss" in r)


def test_train_then_eval_run_on_libero_with_256_px_cameras(
    scale_stage: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ript_fast.train.ript_run as ript_run

    envs: list[dict] = []

    def recording_make_vec_env(*args, **options):
        envs.append(options)
        return make_vec_env(*args, **options)

    make_vec_env = ript_run.make_vec_env
    monkeypatch.setattr(ript_run, "make_vec_env", recording_make_vec_env)
    out = tmp_path / "ript"
    init = scale_stage / "policy.safetensors"
    argv = ["train", "--config", "ript_openvla_oft_libero.yaml", f"init={init}", f"env={TASK}", *CPU, *SMALL_RIPT]
    assert main([*argv, "--out", str(out)]) == 0
    assert [(e["obs_mode"], e["render_size"]) for e in envs] == [("state+rgb", (256, 256))] * 2  # rollouts, eval
    assert "clip_eps: 0.1" in (out / "config.yaml").read_text()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    update = next(r for r in records if r.get("rollouts"))
    assert update["rollouts"] == 2 and update["env_steps"] > 0
    assert abs(update["approx_kl"]) < 1e-5  # the update re-scores the stored chunks to their sampling log-probs
    trained = load_file(str(out / "policy.safetensors"))
    before = load_file(str(init))
    assert torch.equal(trained["scale_head.log_b_head.weight"], before["scale_head.log_b_head.weight"])  # frozen
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(out / "policy.safetensors"), "--env", TASK, "--episodes", "1"]) == 0
    assert "success" in capsys.readouterr().out


def without(name: str):
    def damage(folder: Path) -> None:
        next(folder.glob(f"{name}*")).unlink()

    return damage


REFUSED = {
    "no such folder": ([], lambda f: shutil.rmtree(f), "is not a folder"),
    "no action head": ([], without("action_head--"), "action_head--*_checkpoint.pt is missing"),
    "no tokenizer": ([], without("tokenizer.json"), "tokenizer.json: is missing"),
    "unnorm key absent": (["policy.openvla_oft.unnorm_key=libero_10"], lambda f: None, "dataset_statistics.json"),
    "one camera for a two-image model": (
        ["policy.obs.image_keys=[agentview_rgb]"],
        lambda f: None,
        "policy.obs.image_keys names 1 camera(s) but policy.openvla_oft.num_images is 2",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_folder_is_one_line_before_any_run_starts(
    case: str, folder: Path, demos: Path, tmp_path: Path, capsys
) -> None:
    overrides, damage, expected = REFUSED[case]
    copy = damaged_copy(folder, tmp_path, damage)
    argv = ["sft", "--config", "oft_scale_head_libero.yaml", f"policy.openvla_oft.checkpoint={copy}"]
    assert_cli_refuses([*argv, f"demos=[{demos}]", SFT_STEPS, *CPU, *overrides], tmp_path / "scale", expected, capsys)


def test_train_refuses_a_moved_folder_before_the_run_folder_exists(scale_stage: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ript"
    init = scale_stage / "policy.safetensors"
    argv = ["train", "--config", "ript_openvla_oft_libero.yaml", f"init={init}", f"env={TASK}", *CPU]
    code = main([*argv, f"policy.openvla_oft.checkpoint={tmp_path / 'gone'}", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"{tmp_path / 'gone'}: is not a folder" in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_the_downloaded_folder_evaluates_as_it_is(folder: Path, capsys) -> None:
    """`eval --ckpt <folder>`: the official model's success before any RIPT, with LIBERO's official inputs."""
    assert main(["eval", "--ckpt", str(folder), "--env", TASK, "--episodes", "1"]) == 0
    assert "success" in capsys.readouterr().out


def test_train_starts_from_the_folder_and_a_released_scale_head_on_any_task(
    folder: Path, tmp_path: Path, capsys
) -> None:
    """init=<folder> + RIPT's released scale-head file skips the scale-head stage; the model reads instructions,
    so a task outside any demo (goal/1) is fine. Without a scale head it is one line before anything starts."""
    from ript_fast.policies.openvla_oft.scale_head import LaplaceScaleHead, save_released_layout

    other_task = "libero/goal/1"
    argv = ["train", "--config", "ript_openvla_oft_libero.yaml", f"init={folder}", f"env={other_task}", *CPU]
    refused = tmp_path / "refused"
    assert main([*argv, *SMALL_RIPT, "--out", str(refused)]) == 2
    err = capsys.readouterr().err.strip()
    assert "policy.openvla_oft.scale_head_file" in err and len(err.splitlines()) == 1 and not refused.exists()

    scale_file = tmp_path / "libero_goal_scale_header.pth"
    save_released_layout(LaplaceScaleHead(16, 7), scale_file)
    out = tmp_path / "ript"
    head = f"policy.openvla_oft.scale_head_file={scale_file}"
    assert main([*argv, *SMALL_RIPT, head, "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("rollouts") == 2 for r in records)
