"""Image trunks: a small CNN for CPU runs, and QueST's ResNet18 trunk (written here, no torchvision).

Both end in a spatial-softmax keypoint layer and a Linear to `out_dim`, as QueST's `ResnetEncoder` with its
`SpatialProjection` does: keypoint coordinates keep *where* things are, which a global average pool loses.
The ResNet18 trunk keeps the stem, layer1 and layer2 (QueST removes the last 4 children of torchvision's
resnet18: layer3, layer4, avgpool, fc), randomly initialized.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

ImageTrunk = Literal["small_cnn", "resnet18"]


def to_float_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, 3, size, size) float in [0, 1], bilinearly resized when H or W differ."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


class SpatialSoftmax(nn.Module):
    """(n, C, H, W) features -> (n, 2K) expected (x, y) of K learned keypoint maps in [-1, 1]."""

    def __init__(self, channels: int, height: int, width: int, num_keypoints: int) -> None:
        super().__init__()
        self.keypoints = nn.Conv2d(channels, num_keypoints, kernel_size=1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        maps = self.keypoints(features).flatten(2)  # (n, K, H*W)
        attention = torch.softmax(maps, dim=-1)
        return (attention @ self.grid).flatten(1)  # (n, K*2)


class _BasicBlock(nn.Module):
    """ResNet's two 3x3 convs with batch norm and an identity (or 1x1 strided) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def _resnet18_trunk() -> nn.Sequential:
    """Stem + layer1 + layer2 of ResNet18: stride 8, 128 channels."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
        _BasicBlock(64, 64, 1),
        _BasicBlock(64, 64, 1),
        _BasicBlock(64, 128, 2),
        _BasicBlock(128, 128, 1),
    )


def _small_cnn() -> nn.Sequential:
    """Three strided convs (stride 8, 64 channels): enough for a 64-128 px MetaWorld view on a CPU."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, 2, 2),
        nn.GroupNorm(8, 32),
        nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, 3, 2, 1),
        nn.GroupNorm(8, 64),
        nn.ReLU(inplace=True),
        nn.Conv2d(64, 64, 3, 2, 1),
        nn.ReLU(inplace=True),
    )


class ImageEncoder(nn.Module):
    """(n, H, W, 3) uint8 -> (n, out_dim): trunk, spatial-softmax keypoints (out_dim / 2 of them), Linear."""

    def __init__(self, trunk: ImageTrunk, image_size: int, out_dim: int) -> None:
        super().__init__()
        self.image_size = image_size
        self.trunk = _resnet18_trunk() if trunk == "resnet18" else _small_cnn()
        with torch.no_grad():
            c, h, w = self.trunk(torch.zeros(1, 3, image_size, image_size)).shape[1:]
        self.keypoints = SpatialSoftmax(c, h, w, max(out_dim // 2, 1))
        self.proj = nn.Linear(2 * max(out_dim // 2, 1), out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = to_float_images(images.to(self.proj.weight.device), self.image_size)
        return self.proj(self.keypoints(self.trunk(x)))
