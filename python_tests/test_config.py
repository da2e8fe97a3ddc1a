"""Typed config loading: every mistake is one ConfigError naming the file and the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ript_fast.config import ConfigError, find_config, from_dict, load_config, parse_overrides, to_dict
from ript_fast.train.run_config import TrainConfig


@dataclass
class Inner:
    lr: float = 1e-4
    mode: Literal["token", "sequence"] = "token"


@dataclass
class Outer:
    env: str | list[str] = "metaworld/reach-v3"
    steps: int = 3
    flag: bool = False
    seed: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("steps: 5\ninner:\n  lr: 1e-3\n")
    cfg = load_config(Outer, path, ["inner.mode=sequence", "env=[metaworld/a, metaworld/b]", "seed=7"])
    assert cfg.steps == 5 and cfg.inner.lr == 1e-3 and cfg.inner.mode == "sequence"
    assert cfg.env == ["metaworld/a", "metaworld/b"] and cfg.seed == 7
    assert to_dict(cfg)["inner"] == {"lr": 1e-3, "mode": "sequence"}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"stpes": 1}, "unknown key 'stpes' .*did you mean steps"),
        ({"inner": {"lrr": 1}}, "unknown key 'inner.lrr'"),
        ({"steps": "many"}, "steps must be an integer"),
        ({"steps": 1.5}, "steps must be an integer"),
        ({"flag": "yes"}, "flag must be true or false"),
        ({"inner": {"mode": "episode"}}, "inner.mode must be one of 'token', 'sequence'"),
        ({"inner": 3}, "inner: expected a mapping"),
        ({"env": 5}, "env"),
    ],
)
def test_errors_name_the_key(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_dict(Outer, data)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(Outer, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML"):
        load_config(Outer, bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("steps: x\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: steps must be an integer"):
        load_config(Outer, wrong)


@pytest.mark.parametrize("item", ["noequals", "=3", "a..b=1"])
def test_bad_override_syntax(item: str) -> None:
    with pytest.raises(ConfigError, match="must look like key=value"):
        parse_overrides([item])


# ---- fuzzing: any YAML-able value under any key either loads into a valid config or is one ConfigError ----
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.floats(allow_nan=True), st.text(max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
keys = st.sampled_from(
    [
        "env",
        "seed",
        "ript.group_size",
        "ript.batch_rollouts",
        "ript.lr",
        "ript.ratio_level",
        "ript.clip_eps",
        "contexts.size",
        "contexts.noise_std",
        "eval.every",
        "sft.policy.quest.top_k",
        "sft.stages",
        "demos.files",
        "ript.group_lr",
        "nonsense",
        "ript.nonsense",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=4))
def test_fuzzed_train_configs_load_or_raise_config_error(overrides: dict) -> None:
    nested: dict = {}
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        cfg = from_dict(TrainConfig, nested)
    except ConfigError as err:
        assert str(err) and "\n" not in str(err).strip()
        return
    assert cfg.ript.group_size >= 2 and cfg.ript.batch_rollouts % cfg.ript.group_size == 0


def test_base_files_merge_under_the_including_keys(tmp_path: Path) -> None:
    (tmp_path / "inner.yaml").write_text("lr: 0.5\nmode: sequence\n")
    (tmp_path / "run.yaml").write_text("steps: 9\ninner:\n  _base_: inner.yaml\n  lr: 0.25\n")
    cfg = load_config(Outer, tmp_path / "run.yaml")
    assert cfg.steps == 9 and cfg.inner.lr == 0.25 and cfg.inner.mode == "sequence"


def test_base_cycles_and_missing_bases_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(Outer, tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("_base_: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"no config file nowhere\.yaml"):
        load_config(Outer, tmp_path / "c.yaml")


def test_packaged_presets_load() -> None:
    """Every preset in configs/ is a valid config of its kind (run configs and SFT configs)."""
    from ript_fast.config import find_config, preset_dirs
    from ript_fast.train.sft import SftConfig

    presets = sorted({p.name for d in preset_dirs() for p in d.glob("*.yaml")})
    assert "default.yaml" in presets
    for name in presets:
        kind = TrainConfig if name.startswith(("ript_", "default")) else SftConfig  # run vs SFT presets
        load_config(kind, find_config(name))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ript.lr=-0.001", "ript.lr must be > 0, got -0.001"),
        ("ript.max_grad_norm=-1", "ript.max_grad_norm must be > 0"),
        ("ript.weight_decay=-0.1", "ript.weight_decay must be >= 0"),
        ("ript.clip_eps=3", "ript.clip_eps must be < 1"),
        ("ript.clip_eps_high=0", "ript.clip_eps_high must be > 0"),
        ("ript.group_lr={prior: -1e-4}", "ript.group_lr.prior must be > 0"),
        ("ript.min_lr_ratio=2", "ript.min_lr_ratio must be <= 1"),
        ("ript.lr=.nan", "ript.lr must be a finite number, got nan"),
        ("ript.max_grad_norm=.inf", "ript.max_grad_norm must be a finite number, got inf"),
        ("contexts.noise_std=-0.01", "contexts.noise_std must be >= 0"),
        ("seed=-1", "seed must be >= 0"),
        ("seed=4294967296", "seed must be < 2.14748e+09"),
        ("demos.num_demos=0", "demos.num_demos must be >= 1"),
        ("keep_checkpoints=0", "keep_checkpoints must be >= 1"),
        ("sft.stages=[{name: prior, steps: 5, lr: -1}]", "sft.stages[0].lr must be > 0"),
        ("sft.stages=[{name: prior, steps: -5}]", "sft.stages[0].steps must be >= 0"),
        ("sft.policy.quest.dropout=1.5", "sft.policy.quest.dropout must be < 1"),
        ("policy={quest: {temperature: 0}}", "policy.quest.temperature must be > 0"),
        ("ript.group_size=1", "(K: a leave-one-out baseline needs two rollouts per context)"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(TrainConfig, None, [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_first_difference_names_the_key_path() -> None:
    from ript_fast.config import first_difference

    old = {"a": 1, "b": {"c": [1, {"d": 2}]}, "e": None}
    assert first_difference(old, old) is None
    assert first_difference(old, {**old, "b": {"c": [1, {"d": 3}]}}) == ("b.c[1].d", 2, 3)
    assert first_difference(old, {**old, "f": 0}) == ("f", None, 0)
    assert first_difference(old, {**old, "b": {"c": [1]}}) == ("b.c", [1, {"d": 2}], [1])


def test_packaged_values_name_files_shipped_with_the_presets(tmp_path: Path) -> None:
    """`packaged:<file>` (in a file or an override, at any depth) becomes the path of that file beside the presets;
    a file that is not there is one line naming the key."""
    config = tmp_path / "run.yaml"
    config.write_text("init: packaged:default.yaml\nsft:\n  demos: [packaged:ript_smoke.yaml]\n")
    cfg = load_config(TrainConfig, config, ["sft.init_checkpoint=packaged:default.yaml"])
    assert cfg.init == str(find_config("default")) and Path(cfg.init).is_file()
    assert cfg.sft.demos == [str(find_config("ript_smoke"))] and cfg.sft.init_checkpoint == cfg.init
    with pytest.raises(ConfigError, match=r"sft\.init_checkpoint: no file priors/none\.safetensors among the packaged"):
        load_config(TrainConfig, config, ["sft.init_checkpoint=packaged:priors/none.safetensors"])
