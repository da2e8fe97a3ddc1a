"""The fused vision backbone: DINOv2 and SigLIP featurize the same image, their patch features are concatenated.

Input layout (what the official processor produces and `images.py` reproduces): per image 6 channels, the first 3
normalized for the `featurizer` (DINOv2), the next 3 for the `fused_featurizer` (SigLIP); several images (third-person,
wrist) are stacked on the channel axis in that order. Output: (B, num_images * num_patches, D_dino + D_siglip), DINOv2
features first on the feature axis, images in input order on the patch axis (official `PrismaticVisionBackbone`).
"""

from __future__ import annotations

import torch
from torch import nn

from ript_fast.policies.openvla_oft.vit import VisionTransformer, ViTArchitecture


class FusedVisionBackbone(nn.Module):
    def __init__(self, architectures: tuple[ViTArchitecture, ViTArchitecture], image_sizes: tuple[int, int]) -> None:
        super().__init__()
        self.featurizer = VisionTransformer(architectures[0], image_sizes[0])
        self.fused_featurizer = VisionTransformer(architectures[1], image_sizes[1])
        if self.featurizer.num_patches != self.fused_featurizer.num_patches:
            raise ValueError("the two featurizers must see the same patch grid to be concatenated per patch")
        self.embed_dim = self.featurizer.embed_dim + self.fused_featurizer.embed_dim
        self.num_patches = self.featurizer.num_patches

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 6 * num_images, H, W) -> (B, num_images * num_patches, embed_dim)."""
        if pixel_values.shape[1] % 6:
            raise ValueError(f"pixel_values has {pixel_values.shape[1]} channels; expected 6 per image")
        per_image = []
        for image in pixel_values.split(6, dim=1):
            dino, siglip = image.split(3, dim=1)
            per_image.append(torch.cat([self.featurizer(dino), self.fused_featurizer(siglip)], dim=2))
        return torch.cat(per_image, dim=1)
