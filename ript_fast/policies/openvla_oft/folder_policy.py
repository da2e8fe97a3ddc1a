"""An official OpenVLA-OFT folder used where a policy checkpoint is expected: `ript-fast eval --ckpt <folder>`
(the downloaded model's success before any RIPT) and `ript-fast train init=<folder>` with RIPT's released
scale-head file (`policy.openvla_oft.scale_head_file=...`), skipping the scale-head stage.

The folder says nothing of how the model reads LIBERO (cameras, proprio, render size, chunk): those are the
official LIBERO evaluation's settings (`LIBERO_POLICY`), overridable like any key. The model conditions on the
instruction text only, so the spec names no tasks (`Policy.task_conditioned` is False for this family).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ript_fast.policies.openvla_oft.loader import (
    ACTION_HEAD,
    CONFIG_FILE,
    PROPRIO_PROJECTOR,
    find_component_file,
    read_folder,
)

# The official LIBERO evaluation's inputs (run_libero_eval.py): agentview + wrist at 256 px, the 8-d proprio.
LIBERO_POLICY: dict[str, Any] = {
    "family": "openvla_oft",
    "obs": {
        "state_keys": ["ee_pos", "ee_ori", "gripper_states"],
        "image_keys": ["agentview_rgb", "eye_in_hand_rgb"],
        "render_size": 256,
    },
}


def is_model_folder(path: str | Path) -> bool:
    """A folder with a config.json: an official checkpoint folder, unless the config.json is a ript-fast checkpoint
    folder's (`train/pretrained.py`, told apart by its `ript_fast` key)."""
    from ript_fast.train.pretrained import is_pretrained_folder

    return Path(path).is_dir() and (Path(path) / CONFIG_FILE).is_file() and not is_pretrained_folder(path)


def folder_meta(folder: str | Path) -> dict[str, Any]:
    """What a ript-fast checkpoint header would say of the folder's policy (config + spec); reads no weights.

    A folder with an OFT component file (`action_head--*` or `proprio_projector--*_checkpoint.pt`) is an OpenVLA-OFT
    one (refused as such when the action head is missing); with neither, a vanilla OpenVLA folder
    (`openvla/folder_policy.py`): the two share config.json's model type and the shards' keys."""
    components = (ACTION_HEAD, PROPRIO_PROJECTOR)
    if Path(folder).is_dir() and all(find_component_file(Path(folder), name) is None for name in components):
        from ript_fast.policies.openvla.folder_policy import folder_meta as openvla_folder_meta

        return openvla_folder_meta(folder)
    found = read_folder(folder)
    policy = {**LIBERO_POLICY, "openvla_oft": {"checkpoint": str(folder)}}
    proprio = found.cfg.proprio_dim or 0
    spec = {"action_dim": found.cfg.action_dim, "state_dim": proprio, "task_names": [], "instructions": []}
    return {"family": "openvla_oft", "policy": policy, "spec": spec, "notes": {"source": str(folder)}}
