"""A run folder is never lost or mixed: the rules of `ript_fast/train/run_folder.py` through the CLI."""

from __future__ import annotations

import errno
import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from python_tests.conftest import RIPT_FAST
from python_tests.test_resume import check_same, train_cmd
from ript_fast.cli import main
from ript_fast.train.checkpoint import save_policy
from ript_fast.train.run_folder import RUN_FILE, RunFolderError, claim_run_folder
from ript_fast.train.run_logger import RunLogger, read_metrics

SMOKE = ["--config", "configs/ript_smoke.yaml", "contexts.eval_size=2", "ript.dynamic_sampling=false"]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file of a folder with its size and mtime: equal snapshots mean nothing was touched."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def lines_besides_warnings(err: str) -> list[str]:
    """stderr's lines other than `ript-fast <command>: warning: ...` ones (a tiny run's first iterations may have
    no learning signal, which the CLI prints as a line of its own)."""
    return [line for line in err.strip().splitlines() if not re.match(r"ript-fast \S+: warning: ", line)]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = lines_besides_warnings(capsys.readouterr().err)
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, init: Path) -> Path:
    """A finished RIPT run (from a given policy: no demos or SFT)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *SMOKE, "--init", str(init), "--out", str(out)]) == 0
    return out


def test_a_fresh_run_into_a_finished_run_is_refused_and_touches_nothing(
    finished: Path, init: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    assert main(["train", *SMOKE, "--init", str(init), "--out", str(run)]) == 2
    err = one_line_error(capsys)
    assert "already holds a ript run" in err and "--resume" in err and "--overwrite" in err
    assert main(["train", "--config", "configs/ript_smoke.yaml", "env=metaworld/door-open-v3", "--out", str(run)]) == 2
    assert snapshot(run) == before
    info = json.loads((run / RUN_FILE).read_text())
    assert info["kind"] == "ript" and [e["event"] for e in info["history"]] == ["start"]


def test_overwrite_moves_the_old_run_aside(finished: Path, init: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    assert main(["train", *SMOKE, "--init", str(init), "--out", str(run), "--overwrite", "ript.iterations=1"]) == 0
    (aside,) = tmp_path.glob("run.replaced-*")
    assert snapshot(aside) == before, "the old run is kept, file for file"
    assert [r["iteration"] for r in read_metrics(run)] == [0, 1]


def test_overwrite_refuses_a_folder_that_holds_no_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    assert main(["train", *SMOKE, "--out", str(tmp_path), "--overwrite"]) == 2
    assert "holds no ript-fast run" in one_line_error(capsys)
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_resume_refuses_folders_of_another_kind_or_none(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sft = tmp_path / "sft"
    sft.mkdir()
    (sft / "config.yaml").write_text("demos: [a.hdf5]\nstages: []\n")  # an SFT folder of an older version
    assert main(["train", "--resume", str(sft)]) == 2
    assert "holds a sft run, not a ript run: resume it with `ript-fast sft --resume`" in one_line_error(capsys)
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no such run folder to resume" in one_line_error(capsys)
    assert main(["train", "--resume", str(finished), "--overwrite"]) == 2
    assert "exclude each other" in one_line_error(capsys)


def test_a_folder_in_use_is_refused(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with claim_run_folder(run, "ript", "resume"):  # as another process running it would
        assert main(["train", "--resume", str(run), "ript.iterations=3"]) == 2
        assert "is in use by another ript-fast process" in one_line_error(capsys)
        with pytest.raises(RunFolderError, match="in use"):
            claim_run_folder(run, "ript", "overwrite")
    assert main(["train", "--resume", str(run), "ript.iterations=3"]) == 0  # the lock went with its holder


def test_resume_may_extend_a_run_but_not_change_what_it_trains(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    assert main(["train", "--resume", str(run), "ript.lr=0.5"]) == 2
    assert "was made with ript.lr=None, but the config now says 0.5" in one_line_error(capsys)
    assert main(["train", "--resume", str(run), "ript.iterations=3"]) == 0
    assert [r["iteration"] for r in read_metrics(run)] == [0, 1, 2, 3]
    saved = (run / "config.yaml").read_text()
    assert "iterations: 3" in saved and f"out_dir: {run}" in saved, "config.yaml records what was really run"
    history = json.loads((run / RUN_FILE).read_text())["history"]
    assert [e["event"] for e in history] == ["start", "resume"], "the refused resume is not recorded"


def as_an_earlier_version_wrote_it(policy: dict) -> None:
    """A policy config as written before 2026-11-30: the retired `oft` family's section, no `obs.render_size`."""
    policy["oft"] = {"chunk_size": 8, "lora_rank": 32}
    del policy["obs"]["render_size"]


def test_a_run_made_by_an_earlier_version_resumes(finished: Path, tmp_path: Path) -> None:
    """Its config.yaml and checkpoint headers hold a key this version retired and lack one it added since."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    as_an_earlier_version_wrote_it(config["sft"]["policy"])
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for path in run.rglob("*.safetensors"):
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata()
        if "ript_fast" in header:
            meta = json.loads(header["ript_fast"])
            as_an_earlier_version_wrote_it(meta["policy"])
            save_file(load_file(str(path)), str(path), metadata={**header, "ript_fast": json.dumps(meta)})
    assert main(["train", "--resume", str(run), "ript.iterations=3"]) == 0
    assert [r["iteration"] for r in read_metrics(run)] == [0, 1, 2, 3]


def test_out_naming_a_file_or_an_unwritable_place_is_one_line(
    init: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "a_file"
    file.write_text("x")
    assert main(["train", *SMOKE, "--init", str(init), "--out", str(file)]) == 2
    assert "is a file, not a run folder" in one_line_error(capsys)
    unwritable = Path("/sys/ript-fast-test-run")
    try:
        unwritable.mkdir()
    except OSError:
        assert main(["train", *SMOKE, "--init", str(init), "--out", str(unwritable)]) == 2
        assert "cannot write run folder /sys/ript-fast-test-run" in one_line_error(capsys)
    else:  # pragma: no cover - a machine where /sys is writable
        unwritable.rmdir()
        pytest.skip("no read-only place to write to here")


def test_a_full_disk_mid_run_is_one_line_with_the_resume_command(
    init: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ript_fast.train import trainer_checkpoints

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "checkpoints"))

    monkeypatch.setattr(trainer_checkpoints.TrainerCheckpoints, "save", disk_full)
    assert main(["train", *SMOKE, "--init", str(init), "--out", str(tmp_path / "run")]) == 2
    err = one_line_error(capsys)
    assert "No space left on device" in err and f"ript-fast train --resume {tmp_path / 'run'}" in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("device=cuda:7", "device: 'cuda:7' asked for"),
        ("device=tpu", "device: 'tpu'"),
        ("env=[metaworld/reach-v3, metaworld/push-v3, metaworld/door-open-v3]", "multiple of the number of tasks (3)"),
        ("env=metaworld/push-v3", "the policy was not trained on ['push-v3']"),
        ("policy.family=openvla_oft", "holds a 'quest' policy, but the config asks for family 'openvla_oft'"),
        ("demos.files=[/nowhere/demos.hdf5]", "demos.files[0]: no such demo file"),
        ("ript.contexts_per_round=1000000", "GiB of memory: lower them"),
    ],
)
def test_mistakes_found_before_any_work(
    override: str, message: str, init: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.perf_counter()
    assert main(["train", *SMOKE, "--init", str(init), "--out", str(tmp_path / "run"), override]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "run").exists(), "the run folder is not made for a run that cannot start"
    assert time.perf_counter() - start < 10


def test_an_init_policy_of_another_action_size_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ript_fast.config import find_config, load_config
    from ript_fast.policies.base import PolicySpec
    from ript_fast.policies.factory import build_policy
    from ript_fast.train.sft import SftConfig

    small = load_config(SftConfig, find_config("sft_quest_smoke")).policy
    policy = build_policy(small, PolicySpec(action_dim=7, state_dim=39, task_names=["reach-v3"], instructions=["r"]))
    save_policy(policy, tmp_path / "seven.safetensors")
    assert main(["train", *SMOKE, "--init", str(tmp_path / "seven.safetensors"), "--out", str(tmp_path / "r")]) == 2
    assert "acts with 7-d actions, metaworld envs take 4-d" in one_line_error(capsys)


def test_metrics_keep_every_valid_record_around_damaged_lines(tmp_path: Path) -> None:
    lines = ['{"iteration": 0, "x": 1}', '{"iteration": 1, "x"', "garbage", '{"iteration": 2, "x": 3}', '{"iter']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))  # damaged middle lines, a torn last one
    with pytest.warns(UserWarning, match="damaged metrics line"):
        assert [r["iteration"] for r in read_metrics(tmp_path, "iteration")] == [0, 2]
    with pytest.warns(UserWarning):
        logger = RunLogger(tmp_path)
    logger.log({"iteration": 3, "x": 4})  # appended after the torn line: must not be glued to it
    logger.close()
    assert [r["iteration"] for r in read_metrics(tmp_path, "iteration")] == [0, 2, 3]


def test_sft_folders_follow_the_same_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ript_fast.data.collect import collect_demos

    demos = collect_demos("metaworld/reach-v3", 2, tmp_path / "demos.hdf5", noise=0.1, progress=False)
    sft = ["sft", "--config", "configs/sft_quest_smoke.yaml", f"demos=[{demos}]", "--out", str(tmp_path / "s")]
    assert main([*sft, "stages=[{name: autoencoder, steps: 3}, {name: prior, steps: 3}]"]) == 0
    before = snapshot(tmp_path / "s")
    assert main([*sft, "stages=[{name: autoencoder, steps: 3}, {name: prior, steps: 3}]"]) == 2
    assert "already holds a sft run" in one_line_error(capsys)
    assert main([*sft, "--resume", "stages=[{name: autoencoder, steps: 3}, {name: prior, steps: 5}]"]) == 2
    assert "was made with stages[1].steps=3, but the config now says 5" in one_line_error(capsys)
    assert main([*sft, "--resume", "stages=[{name: autoencoder, steps: 3}, {name: prior, steps: 3}]"]) == 0
    after = snapshot(tmp_path / "s")
    assert {k: v for k, v in after.items() if k != RUN_FILE} == {k: v for k, v in before.items() if k != RUN_FILE}


def test_eval_and_collect_demos_never_replace_a_file_silently(
    init: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demos = tmp_path / "demos.hdf5"
    collect = ["collect-demos", "--env", "metaworld/reach-v3", "--num-demos", "1", "--out", str(demos)]
    assert main(collect) == 0
    capsys.readouterr()
    first = demos.read_bytes()
    assert main(collect) == 2
    assert "exists: pass --overwrite" in one_line_error(capsys)
    assert main([*collect, "--overwrite", "--seed", "5"]) == 0
    capsys.readouterr()
    (aside,) = tmp_path.glob("demos.replaced-*.hdf5")
    assert aside.read_bytes() == first
    assert main([*collect[:-1], str(tmp_path)]) == 2
    assert "is a folder" in one_line_error(capsys)
    result = tmp_path / "eval.json"
    ev = ["eval", "--ckpt", str(init), "--env", "metaworld/reach-v3", "--episodes", "2", "--out", str(result)]
    assert main(ev) == 0
    capsys.readouterr()
    assert main(ev) == 2
    assert "exists: pass --overwrite" in one_line_error(capsys)
    assert main([*ev, "--device", "cuda:3"]) == 2
    assert "--device: 'cuda:3'" in one_line_error(capsys)


@pytest.fixture(scope="module")
def reference(init: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ref = tmp_path_factory.mktemp("signals") / "ref"
    result = subprocess.run(train_cmd(init, ref, False), capture_output=True, timeout=900)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return ref


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_at_a_safe_point_and_the_run_resumes_exactly(
    sig: signal.Signals, code: int, init: Path, reference: Path, tmp_path: Path
) -> None:
    """Ctrl-C (or a scheduler's SIGTERM) mid-run: one line with the resume command, exit 128 + signal, and the
    resumed run ends exactly like an uninterrupted one."""
    run = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(init, run, False), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (run / "metrics.jsonl").is_file() or len((run / "metrics.jsonl").read_text().splitlines()) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be interrupted"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    lines = lines_besides_warnings(err.decode())
    assert proc.returncode == code, err.decode()[-2000:]
    assert len(lines) == 1 and f"resume with `ript-fast train --resume {run}`" in lines[0], lines
    result = subprocess.run(train_cmd(init, run, True), capture_output=True, timeout=900)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    check_same(run, reference)


def test_cli_subprocess_has_no_traceback_for_a_bad_resume(tmp_path: Path) -> None:
    result = subprocess.run([RIPT_FAST, "train", "--resume", str(tmp_path)], capture_output=True, timeout=120)
    assert result.returncode == 2 and b"Traceback" not in result.stderr
