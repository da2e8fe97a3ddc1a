"""Whatever a user types after `ript-fast train`: a run that starts, or one line and exit code 2; never a
traceback. Random keys (real ones, misspelt ones) with random values (of every YAML type, in and out of range)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ript_fast import cli
from ript_fast.train import ript

KEYS = [
    "env",
    "seed",
    "device",
    "init",
    "torch_threads",
    "engine_threads",
    "keep_checkpoints",
    "policy",
    "policy.quest.top_k",
    "policy.quest.temperature",
    "policy.family",
    "demos.files",
    "demos.num_demos",
    "contexts.source",
    "contexts.size",
    "contexts.noise_std",
    "contexts.eval_size",
    "contexts.seed",
    "ript.iterations",
    "ript.group_size",
    "ript.batch_rollouts",
    "ript.contexts_per_round",
    "ript.max_rounds",
    "ript.ppo_epochs",
    "ript.minibatch_rollouts",
    "ript.clip_eps",
    "ript.clip_eps_high",
    "ript.lr",
    "ript.group_lr",
    "ript.weight_decay",
    "ript.max_grad_norm",
    "ript.ratio_level",
    "ript.token_average",
    "ript.lr_schedule",
    "eval.every",
    "eval.sample",
    "sft.stages",
    "ript.nonsense",
    "riptt.lr",
    "",
]
VALUES = st.one_of(
    st.integers(-3, 12).map(str),
    st.sampled_from(["0", "1e-4", "-1e-4", "0.5", "2.0", ".nan", ".inf", "-.inf", "1e309", "2147483648"]),
    st.sampled_from(["true", "null", "[]", "{}", "[1, 2]", "{prior: 0.1}", "cuda:3", "cpu", "mps", "tokens"]),
    st.sampled_from(["metaworld/reach-v3", "metaworld/push-v3", "[metaworld/reach-v3, metaworld/ML45]", "libero/x"]),
    st.text(alphabet="ab/:=.-_ 0{}[]", max_size=8),
)


class _Started(Exception):
    """Raised instead of training: the run got past every check and built its trainer."""


def _trainer_built(self: ript.RiptTrainer) -> list:
    raise _Started


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=3))
def test_any_override_starts_a_run_or_is_one_line(
    init: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pairs: list[tuple[str, str]]
) -> None:
    monkeypatch.setattr(ript.RiptTrainer, "train", _trainer_built)
    overrides = [f"{key}={value}" for key, value in pairs]
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["train", "--config", "configs/ript_smoke.yaml", "--init", str(init), "--out", f"{tmp}/run"]
        try:
            code = cli.main([*argv, *overrides])
        except _Started:
            return
        except SystemExit as exit_:  # argparse: a malformed command line, its usage and one error line
            assert exit_.code == 2
            return
    err = capsys.readouterr().err.strip()
    assert code == 2, (overrides, err)
    assert len(err.splitlines()) == 1 and err.startswith("ript-fast train: error: "), (overrides, err)


def test_valid_overrides_reach_the_trainer(init: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzz test's `_Started` path is reachable: valid overrides build a trainer (the fuzz is not vacuous)."""
    monkeypatch.setattr(ript.RiptTrainer, "train", _trainer_built)
    argv = ["train", "--config", "configs/ript_smoke.yaml", "--init", str(init), "--out", str(tmp_path / "run")]
    with pytest.raises(_Started):
        cli.main([*argv, "ript.lr=1e-4", "ript.clip_eps_high=0.28", "eval.every=2"])


SFT_KEYS = [
    "demos",
    "num_demos",
    "seed",
    "device",
    "threads",
    "log_every",
    "checkpoint_every",
    "init_checkpoint",
    "stages",
    "stages[0]",
    "policy.family",
    "policy.quest.top_k",
    "policy.quest.dropout",
    "policy.quest.codebook_size",
    "policy.obs.state_keys",
    "policy.obs.image_keys",
    "policy.obs.image_size",
    "nonsense",
]
SFT_VALUES = st.one_of(
    VALUES,
    st.sampled_from(["[{name: prior, steps: 2}]", "[{name: scale, steps: 2}]", "[{name: prior, steps: -2}]"]),
    st.sampled_from(["[/nowhere.hdf5]", "[rgb]", "[agentview_rgb, state]", "[state, state]"]),
)


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ript_fast.data.collect import collect_demos

    return collect_demos("metaworld/reach-v3", 2, tmp_path_factory.mktemp("fuzz") / "demos.hdf5", progress=False)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(SFT_KEYS), SFT_VALUES), max_size=3))
def test_any_sft_override_starts_a_run_or_is_one_line(
    demos: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pairs: list[tuple[str, str]]
) -> None:
    from ript_fast.train import sft

    def started(*args: object) -> Path:
        raise _Started

    monkeypatch.setattr(sft, "_run_stage", started)  # after the policy, its stages and the folder are set up
    overrides = [f"{key}={value}" for key, value in pairs]
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["sft", "--config", "configs/sft_quest_smoke.yaml", f"demos=[{demos}]", "--out", f"{tmp}/run"]
        try:
            code = cli.main([*argv, *overrides])
        except _Started:
            return
    err = capsys.readouterr().err.strip()
    assert code == 2, (overrides, err)
    assert len(err.splitlines()) == 1 and err.startswith("ript-fast sft: error: "), (overrides, err)


def test_help_lists_the_presets_of_each_command_and_the_main_keys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert "default " in out and "ript_openvla_oft_libero" in out and "ript.group_size=16 (K)" in out
    assert "sft_quest_smoke" not in out  # an SFT preset is listed under sft, not train
    with pytest.raises(SystemExit):
        cli.main(["sft", "--help"])
    assert "oft_scale_head_libero" in capsys.readouterr().out
