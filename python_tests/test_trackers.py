"""Trackers of `logging.report_to`: W&B (offline here: no network) receives what metrics.jsonl holds, under one run
id per run folder that a resume keeps; a missing wandb package is one line before any run work."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from python_tests.wandb_records import history, offline_runs, record_types, run_record
from ript_fast.cli import main
from ript_fast.train.run_folder import claim_run_folder
from ript_fast.train.run_logger import LoggingConfig, RunLogger, wandb_run_id

pytest.importorskip("wandb")
BOTH = LoggingConfig(report_to=["tensorboard", "wandb"], wandb_project="ript-tests")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_wandb_gets_every_scalar_of_every_record_and_the_config(tmp_path: Path) -> None:
    logger = RunLogger(tmp_path, logging=BOTH, config={"ript": {"group_size": 8}, "env": "metaworld/reach-v3"})
    records = [
        {"iteration": i, "eval_success": i / 4, "kept_groups": 2 * i, "note": "x", "cap": True} for i in range(3)
    ]
    for record in records:
        logger.log(record)
    logger.close()
    [run] = offline_runs(tmp_path)
    run_id, project, config = run_record(run)
    assert run_id == wandb_run_id(tmp_path) and project == "ript-tests"
    assert config == {"ript": {"group_size": 8}, "env": "metaworld/reach-v3"}
    logged = history(run)
    assert sorted(logged) == [0, 1, 2]
    for record in records:  # numbers only (no text, no booleans), at the record's step
        step = logged[record["iteration"]]
        assert step["eval_success"] == record["eval_success"] and step["kept_groups"] == record["kept_groups"]
        assert "note" not in step and "cap" not in step and "iteration" not in step
    assert any((tmp_path / "tensorboard").iterdir())  # TensorBoard as well


def test_a_resumed_run_folder_keeps_its_wandb_run(tmp_path: Path) -> None:
    """The id hashes the folder and its first start (run.json): equal on resume, another for another start."""
    out = tmp_path / "run"
    claim_run_folder(out, "ript", "new", lambda path: None).release()
    (out / "config.yaml").write_text("seed: 0\n")  # what marks the folder as holding a run
    first = wandb_run_id(out)
    claim_run_folder(out, "ript", "resume", lambda path: None).release()
    assert wandb_run_id(out) == first
    info = json.loads((out / "run.json").read_text())
    info["history"][0]["time"] = "2026-01-01T00:00:00+00:00"  # as if the folder's run had started another time
    (out / "run.json").write_text(json.dumps(info))
    assert wandb_run_id(out) != first
    assert wandb_run_id(tmp_path / "elsewhere") != first


def test_an_sft_run_reports_to_wandb_what_metrics_jsonl_holds(tmp_path: Path, smooth_demos: Path) -> None:
    out = tmp_path / "sft"
    argv = ["sft", "--config", "sft_quest_smoke.yaml", f"demos=[{smooth_demos}]", "logging.report_to=[wandb]", "--out"]
    assert main([*argv, str(out)]) == 0
    [run] = offline_runs(out)
    logged = history(run)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines and sorted(logged) == sorted({r["step"] for r in lines}), record_types(run)
    for r in lines:  # every number of every line, at its step
        numbers = {
            k: v for k, v in r.items() if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        assert numbers and {k: logged[r["step"]][k] for k in numbers} == pytest.approx(numbers)
    assert not (out / "tensorboard").exists()  # only the trackers asked for
    assert run_record(run)[2]["out_dir"] == str(out)


@pytest.mark.parametrize("command", ["sft", "train"])
def test_wandb_without_its_package_is_one_line(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    config = "sft_quest_smoke.yaml" if command == "sft" else "ript_smoke.yaml"
    out = tmp_path / "run"
    assert main([command, "--config", config, "logging.report_to=[wandb]", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"ript-fast {command}: error: logging.report_to: wandb needs the wandb package: pip install " + (
        "'ript-fast[wandb]'"
    )
    assert not out.exists()
