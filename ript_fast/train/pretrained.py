"""Checkpoint folders in the Hugging Face layout: `save_pretrained` / `from_pretrained`.

A folder holds `config.json` (what `checkpoint.checkpoint_meta` says of the policy: family, policy config, spec,
notes, under a `ript_fast` key that gives the folder format and the ript-fast version), `model.safetensors`
(written by `checkpoint.save_policy`, so it is also a single-file checkpoint on its own) and `README.md`, a model
card (`model_card.py`). It is what the hub shows and serves (`hub.py` pushes one), and `load_policy`, hence
`ript-fast eval --ckpt` and `train init=`, reads it like a single file.

The `ript_fast` key is what tells such a folder from an official OpenVLA-OFT folder, which also has a config.json
(`policies/openvla_oft/folder_policy.py`). Reading one runs no code: JSON and safetensors only. Refusals are one
line naming the file and the key (`CheckpointError`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import ript_fast
from ript_fast.config import ConfigError, from_dict
from ript_fast.policies.base import Policy, PolicySpec
from ript_fast.train.atomic import atomic_write_text
from ript_fast.train.binomial import wilson_interval
from ript_fast.train.checkpoint import FORMAT, CheckpointError, checkpoint_meta, load_policy, save_policy
from ript_fast.train.model_card import model_card

FOLDER_FORMAT = "ript_fast.policy_folder/1"
FOLDER_KEY = "ript_fast"  # config.json's key holding {"format", "version"}: a ript-fast folder has it
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
FOLDER_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)


@dataclass(frozen=True)
class EvalScore:
    """One measured success rate for the model card: `successes` of `episodes` episodes of `env`."""

    name: str  # what was measured, e.g. "held-out success after 15 RIPT iterations"
    env: str
    successes: int
    episodes: int

    def __post_init__(self) -> None:
        if not 0 <= self.successes <= self.episodes or self.episodes < 1:
            raise ValueError(f"{self.name}: {self.successes} successes of {self.episodes} episodes")

    @property
    def rate(self) -> float:
        return self.successes / self.episodes

    def interval(self) -> tuple[float, float]:
        """The Wilson score 95% interval (`binomial.wilson_interval`)."""
        return wilson_interval(self.successes, self.episodes)


def save_pretrained(
    policy: Policy,
    folder: str | Path,
    eval_results: Sequence[EvalScore] | None = None,
    notes: dict[str, Any] | None = None,
    name: str | None = None,
) -> Path:
    """Writes `policy` as a checkpoint folder (weights, config.json, model card with `eval_results` and `notes`).

    Each file is written atomically (never torn), config.json last: a first write killed midway leaves no folder
    that loads, and the next save completes it; a rewrite killed midway leaves the new weights beside the previous
    config.json (the same shapes when a run rewrites its own folder). A folder holding anything else than such a
    checkpoint is refused rather than written into.
    """
    folder = Path(folder)
    _check_writable(folder)
    save_policy(policy, folder / WEIGHTS_FILE, notes)
    meta = checkpoint_meta(policy, notes)
    card = model_card(meta, list(eval_results or []), name or folder.resolve().name)
    atomic_write_text(folder / CARD_FILE, card)
    atomic_write_text(folder / CONFIG_FILE, json.dumps(_folder_config(meta), indent=2) + "\n")
    return folder


def from_pretrained(
    folder: str | Path,
    device: str | torch.device = "cpu",
    config_overrides: dict[str, Any] | None = None,
    revision: str | None = None,
    token: str | None = None,
) -> Policy:
    """The policy of a checkpoint folder (`config_overrides` as for `load_policy`: settings that keep shapes), or of
    hub repo `owner/name` when no such folder exists here (downloaded through huggingface_hub's cache at
    `revision`: `hub.download_folder`)."""
    if not Path(folder).exists() and _is_repo_id(str(folder)):
        from ript_fast.train.hub import download_folder

        folder = download_folder(str(folder), revision, token)
    read_folder_meta(folder)  # refuses anything but a ript-fast folder, naming the file
    return load_policy(folder, device, config_overrides)


def _is_repo_id(name: str) -> bool:
    """`owner/name` as the hub spells model repos (a path with more parts, or absolute or relative, is not one)."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~"))


def is_pretrained_folder(path: str | Path) -> bool:
    """A folder whose config.json is a JSON object with the `ript_fast` key (written by `save_pretrained`)."""
    config = Path(path) / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and FOLDER_KEY in data


def read_folder_meta(folder: str | Path) -> dict[str, Any]:
    """config.json as a checkpoint header (`checkpoint.read_checkpoint_meta`'s answer), checked key by key."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (a checkpoint folder holds {', '.join(FOLDER_FILES)})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a JSON file ({err})") from None
    header = data.get(FOLDER_KEY) if isinstance(data, dict) else None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: no {FOLDER_KEY!r} key: not a ript-fast checkpoint folder")
    if header.get("format") != FOLDER_FORMAT:
        found = header.get("format")
        raise CheckpointError(f"{path}: key '{FOLDER_KEY}.format' is {found!r}, this version reads {FOLDER_FORMAT!r}")
    for key, kind in (("family", str), ("policy", dict), ("spec", dict), ("notes", dict)):
        if not isinstance(data.get(key), kind):
            raise CheckpointError(f"{path}: key {key!r} must hold a {'string' if kind is str else 'JSON object'}")
    try:
        from_dict(PolicySpec, data["spec"], "spec")
    except ConfigError as err:
        raise CheckpointError(f"{path}: {err}") from None
    if not (folder / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{folder / WEIGHTS_FILE}: missing (config.json names a ript-fast checkpoint folder)")
    meta = {key: data[key] for key in ("family", "policy", "spec", "notes")}
    return {"format": FORMAT, "version": header.get("version"), **meta}


def weights_of(path: str | Path) -> Path | None:
    """The safetensors file holding a checkpoint's weights: the file itself, a folder's model.safetensors, or
    None for an official OpenVLA-OFT folder (its weights are read when the policy is built)."""
    path = Path(path)
    if is_pretrained_folder(path):
        return path / WEIGHTS_FILE
    return None if path.is_dir() else path


def run_eval_scores(history: Sequence[dict[str, Any]], env: str, episodes: int) -> list[EvalScore]:
    """Held-out success before and after RIPT from a run's metrics (`eval_success` at iteration 0 and at the
    last evaluated iteration), `episodes` episodes each: what the run's model card reports."""
    evaluated = [r for r in history if isinstance(r.get("eval_success"), (int, float))]
    if not evaluated:
        return []
    ends = [evaluated[0]] if len(evaluated) == 1 else [evaluated[0], evaluated[-1]]
    return [_score(record, env, episodes) for record in ends]


def _score(record: dict[str, Any], env: str, episodes: int) -> EvalScore:
    iteration = int(record["iteration"])
    when = "before RIPT" if iteration == 0 else f"after {iteration} RIPT iterations"
    return EvalScore(f"held-out success {when}", env, round(record["eval_success"] * episodes), episodes)


def _folder_config(meta: dict[str, Any]) -> dict[str, Any]:
    """config.json: the checkpoint header with its format replaced by the folder's `ript_fast` key."""
    body = {key: value for key, value in meta.items() if key not in ("format", "version")}
    return {FOLDER_KEY: {"format": FOLDER_FORMAT, "version": ript_fast.__version__}, **body}


def _check_writable(folder: Path) -> None:
    """Writing into a folder is fine when it holds nothing but a ript-fast checkpoint's files (also those of a
    write killed before config.json, and atomic writes' hidden temporaries): they are replaced. Anything else
    (an official model folder, other files) is refused, so nothing of the user's is overwritten."""
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder}: exists and is not a folder")
    if not folder.is_dir():
        return
    others = sorted(p.name for p in folder.iterdir() if p.name not in FOLDER_FILES and not p.name.startswith("."))
    if others:
        raise CheckpointError(f"{folder}: holds {others[0]!r}, not a ript-fast checkpoint file; give a new folder")
    if (folder / CONFIG_FILE).exists() and not is_pretrained_folder(folder):
        raise CheckpointError(f"{folder / CONFIG_FILE}: no {FOLDER_KEY!r} key: not a ript-fast folder to replace")
