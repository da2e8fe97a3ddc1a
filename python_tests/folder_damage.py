"""Ways to damage a checkpoint folder in the official layout, for the refusal tests of both OpenVLA families."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from ript_fast.policies.openvla_oft import FolderError
from ript_fast.train.checkpoint import CheckpointError

# A refusal case: (damage, file named, key named, loader kwargs)
Refusal = tuple[Callable[[Path], None], str, str, dict]


def damage_json(name: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    """Edits one JSON file of the folder."""

    def apply(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        edit(data)
        (folder / name).write_text(json.dumps(data))

    return apply


def damage_shard(
    edit: Callable[[dict], None], index_too: bool = True, shard: str = "model-00002-of-00002.safetensors"
) -> Callable[[Path], None]:
    """Edits the tensors of one shard (and, with `index_too`, the index to match)."""

    def apply(folder: Path) -> None:
        path = folder / shard
        state = load_file(str(path))
        edit(state)
        save_file(state, str(path))
        if index_too:
            index = json.loads((folder / "model.safetensors.index.json").read_text())
            index["weight_map"] = {k: v for k, v in index["weight_map"].items() if v != path.name}
            index["weight_map"].update(dict.fromkeys(state, path.name))
            (folder / "model.safetensors.index.json").write_text(json.dumps(index))

    return apply


def drop_tensor(key: str) -> Callable[[Path], None]:
    """Removes `key` from its shard and from the index (a folder that lacks a parameter altogether)."""

    def apply(folder: Path) -> None:
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        path = folder / index["weight_map"].pop(key)
        state = load_file(str(path))
        del state[key]
        save_file(state, str(path))
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))

    return apply


def assert_refused(reader: Callable[..., object], folder: Path, case: Refusal) -> None:
    """Damages `folder` as `case` says; `reader(folder, **kwargs)` must then raise one FolderError (a
    CheckpointError, which the CLI prints as one line) naming the file and the key."""
    damage, file_named, key_named, kwargs = case
    damage(folder)
    with pytest.raises(CheckpointError) as err:
        reader(folder, **kwargs)
    assert isinstance(err.value, FolderError)
    message = str(err.value)
    assert "\n" not in message
    assert file_named in message and key_named in message, message


def damaged_copy(folder: Path, tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    """A copy of `folder` under `tmp_path`, damaged."""
    import shutil

    copy = Path(shutil.copytree(folder, tmp_path / folder.name))
    damage(copy)
    return copy


def assert_cli_refuses(argv: list[str], out: Path, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`ript-fast <argv> --out <out>` exits 2 with one line of stderr holding `expected`, and makes no run folder."""
    from ript_fast.cli import main

    code = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and len(err.splitlines()) == 1, err
    assert not out.exists()
