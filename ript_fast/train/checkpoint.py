"""Self-describing policy checkpoints: one safetensors file whose header carries everything needed to
rebuild the policy (family, full policy config, data spec: action/state dims, task list, instructions),
plus the ript-fast version and the producer's notes (stage, step, demo files).

`load_policy(path)` needs nothing else, except for OpenVLA-OFT: its frozen base (vision, projectors, LM) is not
copied into every checkpoint; it is re-read from `policy.openvla_oft.checkpoint` and only LoRA and heads are stored.
Writes are atomic (temp file + rename), so a killed run never leaves a torn checkpoint. `load_policy` also reads a
checkpoint folder (`pretrained.py`: config.json + model.safetensors + model card) and an official OpenVLA-OFT folder.

Compatibility is the header's `format` (a checkpoint of another format is refused); `version` records which
ript-fast wrote it, for the user's information. A checkpoint of another policy family than the config asks
for is refused too.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import ript_fast
from ript_fast.config import from_dict, merge, to_dict
from ript_fast.policies.base import Policy, PolicySpec
from ript_fast.policies.config import PolicyConfig
from ript_fast.policies.factory import build_policy
from ript_fast.train.atomic import atomic_write

FORMAT = "ript_fast.policy/1"
META_KEY = "ript_fast"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not a ript-fast policy; the message names the file."""


def checkpoint_meta(policy: Policy, notes: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a checkpoint says of its policy (a file's header, a folder's config.json): enough to rebuild it."""
    return {
        "format": FORMAT,
        "version": ript_fast.__version__,
        "family": policy.family,
        "policy": to_dict(policy.policy_config),
        "spec": asdict(policy.spec),
        "notes": notes or {},
    }


def save_policy(policy: Policy, path: str | Path, notes: dict[str, Any] | None = None) -> Path:
    """Writes `policy` (weights + config + spec + `notes`) to `path` atomically."""
    meta = checkpoint_meta(policy, notes)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in policy.checkpoint_state().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)}))
    return Path(path)


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The header of a checkpoint (no weights read); for a checkpoint folder, its config.json
    (`pretrained.py`); for an official OpenVLA-OFT folder, what its header would say
    (`openvla_oft/folder_policy.py`)."""
    path = Path(path)
    from ript_fast.policies.openvla_oft.folder_policy import folder_meta, is_model_folder
    from ript_fast.train.pretrained import is_pretrained_folder, read_folder_meta

    if is_pretrained_folder(path):
        return read_folder_meta(path)
    if is_model_folder(path):
        return folder_meta(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder without config.json (neither a checkpoint nor a model folder)")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({err})") from None
    if META_KEY not in header:
        raise CheckpointError(f"{path}: safetensors file without ript-fast metadata (not a policy checkpoint)")
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: damaged ript-fast metadata ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{path}: checkpoint format {found!r}, this version reads {FORMAT!r}")
    return meta


def load_policy(
    path: str | Path, device: str | torch.device = "cpu", config_overrides: dict[str, Any] | None = None
) -> Policy:
    """Rebuilds the policy of a checkpoint and loads its weights. `config_overrides` (a nested dict over the
    policy config, e.g. {"quest": {"top_k": 3}}) may change settings that do not change shapes."""
    meta = read_checkpoint_meta(path)
    wanted = (config_overrides or {}).get("family", meta["family"])
    if wanted != meta["family"]:
        raise CheckpointError(f"{path}: holds a {meta['family']!r} policy, but the config asks for family {wanted!r}")
    cfg = from_dict(PolicyConfig, merge(meta["policy"], config_overrides or {}), "policy")
    policy = build_policy(cfg, PolicySpec(**meta["spec"]))
    from ript_fast.train.pretrained import weights_of

    weights = weights_of(path)
    if weights is None:  # an official folder: the policy was built from it
        return policy.to(device)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights}: not a safetensors checkpoint ({err})") from None
    try:
        policy.load_checkpoint_state(state)
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"{weights}: weights do not fit the policy its header describes ({err})") from None
    return policy.to(device)
