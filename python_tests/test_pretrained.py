"""Checkpoint folders (`train/pretrained.py`), their model card, the folder a run writes, and the push to the hub.

The hub is never reached: `HfApi.create_repo` / `upload_folder` are replaced by a local stand-in (`FakeHub`) that
records the calls and copies what upload_folder would send, chosen by huggingface_hub's own pattern filter.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from python_tests.ppo_fixtures import oft_policy, random_observation, smoke_policy
from python_tests.test_no_code_execution import named, plant  # noqa: F401  (plant: the pickle-payload fixture)
from python_tests.test_ript_train import TINY
from ript_fast.cli import main
from ript_fast.policies.base import Policy
from ript_fast.policies.openvla_oft.folder_policy import is_model_folder
from ript_fast.train.checkpoint import CheckpointError, load_policy, read_checkpoint_meta, save_policy
from ript_fast.train.hub import HubError
from ript_fast.train.pretrained import (
    CONFIG_FILE,
    FOLDER_FILES,
    WEIGHTS_FILE,
    EvalScore,
    from_pretrained,
    run_eval_scores,
    save_pretrained,
)

hub = pytest.importorskip("huggingface_hub")
hub_errors = pytest.importorskip("huggingface_hub.errors")
httpx = pytest.importorskip("httpx")

REACH = "metaworld/reach-v3"
SCORES = [
    EvalScore("held-out success before RIPT", REACH, 19, 50),
    EvalScore("held-out success after 15 RIPT iterations", REACH, 31, 50),
]


def assert_same_policy(a: Policy, b: Policy) -> None:
    """Every tensor (weights and buffers) equal, same dtype; and the same actions, decisions and log-probs from the
    same observations and seed."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype and torch.equal(sa[name], sb[name]), name
    obs = random_observation(a, 6, torch.Generator().manual_seed(5))
    torch.manual_seed(11)
    first = a.act(obs, sample=True)
    torch.manual_seed(11)
    second = b.act(obs, sample=True)
    assert torch.equal(first.actions, second.actions) and torch.equal(first.decision, second.decision)
    assert torch.equal(first.logprob, second.logprob)


def test_a_folder_round_trips_bit_for_bit(tmp_path: Path) -> None:
    policy = smoke_policy(seed=3)
    folder = save_pretrained(policy, tmp_path / "pol", SCORES, {"producer": "ript", "iteration": 15})
    assert sorted(p.name for p in folder.iterdir()) == sorted(FOLDER_FILES)
    stored = load_file(folder / WEIGHTS_FILE)
    expected = policy.checkpoint_state()
    assert stored.keys() == expected.keys()
    assert all(torch.equal(stored[k], expected[k]) and stored[k].dtype == expected[k].dtype for k in stored)
    loaded = from_pretrained(folder)
    assert_same_policy(policy.eval(), loaded.eval())
    config = json.loads((folder / CONFIG_FILE).read_text())
    assert config["ript_fast"] == {"format": "ript_fast.policy_folder/1", "version": "0.1.0"}
    assert config["family"] == "quest" and config["spec"]["task_names"] == ["reach-v3"]
    assert config["notes"] == {"producer": "ript", "iteration": 15}


def test_a_folder_is_a_checkpoint_wherever_one_is_read(tmp_path: Path) -> None:
    """load_policy and read_checkpoint_meta take the folder; its weights file is a single-file checkpoint too;
    single files keep loading; the folder is not mistaken for an official OpenVLA-OFT folder."""
    policy = smoke_policy(seed=4)
    folder = save_pretrained(policy, tmp_path / "pol")
    single = save_policy(policy, tmp_path / "policy.safetensors", {"producer": "test"})
    assert not is_model_folder(folder)
    assert read_checkpoint_meta(folder)["spec"] == read_checkpoint_meta(single)["spec"]
    for path in (folder, folder / WEIGHTS_FILE, single):
        assert_same_policy(policy, load_policy(path).eval())
    top_k = load_policy(folder, config_overrides={"quest": {"top_k": 2}})
    assert top_k.policy_config.quest.top_k == 2


def test_an_openvla_oft_policy_folder_is_told_from_the_official_folder(tmp_path: Path) -> None:
    from ript_fast.policies.openvla_oft.random_folder import write_random_folder

    official = write_random_folder(tmp_path / "official")
    policy = oft_policy(official, seed=2)
    with torch.no_grad():  # RIPT-trained weights, not the fresh LoRA's zeros
        for group in policy.rl_param_groups():
            for p in group["params"]:
                p.add_(torch.randn(p.shape) * 0.01)
    folder = save_pretrained(policy, tmp_path / "ript")
    assert is_model_folder(official) and not is_model_folder(folder)
    assert read_checkpoint_meta(folder)["notes"] == {}
    assert_same_policy(policy, from_pretrained(folder).eval())
    with pytest.raises(CheckpointError, match=named(official / CONFIG_FILE, "no 'ript_fast' key")):
        from_pretrained(official)
    card = (folder / "README.md").read_text()
    assert "frozen base model is read from the official checkpoint folder" in card


def test_the_model_card_reads_as_hub_metadata_and_as_a_table(tmp_path: Path) -> None:
    notes = {"producer": "ript", "iteration": 15, "env": REACH, "demos": ["a.hdf5", "b.hdf5"]}
    folder = save_pretrained(smoke_policy(), tmp_path / "pol", SCORES, notes, name="ript-reach")
    card = hub.ModelCard.load(folder / "README.md")
    assert card.data.library_name == "ript-fast" and "quest" in card.data.tags
    results = card.data.eval_results
    assert [(r.metric_name, r.metric_value, r.dataset_type) for r in results] == [
        ("held-out success before RIPT", 0.38, REACH),
        ("held-out success after 15 RIPT iterations", 0.62, REACH),
    ]
    assert results[1].metric_args == {"successes": 31, "episodes": 50}
    text = card.text
    row = "| held-out success after 15 RIPT iterations | metaworld/reach-v3 | 31 / 50 | 0.620 | 0.482 - 0.741 |"
    assert row in text
    assert "| reach-v3 | reach |" in text and "- demos: a.hdf5, b.hdf5" in text
    assert f"ript-fast eval --ckpt path/to/this/folder --env {REACH}" in text


def test_a_card_without_results_has_no_model_index(tmp_path: Path) -> None:
    folder = save_pretrained(smoke_policy(), tmp_path / "pol")
    card = hub.ModelCard.load(folder / "README.md")
    assert card.data.eval_results is None and "## Evaluation" not in card.text


@pytest.mark.parametrize(
    ("successes", "episodes", "low", "high"),
    [(5, 10, 0.2366, 0.7634), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0)],
)
def test_wilson_intervals(successes: int, episodes: int, low: float, high: float) -> None:
    """Published Wilson 95% bounds (5/10: 0.2366-0.7634; n/(n+z^2) at 0 and n successes)."""
    got = EvalScore("x", REACH, successes, episodes).interval()
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_bounds_are_where_the_score_test_reaches_z() -> None:
    """The definition: at each bound p0, |p - p0| / sqrt(p0 (1 - p0) / n) is the normal 97.5% quantile."""
    score = EvalScore("x", REACH, 19, 50)
    z = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.975, dtype=torch.float64)).item()
    for bound in score.interval():
        assert abs(score.rate - bound) / (bound * (1 - bound) / 50) ** 0.5 == pytest.approx(z, rel=1e-9)


def test_impossible_scores_are_refused() -> None:
    for successes, episodes in [(3, 2), (-1, 2), (0, 0)]:
        with pytest.raises(ValueError, match="successes of"):
            EvalScore("x", REACH, successes, episodes)


def test_a_run_scores_before_and_after_from_its_metrics() -> None:
    history = [
        {"iteration": 0, "eval_success": 0.25, "train_success": None},
        {"iteration": 1, "train_success": 0.5},
        {"iteration": 2, "eval_success": 0.5},
        {"iteration": 3, "eval_success": 0.75},
    ]
    scores = run_eval_scores(history, REACH, 4)
    assert scores == [
        EvalScore("held-out success before RIPT", REACH, 1, 4),
        EvalScore("held-out success after 3 RIPT iterations", REACH, 3, 4),
    ]
    assert run_eval_scores(history[:1], REACH, 4) == scores[:1] and run_eval_scores([], REACH, 4) == []


def _config_edit(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], Path]:
    def damage(folder: Path) -> Path:
        config = json.loads((folder / CONFIG_FILE).read_text())
        edit(config)
        (folder / CONFIG_FILE).write_text(json.dumps(config))
        return folder / CONFIG_FILE

    return damage


def _unlink(name: str) -> Callable[[Path], Path]:
    def damage(folder: Path) -> Path:
        (folder / name).unlink()
        return folder / name

    return damage


def _write(name: str, text: str) -> Callable[[Path], Path]:
    def damage(folder: Path) -> Path:
        (folder / name).write_text(text)
        return folder / name

    return damage


DAMAGES = {
    "format": (_config_edit(lambda c: c["ript_fast"].update(format="ript_fast.policy_folder/9")), "'ript_fast.format'"),
    "no key": (_config_edit(lambda c: c.pop("ript_fast")), "no 'ript_fast' key"),
    "spec": (_config_edit(lambda c: c["spec"].pop("action_dim")), "spec"),
    "family": (_config_edit(lambda c: c.update(family=3)), "key 'family' must hold a string"),
    "not json": (_write(CONFIG_FILE, "{ not json"), "not a JSON file"),
    "no config": (_unlink(CONFIG_FILE), "missing"),
    "no weights": (_unlink(WEIGHTS_FILE), "missing"),
    "bad weights": (_write(WEIGHTS_FILE, "not safetensors"), "not a safetensors checkpoint"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_folder_is_one_line_naming_the_file(damage: str, tmp_path: Path) -> None:
    folder = save_pretrained(smoke_policy(), tmp_path / "pol")
    spoil, message = DAMAGES[damage]
    path = spoil(folder)
    with pytest.raises(CheckpointError, match=named(path, message)) as err:
        from_pretrained(folder)
    assert "\n" not in str(err.value)


def test_a_pickle_for_weights_is_refused_unread(plant: Callable[[Path], Path], tmp_path: Path) -> None:  # noqa: F811
    folder = save_pretrained(smoke_policy(), tmp_path / "pol")
    plant(folder / WEIGHTS_FILE)  # the fixture fails the test if the payload ever runs
    with pytest.raises(CheckpointError, match=named(folder / WEIGHTS_FILE, "not a safetensors checkpoint")):
        load_policy(folder)


def test_saving_replaces_a_folder_of_its_own_and_refuses_any_other(tmp_path: Path) -> None:
    first, second = smoke_policy(seed=1), smoke_policy(seed=2)
    folder = save_pretrained(first, tmp_path / "pol")
    save_pretrained(second, folder)
    assert_same_policy(second, from_pretrained(folder).eval())
    (folder / CONFIG_FILE).unlink()  # a save killed before its config.json: the next one completes it
    save_pretrained(first, folder)
    assert_same_policy(first, from_pretrained(folder).eval())

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(CheckpointError, match=named(mine, "holds 'notes.txt'")):
        save_pretrained(first, mine)
    official = tmp_path / "official"
    official.mkdir()
    (official / CONFIG_FILE).write_text('{"model_type": "openvla"}')
    with pytest.raises(CheckpointError, match=named(official / CONFIG_FILE, "not a ript-fast folder")):
        save_pretrained(first, official)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and (official / WEIGHTS_FILE).exists() is False


class FakeHub:
    """Stands in for the two hub endpoints push_to_hub calls (no network): records each call with the token the
    HfApi was made with, and copies what `upload_folder` would upload into `root/<repo_id>/`."""

    def __init__(self, root: Path, fail: Exception | None = None) -> None:
        self.root, self.fail = root, fail
        self.calls: list[tuple[str, str, str | None, bool | None]] = []  # (method, repo, token, private)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
        """Replaces the two HfApi methods for the test (the HfApi instance is their first argument)."""

        def create_repo(api: Any, repo_id: str, private: bool | None = None, **_: Any) -> str:
            self.calls.append(("create_repo", repo_id, api.token, private))
            if self.fail is not None:
                raise self.fail
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(api: Any, *, repo_id: str, folder_path: Path, allow_patterns: Any = None, **_: Any) -> None:
            self.calls.append(("upload_folder", repo_id, api.token, None))
            folder = Path(folder_path)
            names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
            for name in hub.utils.filter_repo_objects(names, allow_patterns=allow_patterns):
                (self.root / repo_id / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / name, self.root / repo_id / name)

        def snapshot_download(repo_id: str, *, allow_patterns: Any = None, revision: str | None = None, **_: Any):
            """What the hub serves of `repo_id` (what was uploaded to it), copied to a fresh cache folder."""
            self.calls.append(("snapshot_download", repo_id, _.get("token"), None))
            if self.fail is not None:
                raise self.fail
            if not (self.root / repo_id).is_dir():  # what the hub answers (huggingface_hub >= 1.0 speaks httpx)
                url = f"https://huggingface.co/api/models/{repo_id}"
                response = httpx.Response(404, request=httpx.Request("GET", url))
                raise hub_errors.RepositoryNotFoundError(f"404 Repository Not Found for url: {url}", response=response)
            cache = self.root.parent / "cache" / repo_id / (revision or "main")
            names = sorted(p.name for p in (self.root / repo_id).iterdir())
            for name in hub.utils.filter_repo_objects(names, allow_patterns=allow_patterns):
                cache.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.root / repo_id / name, cache / name)
            return str(cache)

        monkeypatch.setattr(hub.HfApi, "create_repo", create_repo)
        monkeypatch.setattr(hub.HfApi, "upload_folder", upload_folder)
        monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
        return self

    def uploaded(self, repo_id: str) -> list[str]:
        return sorted(p.name for p in (self.root / repo_id).iterdir())


@pytest.fixture(scope="module")
def pushed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FakeHub]:
    """The smoke RIPT run, ending with `--push-to-hub` to the local stand-in."""
    root = tmp_path_factory.mktemp("pretrained")
    with pytest.MonkeyPatch.context() as patch:
        fake = FakeHub(root / "hub").install(patch)
        argv = ["train", *TINY, "--out", str(root / "run"), "--push-to-hub", "me/ript-reach", "--hub-token", "t0k"]
        assert main(argv) == 0
    return root / "run", fake


def test_the_run_writes_a_folder_with_before_and_after_and_pushes_it(pushed_run: tuple[Path, FakeHub]) -> None:
    run, fake = pushed_run
    folder = run / "policy"
    final = load_file(run / "policy.safetensors")
    stored = load_file(folder / WEIGHTS_FILE)
    assert final.keys() == stored.keys() and all(torch.equal(final[k], stored[k]) for k in final)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    card = hub.ModelCard.load(folder / "README.md")
    values = [(r.metric_name, r.metric_value, r.metric_args["episodes"]) for r in card.data.eval_results]
    assert values == [
        ("held-out success before RIPT", records[0]["eval_success"], 2),  # TINY: contexts.eval_size=2
        ("held-out success after 2 RIPT iterations", records[-1]["eval_success"], 2),
    ]
    assert "- rollouts per context (K): 4" in card.text and "- env: metaworld/reach-v3" in card.text
    assert fake.calls == [
        ("create_repo", "me/ript-reach", "t0k", None),
        ("upload_folder", "me/ript-reach", "t0k", None),
    ]
    assert fake.uploaded("me/ript-reach") == sorted(FOLDER_FILES)
    for name in FOLDER_FILES:
        assert (fake.root / "me/ript-reach" / name).read_bytes() == (folder / name).read_bytes(), name


def test_eval_takes_the_run_folder(pushed_run: tuple[Path, FakeHub], capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = pushed_run
    out = run / "folder_eval.json"
    assert main(["eval", "--ckpt", str(run / "policy"), "--env", REACH, "--episodes", "2", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["episodes"] == 2 and "success" in capsys.readouterr().out


def test_train_starts_from_the_run_folder(pushed_run: tuple[Path, FakeHub], tmp_path: Path) -> None:
    """init=<folder>: the checks before the run (family, tasks, policy files) and the run itself take it."""
    run, _ = pushed_run
    out = tmp_path / "again"
    assert main(["train", *TINY, "--init", str(run / "policy"), "ript.iterations=1", "--out", str(out)]) == 0
    assert (out / "policy" / WEIGHTS_FILE).is_file() and not (out / "sft").exists()


def test_from_pretrained_takes_a_hub_repo_name(
    pushed_run: tuple[Path, FakeHub], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`from_pretrained("me/ript-reach")` (no such folder here) downloads the pushed folder's files and loads the
    policy the run wrote, bit for bit; a repo the hub lacks, or a failed download, is one line naming the repo."""
    run, fake = pushed_run
    fake.install(monkeypatch)
    monkeypatch.chdir(tmp_path)
    policy = from_pretrained("me/ript-reach", token="t0k")
    final = load_file(run / "policy.safetensors")
    assert all(torch.equal(v, policy.state_dict()[k]) for k, v in final.items())
    assert fake.calls[-1] == ("snapshot_download", "me/ript-reach", "t0k", None)
    with pytest.raises(HubError, match=r"^me/nothing: no such folder here, and its download .*Repository Not Found"):
        from_pretrained("me/nothing")
    FakeHub(tmp_path / "down", fail=ConnectionError("Failed to resolve 'huggingface.co'")).install(monkeypatch)
    with pytest.raises(HubError, match=r"^me/ript-reach: .*\(Failed to resolve 'huggingface.co'\)$"):
        from_pretrained("me/ript-reach")


def test_push_uploads_only_the_checkpoint_files(
    pushed_run: tuple[Path, FakeHub], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "policy"
    shutil.copytree(pushed_run[0] / "policy", folder)
    (folder / ".model.safetensors.x1.tmp").write_bytes(b"torn write")
    fake = FakeHub(tmp_path / "hub").install(monkeypatch)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(["push", str(folder), "me/again", "--private"]) == 0
    assert fake.uploaded("me/again") == sorted(FOLDER_FILES)
    assert fake.calls[0] == ("create_repo", "me/again", None, True)


def test_a_failed_push_is_one_line_and_the_folder_stays(
    pushed_run: tuple[Path, FakeHub], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    folder = pushed_run[0] / "policy"
    before = {name: (folder / name).read_bytes() for name in FOLDER_FILES}
    offline = ConnectionError("Failed to resolve 'huggingface.co'\n(name resolution failed)")  # as on this machine
    FakeHub(tmp_path / "hub", fail=offline).install(monkeypatch)
    assert main(["push", str(folder), "me/ript-reach"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Failed to resolve 'huggingface.co'" in err, err
    assert f"the folder is kept: retry with `ript-fast push {folder} me/ript-reach`" in err
    assert {name: (folder / name).read_bytes() for name in FOLDER_FILES} == before


def test_push_refusals_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed repo id or a missing huggingface_hub stops `train` before its run folder exists (exit 2); push
    of something that is not a checkpoint folder names it."""
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out), "--push-to-hub", "not a repo"]) == 2
    assert "hub repo 'not a repo'" in capsys.readouterr().err and not out.exists()
    assert main(["push", str(tmp_path), "me/x"]) == 2
    assert f"{tmp_path / CONFIG_FILE}: missing" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    assert main(["train", *TINY, "--out", str(out), "--push-to-hub", "me/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install huggingface_hub" in err and not out.exists()
