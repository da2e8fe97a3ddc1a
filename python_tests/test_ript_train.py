"""`ript-fast train` end to end on a tiny config, and its config errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from python_tests.ppo_fixtures import moved_tensors
from ript_fast.cli import main
from ript_fast.train.trainer_checkpoints import TrainerCheckpoints

TINY = [
    "--config",
    "configs/ript_smoke.yaml",
    "contexts.eval_size=2",
    # contexts on which the smoke SFT policy succeeds sometimes, groups of 4, up to 10 rounds: dynamic sampling
    # finds a group with mixed success every iteration, so the PPO update runs on non-zero advantages (3 rounds
    # were not always enough: the SFT policy, hence its rollouts, differs with the CPU's floating point)
    "contexts.seed=1008",
    "contexts.size=8",
    "ript.group_size=4",
    "ript.max_rounds=10",
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ript") / "run"
    with pytest.MonkeyPatch.context() as patch:
        printed: list[str] = []
        patch.setattr("builtins.print", lambda *a, **k: printed.append(" ".join(map(str, a))))
        assert main(["train", *TINY, "--out", str(out)]) == 0
    (out.parent / "stdout.txt").write_text("\n".join(printed))
    return out


def test_the_first_line_says_what_runs_and_the_last_what_it_achieved(smoke_run: Path) -> None:
    lines = (smoke_run.parent / "stdout.txt").read_text().splitlines()
    assert lines[0] == (
        "ript-fast train: metaworld/reach-v3, SFT of a quest policy on scripted demos first; 2 iterations of 4 "
        f"rollouts (K=4, dynamic sampling) on cpu; run folder {smoke_run}"
    )
    records = [json.loads(line) for line in (smoke_run / "metrics.jsonl").read_text().splitlines()]
    before, after = (round(records[i]["eval_success"] * 2) for i in (0, -1))
    summary = next(line for line in lines if line.startswith("held-out success: "))
    assert f"({before}/2, 95% CI " in summary and " -> " in summary and f"({after}/2, 95% CI " in summary
    assert lines[-1].startswith(f"policy: {smoke_run / 'policy.safetensors'} (folder with model card: ")


def test_two_iterations_write_every_artifact(smoke_run: Path) -> None:
    for name in ["config.yaml", "metrics.jsonl", "policy.safetensors", "best.safetensors", "demos/reach-v3.hdf5"]:
        assert (smoke_run / name).is_file(), name
    for plot in ["success.png", "reject_rate.png", "clip_fraction.png", "approx_kl.png"]:
        assert (smoke_run / plot).stat().st_size > 1000, plot
    assert (smoke_run / "sft" / "policy.safetensors").is_file()
    assert any((smoke_run / "tensorboard").iterdir())
    records = [json.loads(line) for line in (smoke_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [0, 1, 2]
    for r in records[1:]:
        for key in ["train_success", "eval_success", "rejected_groups", "env_steps", "seconds", "clip_fraction"]:
            assert key in r, key
        assert r["rollouts"] == 4 and r["env_steps"] > 0
        assert r["eval_episodes"] == 2 and r["train_rollouts"] >= r["rollouts"]  # the counts behind the plot's bands
        assert 0.0 <= r["train_success"] <= 1.0 and 0.0 <= r["eval_success"] <= 1.0
    saved = TrainerCheckpoints(smoke_run / "checkpoints", keep=3).saved()
    assert [s.iteration for s in saved] == [1, 2]
    assert saved[-1].load_state()["iteration"] == 2


def test_the_smoke_run_learns(smoke_run: Path) -> None:
    """Every iteration kept a group with mixed success and stepped on it (non-zero advantages: non-zero loss and
    gradient), and RIPT moved the trainable weights (the prior) and nothing else."""
    records = [json.loads(line) for line in (smoke_run / "metrics.jsonl").read_text().splitlines()]
    for r in records[1:]:
        assert r["kept_groups"] >= 1 and r["loss"] != 0.0 and r["grad_norm"] > 0.0, r
        assert r["informative_groups"] == r["kept_groups"], r
    lines = (smoke_run.parent / "stdout.txt").read_text().splitlines()
    assert not any(line.startswith("no learning signal") for line in lines)
    sft = smoke_run / "sft" / "policy.safetensors"
    saved = TrainerCheckpoints(smoke_run / "checkpoints", keep=3).saved()
    moved = moved_tensors(sft, saved[0].policy_path)
    assert moved and all(name.startswith("prior.") for name in moved), moved
    assert moved_tensors(saved[0].policy_path, smoke_run / "policy.safetensors"), "iteration 2 changed nothing"


def test_a_resumed_run_reuses_its_demos_and_sft(smoke_run: Path, tmp_path: Path) -> None:
    """A run killed after its SFT stage resumes without collecting or training again."""
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    for name in ["checkpoints", "tensorboard"]:
        shutil.rmtree(run / name)
    for name in ["metrics.jsonl", "policy.safetensors", "best.safetensors"]:
        (run / name).unlink()
    sft, demos = run / "sft" / "policy.safetensors", run / "demos" / "reach-v3.hdf5"
    before = (sft.stat().st_mtime_ns, demos.stat().st_mtime_ns)
    assert main(["train", "--resume", str(run)]) == 0
    assert (sft.stat().st_mtime_ns, demos.stat().st_mtime_ns) == before
    assert (run / "policy.safetensors").is_file()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ript.iteratons=3", "unknown key 'ript.iteratons'"),
        ("ript.iterations=many", "ript.iterations must be an integer"),
        ("ript.group_size=1", "ript.group_size must be >= 2"),
        ("ript.batch_rollouts=5", "must be a positive multiple of ript.group_size"),
        ("env=metaworld/reach-v9", "env:"),
        ("policy.quest.top_kk=3", "unknown key 'policy.quest.top_kk'"),
    ],
)
def test_config_errors_exit_2_with_one_line(
    override: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--config", "configs/ript_smoke.yaml", override, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err, err


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "no config file" in capsys.readouterr().err


def test_overrides_may_follow_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--config", "configs/ript_smoke.yaml", "--out", str(tmp_path / "r"), "ript.group_size=1"])
    assert code == 2 and "ript.group_size must be >= 2" in capsys.readouterr().err


def test_checkpoints_of_another_family_or_format_are_refused(
    smoke_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sft = smoke_run / "sft" / "policy.safetensors"
    code = main(["train", *TINY, "--init", str(sft), "policy.family=openvla_oft", "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 2 and "holds a 'quest' policy, but the config asks for family 'openvla_oft'" in err
    old = tmp_path / "old"
    shutil.copytree(smoke_run, old)
    latest = TrainerCheckpoints(old / "checkpoints", keep=3).latest().folder
    (latest / "trainer_state.safetensors").unlink()
    torch.save({"iteration": 2}, latest / "trainer_state.pt")  # the pickled state of ript-fast before state files
    assert main(["train", "--resume", str(old)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "made by an older ript-fast version" in err, err


def test_wilson_intervals_are_the_textbook_ones() -> None:
    """Wilson 95% intervals (Agresti & Coull 1998, Table 1 style values), inside [0, 1] at 0 and all successes."""
    from ript_fast.train.binomial import wilson_interval

    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(50, 50) == pytest.approx((0.9287, 1.0), abs=1e-4)
    with pytest.raises(ValueError, match="episodes"):
        wilson_interval(0, 0)


def test_the_summary_says_when_iterations_changed_nothing(tmp_path: Path) -> None:
    """Iterations without a group of differing rewards are counted in the end summary; when that is all of them
    the summary says the policy never changed and what to start from instead."""
    from ript_fast.train.run_summary import end_summary

    def summary(informative: list[int]) -> list[str]:
        records = [{"iteration": 0, "eval_success": 0.0, "eval_episodes": 10}]
        records += [{"iteration": i + 1, "informative_groups": n} for i, n in enumerate(informative)]
        (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return end_summary(tmp_path, tmp_path / "policy.safetensors", "metaworld/reach-v3", 10).splitlines()

    assert not any(line.startswith("no learning signal") for line in summary([3, 1, 2]))
    assert "no learning signal in 2 of 3 iterations (every group's K rewards equal: no change)" in summary([0, 4, 0])
    assert summary([0, 0])[-2] == (
        "no learning signal in 2 of 2 iterations (every group's K rewards equal: no change); the policy never "
        "changed: start from one that succeeds sometimes (more demos, a stronger prior)"
    )


def test_the_cli_prints_our_warnings_as_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Under `ript-fast`, a warning raised from ript_fast (e.g. an iteration without a learning signal) is one
    `ript-fast train: warning: ...` line; another library's goes to the display it had before."""
    import os
    import warnings

    from ript_fast.cli import _warnings_as_lines

    ours = os.path.join(os.sep, "site-packages", "ript_fast", "train", "ript_run.py")
    before: list[tuple[str, str]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, filename, *rest: before.append((str(message), filename))
        with _warnings_as_lines("ript-fast train:"):
            warnings.warn_explicit("RIPT iteration 1: no group had a learning signal", RuntimeWarning, ours, 142)
            warnings.warn_explicit("something else", UserWarning, "/site-packages/torch/nn.py", 7)
    err = capsys.readouterr().err.splitlines()
    assert err == ["ript-fast train: warning: RIPT iteration 1: no group had a learning signal"]
    assert before == [("something else", "/site-packages/torch/nn.py")]
