"""What an OpenVLA (-OFT) checkpoint's `config.json` fixes about the model, read without running the folder's code.

The official `config.json` is an `OpenVLAConfig` (model_type "openvla") written by transformers 4.40.1: the timm ids
and image sizes of the two ViTs, and the Llama `text_config`. The official model builds its LM from
`LlamaConfig(**text_config)` under transformers 4.40.1, so a key absent from text_config takes 4.40.1's default;
`LLAMA_DEFAULTS` holds those, and the LM is built from explicit values only, whatever transformers is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ript_fast.policies.openvla_oft.errors import FolderError
from ript_fast.policies.openvla_oft.vit import ViTArchitecture, vit_architecture

# transformers 4.40.1 `LlamaConfig()` defaults for the keys that shape the computation.
LLAMA_DEFAULTS: dict[str, Any] = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": None,  # None: as many as attention heads
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "attention_bias": False,
    "tie_word_embeddings": False,
    "pad_token_id": None,
}


@dataclass(frozen=True)
class PrismaticConfig:
    """The Prismatic backbone every OpenVLA checkpoint shares (fused ViTs, projector, Llama), from config.json."""

    vision_architectures: tuple[ViTArchitecture, ViTArchitecture]
    image_sizes: tuple[int, int]
    llama: dict[str, Any]
    timm_model_ids: tuple[str, str] = field(default=("", ""))

    @property
    def llm_dim(self) -> int:
        return int(self.llama["hidden_size"])

    @property
    def vocab_size(self) -> int:
        return int(self.llama["vocab_size"])


@dataclass(frozen=True)
class OpenVLAOFTConfig(PrismaticConfig):
    """The backbone plus the OFT settings that config.json does not hold."""

    num_images: int = 2
    action_dim: int = 7
    proprio_dim: int | None = 8  # None: no proprio token (a checkpoint without a proprio projector)
    chunk_len: int = 8  # NUM_ACTIONS_CHUNK for LIBERO; the head works per chunk step, so weights do not say it


def _get(cfg: dict[str, Any], key: str, path: Path, kind: type | tuple[type, ...]) -> Any:
    if key not in cfg:
        raise FolderError(path, key, "is missing")
    if not isinstance(cfg[key], kind):
        raise FolderError(path, key, f"is {cfg[key]!r}; expected {getattr(kind, '__name__', kind)}")
    return cfg[key]


def _llama_settings(text_config: dict[str, Any], path: Path) -> dict[str, Any]:
    """text_config -> explicit LlamaConfig arguments, refusing what this implementation does not compute."""
    key = "text_config"
    model_type = text_config.get("model_type", "llama")
    if model_type != "llama":
        raise FolderError(path, f"{key}.model_type", f"is {model_type!r}; only Llama LMs are supported")
    if text_config.get("rope_scaling") is not None:
        raise FolderError(path, f"{key}.rope_scaling", "is set; only plain RoPE is supported")
    if text_config.get("pretraining_tp", 1) != 1:
        raise FolderError(path, f"{key}.pretraining_tp", "must be 1")
    if text_config.get("mlp_bias", False):
        raise FolderError(path, f"{key}.mlp_bias", "must be false (Llama-2 has no MLP bias)")
    settings = {k: text_config.get(k, default) for k, default in LLAMA_DEFAULTS.items()}
    if settings["num_key_value_heads"] is None:
        settings["num_key_value_heads"] = settings["num_attention_heads"]
    for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
        if not isinstance(settings[k], int) or settings[k] <= 0:
            raise FolderError(path, f"{key}.{k}", f"is {settings[k]!r}; expected a positive integer")
    if settings["hidden_size"] % settings["num_attention_heads"]:
        raise FolderError(path, f"{key}.num_attention_heads", "does not divide hidden_size")
    if settings["hidden_act"] != "silu":
        raise FolderError(path, f"{key}.hidden_act", f"is {settings['hidden_act']!r}; expected 'silu'")
    return settings


def read_backbone_config(cfg: dict[str, Any], path: Path) -> PrismaticConfig:
    """The backbone part of a loaded config.json (`path` names it in errors); refuses what is not computed here."""
    model_type = cfg.get("model_type")
    if model_type != "openvla":
        raise FolderError(path, "model_type", f"is {model_type!r}; not an OpenVLA checkpoint (expected 'openvla')")
    if _get(cfg, "use_fused_vision_backbone", path, bool) is not True:
        raise FolderError(path, "use_fused_vision_backbone", "is false; only the fused DINOv2 + SigLIP backbone is")
    ids = _get(cfg, "timm_model_ids", path, list)
    sizes = _get(cfg, "image_sizes", path, list)
    if len(ids) != 2 or not all(isinstance(i, str) for i in ids):
        raise FolderError(path, "timm_model_ids", f"is {ids!r}; expected two timm ids (DINOv2, SigLIP)")
    if len(sizes) != 2 or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise FolderError(path, "image_sizes", f"is {sizes!r}; expected two positive integers")
    overrides = cfg.get("timm_override_act_layers", [None, None])
    if overrides not in ([None, None], None):
        raise FolderError(path, "timm_override_act_layers", f"is {overrides!r}; only [null, null] is supported")
    architectures = []
    for timm_id in ids:
        arch = vit_architecture(timm_id)
        if arch is None:
            raise FolderError(path, "timm_model_ids", f"names {timm_id!r}, a ViT this implementation does not know")
        architectures.append(arch)
    text_config = _get(cfg, "text_config", path, dict)
    return PrismaticConfig(
        vision_architectures=(architectures[0], architectures[1]),
        image_sizes=(sizes[0], sizes[1]),
        llama=_llama_settings(text_config, path),
        timm_model_ids=(ids[0], ids[1]),
    )


def read_model_config(cfg: dict[str, Any], path: Path, **oft_settings: Any) -> OpenVLAOFTConfig:
    """Parses a loaded config.json (`path` names it in errors); `oft_settings` fill the OFT-only fields."""
    backbone = read_backbone_config(cfg, path)
    return OpenVLAOFTConfig(**{f.name: getattr(backbone, f.name) for f in fields(PrismaticConfig)}, **oft_settings)
