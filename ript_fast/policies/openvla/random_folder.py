"""Writes an OpenVLA checkpoint folder with random weights in the official layout, at a tiny or the full size.

Why: openvla/openvla-7b is 15 GB from the hub; tests and smoke runs (`ript-fast train` / `eval` on LIBERO) need a
folder that loads exactly as a downloaded one does: 3 safetensors shards + index, config.json as the official
OpenVLAConfig writes it (`n_action_bins`, `pad_to_multiple_of`, `norm_stats`), tokenizer and preprocessor files, and,
as the LIBERO fine-tunes have it, `dataset_statistics.json` under the suite's plain name. Random weights never solve a
task.

    python -m ript_fast.policies.openvla.random_folder runs/tiny-openvla              # a few MB, CPU smoke runs
    python -m ript_fast.policies.openvla.random_folder /data/openvla-7b-random --size full --dtype bfloat16

The backbone sizes and the word-level tokenizer are OpenVLA-OFT's (`openvla_oft/random_folder.py`): the same tiny
ViTs and 2-layer Llama with the real 32064-row vocabulary, or the released 7B architecture.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ript_fast.policies.openvla.loader import read_action_bins
from ript_fast.policies.openvla.model import OpenVLA, OpenVLAConfig
from ript_fast.policies.openvla_oft.config import read_backbone_config
from ript_fast.policies.openvla_oft.random_folder import (
    FolderSize,
    config_json,
    folder_arguments,
    new_folder,
    write_processor_files,
    write_shards,
)

STATS_KEY = "libero_goal"  # the vanilla LIBERO fine-tunes store the suite's plain name
BASE_DATASET = "bridge_orig"  # one of openvla-7b's pretraining datasets in its config.json norm_stats
SHARDS = 3  # openvla-7b's count


def action_statistics(action_dim: int = 7) -> dict:
    """One dataset's action bounds, LIBERO-like: the gripper (last) dimension is not normalized."""
    return {
        "action": {
            "q01": [-0.5 - 0.1 * i for i in range(action_dim)],
            "q99": [0.5 + 0.2 * i for i in range(action_dim)],
            "mask": [True] * (action_dim - 1) + [False],
        }
    }


def openvla_config_json(size: FolderSize) -> dict:
    """config.json as the official OpenVLAConfig writes it for openvla-7b: OFT's keys plus the action tokens and the
    base model's norm_stats."""
    return {**config_json(size), "n_action_bins": 256, "norm_stats": {BASE_DATASET: action_statistics()}}


def model_config(size: FolderSize) -> OpenVLAConfig:
    """What the loader reads from the config.json of `size`."""
    raw = openvla_config_json(size)
    backbone = read_backbone_config(raw, Path("config.json"))
    return OpenVLAConfig(**vars(backbone), bins=read_action_bins(raw, backbone, Path("config.json")))


def random_model(size: FolderSize, seed: int, dtype: torch.dtype) -> OpenVLA:
    """The model with its default initialization plus N(0, 0.05) noise (so no weight is a constant), in `dtype`."""
    torch.manual_seed(seed)
    model = OpenVLA(model_config(size))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.to(dtype)


def write_random_openvla_folder(
    folder: str | Path,
    size: str = "tiny",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    fine_tune_statistics: bool = True,
) -> Path:
    """A random-weight OpenVLA folder of `size` ("tiny" | "full") at `folder` (created; must not hold files).

    fine_tune_statistics: write dataset_statistics.json under `STATS_KEY` (a LIBERO fine-tune); False: the base
    model's layout, whose only statistics are config.json's norm_stats."""
    folder, spec = new_folder(folder, size)
    write_shards(folder, random_model(spec, seed, dtype).vlm, SHARDS)
    (folder / "config.json").write_text(json.dumps(openvla_config_json(spec)))
    if fine_tune_statistics:
        (folder / "dataset_statistics.json").write_text(json.dumps({STATS_KEY: action_statistics()}))
    write_processor_files(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = folder_arguments(__doc__)
    parser.add_argument("--base", action="store_true", help="the base model's layout: no dataset_statistics.json")
    args = parser.parse_args(argv)
    try:
        path = write_random_openvla_folder(
            args.folder, args.size, args.seed, getattr(torch, args.dtype), fine_tune_statistics=not args.base
        )
    except (FileExistsError, OSError) as err:
        parser.exit(2, f"error: {err}\n")
    print(f"wrote a random-weight OpenVLA folder ({args.size}, {args.dtype}) to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
