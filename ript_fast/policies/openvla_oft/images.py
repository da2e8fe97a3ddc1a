"""Images -> the model's pixel tensor, as the official `PrismaticImageProcessor` makes it (no torchvision needed).

For each backbone the official processor resizes the PIL image to its input size (bicubic; a no-op on the 224 x 224
images the LIBERO evaluation feeds it), center-crops (a no-op after that resize), scales to [0, 1] and normalizes
with that backbone's mean/std; the two 3-channel results are stacked (DINOv2 first). Several cameras are stacked
after each other on the channel axis.

The mean/std are the `tvf_normalize_params` saved in the checkpoint's `preprocessor_config.json`: the processor
loads them as attributes over the ones it recomputes, and for DINOv2 they are the bf16-rounded ImageNet values
(0.484375, ...), not 0.485, so they are read from the file rather than hard-coded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ript_fast.policies.openvla_oft.errors import FolderError

PREPROCESSOR_FILE = "preprocessor_config.json"


@dataclass(frozen=True)
class BackboneNormalization:
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _triple(value: Any, path: Path, key: str) -> tuple[float, float, float]:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
        raise FolderError(path, key, f"is {value!r}; expected three numbers")
    return (float(value[0]), float(value[1]), float(value[2]))


def read_image_normalization(
    cfg: dict[str, Any], path: Path, image_sizes: tuple[int, int]
) -> tuple[BackboneNormalization, BackboneNormalization]:
    """The per-backbone normalization of a loaded preprocessor_config.json (`path` names it in errors)."""
    strategy = cfg.get("image_resize_strategy", "resize-naive")
    if strategy != "resize-naive":
        raise FolderError(path, "image_resize_strategy", f"is {strategy!r}; only 'resize-naive' is supported")
    params = cfg.get("tvf_normalize_params")
    if not (isinstance(params, list) and len(params) == 2 and all(isinstance(p, dict) for p in params)):
        raise FolderError(path, "tvf_normalize_params", "must list two {mean, std} objects (DINOv2, SigLIP)")
    return tuple(  # type: ignore[return-value]
        BackboneNormalization(
            size=image_sizes[i],
            mean=_triple(p.get("mean"), path, f"tvf_normalize_params[{i}].mean"),
            std=_triple(p.get("std"), path, f"tvf_normalize_params[{i}].std"),
        )
        for i, p in enumerate(params)
    )


def _backbone_pixels(image: np.ndarray, norm: BackboneNormalization) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, size, size) float32, torchvision's resize/to_tensor/normalize on a PIL image."""
    if image.shape[:2] != (norm.size, norm.size):
        image = np.asarray(Image.fromarray(image).resize((norm.size, norm.size), Image.Resampling.BICUBIC))
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(norm.mean, dtype=pixels.dtype)[:, None, None]
    std = torch.tensor(norm.std, dtype=pixels.dtype)[:, None, None]
    return (pixels - mean) / std


def pixel_values(
    cameras: list[np.ndarray], normalization: tuple[BackboneNormalization, BackboneNormalization]
) -> torch.Tensor:
    """Camera batches [(B, H, W, 3) uint8, ...] (third-person first, then wrist) -> (B, 6 * cameras, S, S)."""
    per_camera = []
    for batch in cameras:
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"camera images must be (B, H, W, 3) uint8; got {batch.dtype} {batch.shape}")
        per_camera.append(torch.stack([torch.cat([_backbone_pixels(img, n) for n in normalization]) for img in batch]))
    return torch.cat(per_camera, dim=1)
