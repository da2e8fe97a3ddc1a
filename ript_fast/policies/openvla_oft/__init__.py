"""OpenVLA-OFT (Kim et al. 2025) written here from the official code's description, loading official checkpoints.

`load_openvla_oft(folder)` reads a downloaded checkpoint folder (no code from it runs); the model maps images,
instruction and proprio to the mean of an action chunk in one bidirectional LM pass (`model.py`).
"""

from ript_fast.policies.openvla_oft.config import OpenVLAOFTConfig
from ript_fast.policies.openvla_oft.errors import FolderError
from ript_fast.policies.openvla_oft.images import pixel_values
from ript_fast.policies.openvla_oft.loader import OpenVLAOFTCheckpoint, load_openvla_oft
from ript_fast.policies.openvla_oft.model import OpenVLAOFT
from ript_fast.policies.openvla_oft.normalization import normalize_proprio, unnormalize_actions
from ript_fast.policies.openvla_oft.scale_head import LaplaceScaleHead, clip_log_scale, load_scale_head
from ript_fast.policies.openvla_oft.sequence import prompt_text, tokenize_prompts
from ript_fast.policies.openvla_oft.vit import ViTArchitecture, register_vit_architecture

__all__ = [
    "FolderError",
    "LaplaceScaleHead",
    "OpenVLAOFT",
    "OpenVLAOFTCheckpoint",
    "OpenVLAOFTConfig",
    "ViTArchitecture",
    "clip_log_scale",
    "load_openvla_oft",
    "load_scale_head",
    "normalize_proprio",
    "pixel_values",
    "prompt_text",
    "register_vit_architecture",
    "tokenize_prompts",
    "unnormalize_actions",
]
