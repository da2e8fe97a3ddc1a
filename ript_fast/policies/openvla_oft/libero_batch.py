"""A batch of LIBERO observations -> one OpenVLA-OFT query -> LIBERO actions: the official evaluation's
`prepare_observation` + `get_vla_action` + `process_action`, for many environments at once.

`prepare_libero_batch` gives the model's inputs (what RIPT stores per query to re-score it); `actions_for_env` maps the
model's normalized mean chunk to what LIBERO steps. Both take what ript-fast's LIBERO env returns: rendered
third-person and wrist images (rows as robosuite renders them, 256 px for the official setting) and the 16-d state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ript_fast.envs.libero.vec_env import PROPRIO_SLICES
from ript_fast.policies.openvla_oft.images import pixel_values
from ript_fast.policies.openvla_oft.libero_inputs import env_actions, libero_proprio, policy_image
from ript_fast.policies.openvla_oft.loader import OpenVLAOFTCheckpoint
from ript_fast.policies.openvla_oft.normalization import normalize_proprio, unnormalize_actions
from ript_fast.policies.openvla_oft.sequence import tokenize_prompts


@dataclass
class QueryInputs:
    """The model inputs of one batched query."""

    pixel_values: torch.Tensor  # (B, 6 * cameras, 224, 224)
    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L)
    proprio: torch.Tensor | None  # (B, 8) normalized

    def to(self, device: torch.device | str, dtype: torch.dtype) -> QueryInputs:
        proprio = None if self.proprio is None else self.proprio.to(device, dtype)
        return QueryInputs(
            self.pixel_values.to(device, dtype), self.input_ids.to(device), self.attention_mask.to(device), proprio
        )


def prepare_libero_batch(
    ckpt: OpenVLAOFTCheckpoint,
    cameras: Sequence[np.ndarray],
    states: np.ndarray,
    instructions: Sequence[str],
    center_crop: bool = True,
) -> QueryInputs:
    """cameras: [(B, H, W, 3) uint8 third-person, (B, H, W, 3) uint8 wrist] as rendered; states: (B, 16) LIBERO state.

    center_crop: True for checkpoints trained with random-crop augmentation (every official LIBERO OFT checkpoint).
    """
    if len(cameras) != ckpt.model.cfg.num_images:
        raise ValueError(f"the model takes {ckpt.model.cfg.num_images} camera(s); got {len(cameras)}")
    images = [np.stack([policy_image(img, crop=center_crop) for img in batch]) for batch in cameras]
    ids, mask = tokenize_prompts(ckpt.tokenizer.encode, list(instructions))
    proprio = None
    if ckpt.statistics.proprio is not None:
        views = [states[:, PROPRIO_SLICES[k]] for k in ("ee_pos", "ee_quat", "gripper_states")]
        raw = libero_proprio(*views)
        proprio = torch.as_tensor(normalize_proprio(raw, ckpt.statistics.proprio), dtype=torch.float32)
    return QueryInputs(pixel_values(images, ckpt.image_normalization), ids, mask, proprio)


@torch.no_grad()
def mean_chunk(ckpt: OpenVLAOFTCheckpoint, inputs: QueryInputs) -> torch.Tensor:
    """The model's mean chunk (B, chunk_len, action_dim), normalized, float32 on the CPU."""
    param = next(ckpt.model.parameters())
    x = inputs.to(param.device, param.dtype)
    return ckpt.model(x.pixel_values, x.input_ids, x.attention_mask, x.proprio).float().cpu()


def actions_for_env(ckpt: OpenVLAOFTCheckpoint, normalized: torch.Tensor | np.ndarray) -> np.ndarray:
    """Normalized chunk (B, chunk_len, 7) -> LIBERO actions: un-normalized with q01/q99, gripper mapped to -1/+1."""
    return env_actions(unnormalize_actions(np.asarray(normalized, dtype=np.float64), ckpt.statistics.action))
