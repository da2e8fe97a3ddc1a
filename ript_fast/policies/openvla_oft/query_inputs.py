"""One policy query's stored inputs (`ChunkSample.cond`) for both OpenVLA families, and the pixels made from them.

The cond holds what re-scoring needs at fixed per-row shapes: the prompt (`input_ids` / `attention_mask`, padded
after BOS to `max_prompt_tokens`) and each camera as the 224 px uint8 image after the official LIBERO steps
(`libero_inputs.policy_image`: 180 degree rotation, JPEG round trip, lanczos resize, center crop). Keeping uint8 images
rather than pixel tensors keeps a rollout's memory at a sixth (6 float channels per pixel otherwise).
"""

from __future__ import annotations

import numpy as np
import torch

from ript_fast.policies.base import Observation
from ript_fast.policies.obs_encoder import IMAGE_PREFIX
from ript_fast.policies.openvla_oft.images import BackboneNormalization, pixel_values
from ript_fast.policies.openvla_oft.libero_inputs import policy_image
from ript_fast.policies.openvla_oft.sequence import fixed_length_prompts, prompt_ids
from ript_fast.policies.openvla_oft.tokenizer import PromptTokenizer


def prompt_image_cond(
    obs: Observation,
    tokenizer: PromptTokenizer,
    image_keys: list[str],
    max_prompt_tokens: int,
    center_crop: bool,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """The prompts and processed camera images of `obs`; a camera it lacks is a ValueError naming it."""
    missing = [k for k in image_keys if k not in obs.images]
    if missing:
        raise ValueError(f"the observation lacks camera(s) {missing} (policy.obs.image_keys)")
    rows = [prompt_ids(tokenizer.encode, text) for text in obs.instructions]
    ids, mask = fixed_length_prompts(rows, max_prompt_tokens)
    cond = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    for key in image_keys:
        rendered = obs.images[key].detach().cpu().numpy()
        processed = np.stack([policy_image(img, crop=center_crop) for img in rendered])
        cond[IMAGE_PREFIX + key] = torch.from_numpy(processed).to(device)
    return cond


def cond_pixels(
    cond: dict[str, torch.Tensor],
    image_keys: list[str],
    normalization: tuple[BackboneNormalization, BackboneNormalization],
    like: torch.Tensor,
) -> torch.Tensor:
    """The model's pixel tensor (B, 6 * cameras, S, S) of the cond's images, on `like`'s device and dtype."""
    cams = [cond[IMAGE_PREFIX + k].detach().cpu().numpy() for k in image_keys]
    return pixel_values(cams, normalization).to(like.device, like.dtype)
