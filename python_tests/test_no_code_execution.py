"""Nothing read from a run folder, checkpoint or demo file executes code (issue #20; OpenVLA-OFT folders:
test_openvla_oft.py).

Each reader a user may be handed a file for is fed a pickle that creates a marker file when unpickled: the
marker must never appear, and the error must name the file. The first test shows the payload is live.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from ript_fast.data import Episode, write_demo_file
from ript_fast.data.demo_file import DemoFileError, read_demo_file
from ript_fast.envs.libero.suites import read_shipped_init_states
from ript_fast.train.checkpoint import CheckpointError, load_policy, read_checkpoint_meta
from ript_fast.train.state_file import SFT_STATE_FORMAT, TRAINER_STATE_FORMAT, load_state
from ript_fast.train.trainer_checkpoints import LEGACY_STATE_FILE, STATE_FILE, SavedIteration

OLDER_VERSION = "this run was made by an older ript-fast version"


class Payload:
    """Unpickling this creates `marker` (it calls open(marker, "w")): any code a pickle names would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (self.marker, "w"))


WRITERS: dict[str, Callable[[object, Path], None]] = {
    "torch.save": lambda obj, path: torch.save(obj, path),
    "pickle": lambda obj, path: path.write_bytes(pickle.dumps(obj, protocol=2)),
}


@pytest.fixture(params=sorted(WRITERS))
def plant(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """plant(path) writes a payload pickle there (as torch.save or plain pickle) and returns the marker path
    its unpickling would create; the test's teardown checks the marker was never made."""
    marker = tmp_path / "CODE_RAN"

    def write(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        WRITERS[request.param]({"format": TRAINER_STATE_FORMAT, "iteration": 2, "x": Payload(marker)}, path)
        return marker

    yield write
    assert not marker.exists(), "a reader unpickled the payload"


def named(path: Path, *rest: str) -> str:
    """A regex for a message that starts with `path: ` and then says each of `rest`, in order."""
    return "^" + re.escape(f"{path}: ") + "".join(".*" + re.escape(r) for r in rest)


def test_the_payload_runs_code_when_unpickled(plant: Callable[[Path], Path], tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    marker = plant(path)
    if path.read_bytes()[:2] == b"PK":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()
    marker.unlink()  # the fixture's teardown checks it is gone


@pytest.mark.parametrize("fmt", [TRAINER_STATE_FORMAT, SFT_STATE_FORMAT])
def test_state_file_reader_refuses_a_pickle_as_an_older_version(
    plant: Callable[[Path], Path], tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / "state.safetensors"
    plant(path)
    with pytest.raises(CheckpointError, match=named(path, OLDER_VERSION, "cannot be resumed by this one")):
        load_state(path, fmt)


@pytest.mark.parametrize("name", [LEGACY_STATE_FILE, STATE_FILE])
def test_trainer_checkpoint_with_a_pickled_state_is_refused(
    plant: Callable[[Path], Path], tmp_path: Path, name: str
) -> None:
    """A run folder of an older version (trainer_state.pt) or a pickle under the new name."""
    folder = tmp_path / "checkpoints" / "iter_000002"
    plant(folder / name)
    with pytest.raises(CheckpointError, match=named(folder / name, OLDER_VERSION)) as err:
        SavedIteration(2, folder).load_state()
    assert "\n" not in str(err.value)


def test_sft_resume_refuses_a_pickled_state(
    plant: Callable[[Path], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ript-fast sft --resume` on a folder whose state file was replaced by a pickle: one line, exit 2."""
    from ript_fast.cli import main

    demos = tiny_demo_file(tmp_path / "d.hdf5")
    smoke = Path(__file__).resolve().parents[1] / "configs" / "sft_quest_smoke.yaml"
    out = tmp_path / "run"
    overrides = [f"demos=[{demos}]", "stages=[{name: autoencoder, steps: 2}]"]
    command = ["sft", "--config", str(smoke), "--out", str(out), *overrides]
    assert main(command) == 0
    (out / "policy.safetensors").unlink()  # as if killed after its last checkpoint: a resume reads the state
    (state,) = (out / "checkpoints").glob("train_state.*")
    plant(state)
    capsys.readouterr()
    assert main([*command, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(named(state, OLDER_VERSION)[1:], err), err


@pytest.mark.parametrize("read", [load_policy, read_checkpoint_meta])
def test_policy_checkpoint_readers_refuse_a_pickle(
    plant: Callable[[Path], Path], tmp_path: Path, read: Callable[[Path], object]
) -> None:
    path = tmp_path / "policy.safetensors"
    plant(path)
    with pytest.raises(CheckpointError, match=named(path, "not a safetensors checkpoint")):
        read(path)


def tiny_demo_file(path: Path) -> Path:
    rng = np.random.default_rng(0)
    state = rng.normal(size=(30, 39)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(30, 4)).astype(np.float32)
    episode = Episode(actions, {"state": state}, rng.normal(size=(30, 6)), np.zeros(30), np.zeros(30))
    return write_demo_file(path, [episode], "metaworld/reach-v3", "reach-v3", "reach")


def test_demo_file_reader_refuses_a_pickle(plant: Callable[[Path], Path], tmp_path: Path) -> None:
    path = tmp_path / "demos.hdf5"
    plant(path)
    with pytest.raises(DemoFileError, match=named(path)):
        read_demo_file(path)


def test_libero_init_states_are_read_only_inside_the_package(plant: Callable[[Path], Path], tmp_path: Path) -> None:
    """Shipped init states are pickles: read from the installed LIBERO package, refused anywhere else (a
    LIBERO config pointing elsewhere, a symlink or `..` out of the package)."""
    package = tmp_path / "site-packages" / "libero" / "libero"
    shipped = package / "init_files" / "libero_goal" / "task.pruned_init"
    shipped.parent.mkdir(parents=True)
    states = np.random.default_rng(0).normal(size=(50, 80))
    torch.save(states, shipped)
    np.testing.assert_array_equal(read_shipped_init_states(shipped, package), states)

    outside = tmp_path / "elsewhere" / "task.pruned_init"
    plant(outside)
    link = package / "init_files" / "libero_goal" / "linked.pruned_init"
    link.symlink_to(outside)
    for path in (outside, link, package / ".." / ".." / "elsewhere" / "task.pruned_init"):
        with pytest.raises(ValueError, match=named(path, "read only from the installed LIBERO package")):
            read_shipped_init_states(path, package)


def test_config_yaml_builds_no_python_objects(tmp_path: Path) -> None:
    """A run folder's config.yaml (or any config file) with a tag that would call Python is refused: configs
    are read with safe_load."""
    from ript_fast.config import ConfigError, load_config
    from ript_fast.train.sft import SftConfig

    marker = tmp_path / "CODE_RAN"
    config = tmp_path / "config.yaml"
    config.write_text(f"out_dir: !!python/object/apply:builtins.open [{json.dumps(str(marker))}, w]\n")
    with pytest.raises(ConfigError, match=re.escape(str(config))):
        load_config(SftConfig, config)
    assert not marker.exists()
