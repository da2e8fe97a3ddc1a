"""An official OpenVLA folder used where a policy checkpoint is expected: `ript-fast eval --ckpt <folder>` measures
the downloaded model as it is (greedy, as its paper numbers).

The folder says nothing of how the model reads LIBERO: those are the official LIBERO evaluation's settings
(`LIBERO_POLICY`: the third-person camera rendered at 256 px), overridable like any key. The model conditions on the
instruction text only, so the spec names no tasks (`Policy.task_conditioned` is False for this family).
`openvla_oft/folder_policy.py` tells the two kinds of folder apart (an OFT folder has an action-head file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ript_fast.policies.openvla.loader import read_openvla_folder

# The official LIBERO evaluation's inputs (experiments/robot/libero/run_libero_eval.py): agentview at 256 px. The state
# keys are not read by the model; they only name what the env's state observation holds.
LIBERO_POLICY: dict[str, Any] = {
    "family": "openvla",
    "obs": {
        "state_keys": ["ee_pos", "ee_ori", "gripper_states"],
        "image_keys": ["agentview_rgb"],
        "render_size": 256,
    },
}


def folder_meta(folder: str | Path) -> dict[str, Any]:
    """What a ript-fast checkpoint header would say of the folder's policy (config + spec); reads no weights."""
    found = read_openvla_folder(folder)
    policy = {**LIBERO_POLICY, "openvla": {"checkpoint": str(folder)}}
    spec = {"action_dim": found.cfg.action_dim, "state_dim": 0, "task_names": [], "instructions": []}
    return {"family": "openvla", "policy": policy, "spec": spec, "notes": {"source": str(folder)}}
