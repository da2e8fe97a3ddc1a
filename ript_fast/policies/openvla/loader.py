"""Loads an official OpenVLA checkpoint folder as downloaded, running nothing from it.

The folder (openvla/openvla-7b, and the LIBERO fine-tunes openvla/openvla-7b-finetuned-libero-*):
- `config.json`: the architecture (`openvla_oft/config.py` reads the backbone), `n_action_bins` (256),
  `pad_to_multiple_of` (64: the LM's 32064 rows less the padding are the 32000-token vocabulary the action tokens end)
  and `norm_stats` (the base model's statistics of every pretraining dataset);
- `model.safetensors.index.json` + `model-*.safetensors` (3 shards for openvla-7b, 4 for the fine-tunes): vision
  backbone, projector and Llama LM, the same keys as OpenVLA-OFT's;
- `dataset_statistics.json` (the fine-tunes): the statistics the official evaluation un-normalizes with, in place of
  config.json's `norm_stats`, under the suite's name (`libero_object`; `<name>_no_noops` is looked up too);
- `preprocessor_config.json`, `tokenizer.json` (+ `tokenizer_config.json`).
The folder's `*.py` files are never imported; nothing is fetched. The safetensors headers are checked against the
model (every key with its shape, nothing missing or extra) before any weight is read, and every refusal is one
`FolderError` naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ript_fast.policies.openvla.action_tokens import ActionBins
from ript_fast.policies.openvla.model import OpenVLA, OpenVLAConfig
from ript_fast.policies.openvla_oft.config import PrismaticConfig, read_backbone_config
from ript_fast.policies.openvla_oft.errors import FolderError, read_json
from ript_fast.policies.openvla_oft.images import PREPROCESSOR_FILE, BackboneNormalization, read_image_normalization
from ript_fast.policies.openvla_oft.loader import (
    CONFIG_FILE,
    STATISTICS_FILE,
    check_weight_listing,
    load_vlm_weights,
    read_folder_config,
)
from ript_fast.policies.openvla_oft.normalization import DatasetStatistics, read_statistics
from ript_fast.policies.openvla_oft.tokenizer import PromptTokenizer


@dataclass
class OpenVLACheckpoint:
    """A loaded folder: the model and what turns observations into its inputs and its tokens into actions."""

    model: OpenVLA
    tokenizer: PromptTokenizer
    statistics: DatasetStatistics
    image_normalization: tuple[BackboneNormalization, BackboneNormalization]
    folder: Path


@dataclass
class OpenVLAFolder:
    """Everything of a folder but the weights (what `check_openvla_folder` reads: seconds, even for 7B)."""

    cfg: OpenVLAConfig
    tokenizer: PromptTokenizer
    statistics: DatasetStatistics
    image_normalization: tuple[BackboneNormalization, BackboneNormalization]


def _positive_int(cfg: dict[str, Any], key: str, default: int, path: Path) -> int:
    value = cfg.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise FolderError(path, key, f"is {value!r}; expected a positive integer")
    return value


def read_action_bins(cfg: dict[str, Any], backbone: PrismaticConfig, path: Path) -> ActionBins:
    """config.json's action tokens: `n_action_bins` at the end of the unpadded vocabulary (official defaults 256/64)."""
    n_bins = _positive_int(cfg, "n_action_bins", 256, path)
    pad = _positive_int(cfg, "pad_to_multiple_of", 64, path)
    vocab = backbone.vocab_size - pad
    if n_bins < 2 or n_bins > vocab:
        raise FolderError(path, "n_action_bins", f"is {n_bins}; the {vocab}-token vocabulary cannot end with them")
    return ActionBins(vocab_size=vocab, n_bins=n_bins)


def read_openvla_statistics(folder: Path, raw_config: dict[str, Any], unnorm_key: str | None) -> DatasetStatistics:
    """dataset_statistics.json when the folder has it (the official evaluation's choice), else config.json's
    norm_stats (the base model's); the dataset named by `unnorm_key` (or `<key>_no_noops`)."""
    stats_path = folder / STATISTICS_FILE
    if stats_path.is_file():
        return read_statistics(read_json(stats_path), unnorm_key, stats_path, need_proprio=False)
    config_path = folder / CONFIG_FILE
    norm_stats = raw_config.get("norm_stats")
    if not isinstance(norm_stats, dict) or not norm_stats:
        raise FolderError(config_path, "norm_stats", f"is missing and the folder has no {STATISTICS_FILE}")
    return read_statistics(norm_stats, unnorm_key, config_path, need_proprio=False)


def read_openvla_folder(folder: str | Path, *, unnorm_key: str | None = None) -> OpenVLAFolder:
    """Reads and cross-checks config, statistics, tokenizer and preprocessor (see the module docstring)."""
    folder, raw_config = read_folder_config(folder)
    config_path = folder / CONFIG_FILE
    backbone = read_backbone_config(raw_config, config_path)
    bins = read_action_bins(raw_config, backbone, config_path)
    statistics = read_openvla_statistics(folder, raw_config, unnorm_key)
    base = {f.name: getattr(backbone, f.name) for f in fields(PrismaticConfig)}
    cfg = OpenVLAConfig(**base, bins=bins, action_dim=statistics.action.dim)
    tokenizer = PromptTokenizer(folder, cfg.vocab_size)
    preprocessor_path = folder / PREPROCESSOR_FILE
    normalization = read_image_normalization(read_json(preprocessor_path), preprocessor_path, cfg.image_sizes)
    return OpenVLAFolder(cfg, tokenizer, statistics, normalization)


def check_openvla_folder(folder: str | Path, *, unnorm_key: str | None = None) -> OpenVLAConfig:
    """What `load_openvla` would refuse, found without reading a weight: for checks before a run starts."""
    found = read_openvla_folder(folder, unnorm_key=unnorm_key)
    with torch.device("meta"):
        model = OpenVLA(found.cfg)
    check_weight_listing(Path(folder), model.vlm)
    return found.cfg


def load_openvla(
    folder: str | Path,
    *,
    unnorm_key: str | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> OpenVLACheckpoint:
    """The folder's model in eval mode, in `dtype` on `device`, with its tokenizer, statistics and image settings.

    unnorm_key: the dataset whose action bounds un-normalize the tokens (LIBERO: the suite, e.g. `libero_object`;
    the base model: one of its pretraining datasets, e.g. `bridge_orig`); optional when the file has only one.
    """
    folder = Path(folder)
    found = read_openvla_folder(folder, unnorm_key=unnorm_key)
    with torch.device("meta"):
        model = OpenVLA(found.cfg)
    load_vlm_weights(folder, model.vlm)
    model = model.to(device=device, dtype=dtype).eval()
    return OpenVLACheckpoint(model, found.tokenizer, found.statistics, found.image_normalization, folder)
