"""Refusing a checkpoint folder that does not hold what an OpenVLA-OFT checkpoint must: one error, naming file and key.

`FolderError` is a `CheckpointError`, which the CLI prints as one line (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ript_fast.train.checkpoint import CheckpointError


class FolderError(CheckpointError):
    """`<file>: <key> <what is wrong>`."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        self.path, self.key = Path(path), key
        super().__init__(f"{path}: {key} {problem}" if key else f"{path}: {problem}")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; a missing, unreadable or non-object file is a FolderError naming it."""
    if not path.is_file():
        raise FolderError(path, "", "is missing")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FolderError(path, "", f"is not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise FolderError(path, "", "does not hold a JSON object")
    return data
