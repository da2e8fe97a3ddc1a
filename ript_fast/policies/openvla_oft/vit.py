"""The two ViT featurizers of OpenVLA-OFT (DINOv2 ViT-L/14 + 4 registers, SigLIP So400m/14), laid out as timm lays
them out, so the official checkpoint's `vision_backbone.featurizer.*` / `fused_featurizer.*` keys load by name.

Why not `timm.create_model` as the official code does: every timm release imports torchvision, and PyPI's torchvision
wheels are CUDA builds that fail to import beside the CPU torch this project installs (its C ops do not register), so
depending on timm would break `pip install .` on CPU machines. The module below reproduces timm 0.9.10's
`VisionTransformer` term for term (pre-norm blocks, fused QKV, exact-erf GELU, LayerNorm eps 1e-6, LayerScale,
class/register tokens prepended after the position embedding when `no_embed_class`); `scripts/openvla_oft_equality.py`
checks it against timm 0.9.10 itself.

The official code reads the output of block `depth - 2` (the second-to-last block), without the final norm and
without the prefix (class/register) tokens. The last block, the final `norm` and SigLIP's `attn_pool` are in the
checkpoint but never used: they are built (so keys match one to one) and never run.
LayerScale's parameter is `scale_factor`, not timm's `gamma` (the official export renamed it: transformers rewrites
keys that contain "gamma").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_EPS = 1e-6


@dataclass(frozen=True)
class ViTArchitecture:
    """What a timm model id fixes about a ViT (weights do not say how many heads it has)."""

    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden_dim: int
    class_token: bool = True
    reg_tokens: int = 0
    no_embed_class: bool = False
    layer_scale: bool = False
    attention_pool: bool = False  # timm's global_pool="map": an (unused here) attention-pooling head


# The timm ids the official configs name (configuration_prismatic.VISION_BACKBONE_TO_TIMM_ID), by base name: the
# part after "." is a pretrained tag and does not change the architecture.
_DINOV2_L = ViTArchitecture(
    patch_size=14,
    embed_dim=1024,
    depth=24,
    num_heads=16,
    mlp_hidden_dim=4096,
    reg_tokens=4,
    no_embed_class=True,
    layer_scale=True,
)
_SIGLIP_SO400M = ViTArchitecture(
    patch_size=14,
    embed_dim=1152,
    depth=27,
    num_heads=16,
    mlp_hidden_dim=int(1152 * 3.7362),
    class_token=False,
    attention_pool=True,
)
_ARCHITECTURES: dict[str, ViTArchitecture] = {
    "vit_large_patch14_reg4_dinov2": _DINOV2_L,
    "vit_so400m_patch14_siglip_224": _SIGLIP_SO400M,
    # Smoke-test sizes of the two (`random_folder.py`): the same blocks, a few thousand parameters each.
    "ript_fast_tiny_dinov2_reg4": replace(_DINOV2_L, embed_dim=16, depth=3, num_heads=2, mlp_hidden_dim=32),
    "ript_fast_tiny_siglip": replace(_SIGLIP_SO400M, embed_dim=12, depth=2, num_heads=2, mlp_hidden_dim=44),
}


def register_vit_architecture(timm_id: str, architecture: ViTArchitecture) -> None:
    """Makes `timm_id` (as a config.json's `timm_model_ids` names it) buildable; for small test models."""
    _ARCHITECTURES[timm_id.split(".")[0]] = architecture


def vit_architecture(timm_id: str) -> ViTArchitecture | None:
    """The architecture of a timm id, or None when it is not one this module knows."""
    return _ARCHITECTURES.get(timm_id.split(".")[0])


class PatchEmbed(nn.Module):
    """Non-overlapping patches by a strided convolution, flattened to (B, num_patches, D) row-major."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention with one fused QKV projection (timm's layout: q, k, v stacked on the output dim)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class LayerScale(nn.Module):
    """Per-channel scale; the parameter is named `scale_factor` as in the official checkpoints."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale_factor = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_factor


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x))."""

    def __init__(self, arch: ViTArchitecture) -> None:
        super().__init__()
        d = arch.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.attn = Attention(d, arch.num_heads)
        self.ls1 = LayerScale(d) if arch.layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(d, arch.mlp_hidden_dim)
        self.ls2 = LayerScale(d) if arch.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class AttentionPoolLatent(nn.Module):
    """Parameters of timm's "map" pooling head (SigLIP). Present in the checkpoint, never run by OpenVLA-OFT."""

    def __init__(self, arch: ViTArchitecture) -> None:
        super().__init__()
        d = arch.embed_dim
        self.latent = nn.Parameter(torch.zeros(1, 1, d))
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.proj = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(d, arch.mlp_hidden_dim)


class VisionTransformer(nn.Module):
    """A timm-layout ViT whose forward returns the patch tokens after block `depth - 2` (the official feature)."""

    def __init__(self, arch: ViTArchitecture, img_size: int) -> None:
        super().__init__()
        if img_size % arch.patch_size:
            raise ValueError(f"image size {img_size} is not a multiple of the patch size {arch.patch_size}")
        self.arch = arch
        self.embed_dim = arch.embed_dim
        self.num_patches = (img_size // arch.patch_size) ** 2
        self.num_prefix_tokens = int(arch.class_token) + arch.reg_tokens
        self.patch_embed = PatchEmbed(arch.patch_size, arch.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, arch.embed_dim)) if arch.class_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, arch.reg_tokens, arch.embed_dim)) if arch.reg_tokens else None
        embed_len = self.num_patches + (0 if arch.no_embed_class else self.num_prefix_tokens)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_len, arch.embed_dim))
        self.blocks = nn.Sequential(*[Block(arch) for _ in range(arch.depth)])
        self.norm = nn.LayerNorm(arch.embed_dim, eps=LAYER_NORM_EPS)
        self.attn_pool = AttentionPoolLatent(arch) if arch.attention_pool else None

    def _tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patch embeddings plus position embedding, prefix tokens first (timm's `_pos_embed`)."""
        x = self.patch_embed(pixels)
        prefix = [t.expand(x.shape[0], -1, -1) for t in (self.cls_token, self.reg_token) if t is not None]
        if self.arch.no_embed_class:
            return torch.cat([*prefix, x + self.pos_embed], dim=1)
        return torch.cat([*prefix, x], dim=1) + self.pos_embed

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalized pixels -> (B, num_patches, D): the output of the second-to-last block."""
        x = self._tokens(pixels)
        for block in self.blocks[: len(self.blocks) - 1]:
            x = block(x)
        return x[:, self.num_prefix_tokens :]
