"""OpenVLA-OFT (Kim et al. 2025) written here from the official code's description, loading official checkpoints.

`load_openvla_oft(folder)` reads a downloaded checkpoint folder (no code from it runs); the model maps images,
instruction and proprio to the mean of an action chunk in one bidirectional LM pass (`model.py`); RIPT's scale head
(`scale_head.py`) gives its log-scales; `policy.py` is the `openvla_oft` policy family.

The names below are imported on first use (PEP 562): `policies.config` imports `policy_config` from this package,
and the loader's errors import `train.checkpoint`, which imports `policies.config`; importing everything here
eagerly would make that a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "FolderError": "errors",
    "LaplaceScaleHead": "scale_head",
    "OpenVLAOFT": "model",
    "OpenVLAOFTCheckpoint": "loader",
    "OpenVLAOFTConfig": "config",
    "ViTArchitecture": "vit",
    "clip_log_scale": "scale_head",
    "load_openvla_oft": "loader",
    "load_scale_head": "scale_head",
    "normalize_proprio": "normalization",
    "pixel_values": "images",
    "prompt_text": "sequence",
    "register_vit_architecture": "vit",
    "tokenize_prompts": "sequence",
    "unnormalize_actions": "normalization",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
