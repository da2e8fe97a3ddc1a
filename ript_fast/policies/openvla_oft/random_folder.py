"""Writes an OpenVLA-OFT checkpoint folder with random weights, in the official layout, at a tiny or the full size.

Why: a real checkpoint is 15 GB from the hub; smoke runs of the whole pipeline (`ript-fast sft` / `train` / `eval`
on LIBERO) and memory or speed checks of the full-size model on a GPU need a folder that loads exactly as a
downloaded one does (sharded safetensors + index, config.json as the official OpenVLAConfig writes it, DDP-prefixed
`.pt` heads, tokenizer, preprocessor and statistics files), without the download. The weights are random: such a
folder never solves a task.

    python -m ript_fast.policies.openvla_oft.random_folder runs/tiny-oft                # a few MB, CPU smoke runs
    python -m ript_fast.policies.openvla_oft.random_folder /data/oft-7b-random --size full --dtype bfloat16

The tiny size uses two small ViTs registered under `ript_fast_tiny_*` timm ids (`vit.py`), a 2-layer Llama with the
real 32064-token vocabulary size, and a word-level tokenizer over LIBERO's instruction words (any other word is
`<unk>`). The full size is the released OFT-7B architecture (DINOv2-L + SigLIP-so400m, Llama-2-7B).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from ript_fast.policies.openvla_oft.config import read_model_config
from ript_fast.policies.openvla_oft.model import OpenVLAOFT

STATS_KEY = "libero_goal_no_noops"  # the name the released LIBERO-goal folder stores
SHARDS = 2
PROMPT_WORDS = ["in", "what", "action", "should", "the", "robot", "take", "to", "out"]
# Common words of LIBERO's instructions (any other word maps to <unk>), split where the tokenizer is written.
LIBERO_WORDS = (
    "put the bowl on plate open drawer and it top middle bottom of cabinet push turn stove pick up place "
    "wine bottle rack cream cheese black alphabet soup basket tomato sauce ketchup butter milk orange "
    "juice chocolate pudding bbq salad dressing between next to cookie box ramekin center wooden tray "
    "flat into both pot moka pots close microwave mug left right white yellow red green book back "
    "compartment caddy front frying pan shelf"
)
DINO_NORM = {"mean": [0.484375, 0.455078125, 0.40625], "std": [0.228515625, 0.2236328125, 0.224609375]}
SIGLIP_NORM = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


@dataclass(frozen=True)
class FolderSize:
    """The architecture entries of config.json for one size."""

    timm_model_ids: tuple[str, str]
    image_size: int
    text_config: dict


TINY = FolderSize(
    timm_model_ids=("ript_fast_tiny_dinov2_reg4", "ript_fast_tiny_siglip"),
    image_size=28,  # 2 x 2 patches of 14 px
    text_config={
        "model_type": "llama",
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "vocab_size": 32064,
        "pad_token_id": 32000,
    },
)
FULL = FolderSize(
    timm_model_ids=("vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"),
    image_size=224,
    text_config={
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "vocab_size": 32064,
        "pad_token_id": 32000,
        "torch_dtype": "bfloat16",
    },
)
SIZES = {"tiny": TINY, "full": FULL}


def config_json(size: FolderSize) -> dict:
    """config.json as the official OpenVLAConfig writes it (the keys the loader reads, plus some it ignores)."""
    return {
        "model_type": "openvla",
        "architectures": ["OpenVLAForActionPrediction"],
        "vision_backbone_id": "dinosiglip-vit-so-224px",
        "llm_backbone_id": "llama2-7b-pure",
        "use_fused_vision_backbone": True,
        "timm_model_ids": list(size.timm_model_ids),
        "timm_override_act_layers": [None, None],
        "image_sizes": [size.image_size, size.image_size],
        "image_resize_strategy": "resize-naive",
        "pad_token_id": 32000,
        "pad_to_multiple_of": 64,
        "text_config": size.text_config,
        "auto_map": {"AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction"},
    }


def statistics_json(action_dim: int = 7, proprio_dim: int = 8) -> dict:
    """dataset_statistics.json with LIBERO-like bounds: the gripper (last) dimension is not normalized."""
    return {
        STATS_KEY: {
            "action": {
                "q01": [-1.0] * action_dim,
                "q99": [float(i + 1) for i in range(action_dim)],
                "mask": [True] * (action_dim - 1) + [False],
            },
            "proprio": {"q01": [-0.5] * proprio_dim, "q99": [0.5] * proprio_dim},
        }
    }


def write_tokenizer(folder: Path, words: list[str]) -> None:
    """A word-level `tokenizer.json` with Llama's special ids (<unk> 0, <s> 1, </s> 2) and its tokenizer_config."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for word in [*words, ":", "?"]:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    settings = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True}
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))


def random_model(size: FolderSize, seed: int, dtype: torch.dtype) -> OpenVLAOFT:
    """The model with its default initialization plus N(0, 0.05) noise (so no weight is a constant), in `dtype`."""
    cfg = read_model_config(config_json(size), Path("config.json"))
    torch.manual_seed(seed)
    model = OpenVLAOFT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.to(dtype)


def write_shards(folder: Path, vlm: nn.Module, count: int) -> None:
    """The VLM's tensors into `count` safetensors shards + their index, named as `save_pretrained` names them."""
    state = {k: v.contiguous() for k, v in vlm.state_dict().items()}
    keys = sorted(state)
    names = [f"model-{i + 1:05d}-of-{count:05d}.safetensors" for i in range(count)]
    shards = {name: keys[i::count] for i, name in enumerate(names)}
    for name, shard_keys in shards.items():
        save_file({k: state[k] for k in shard_keys}, str(folder / name), metadata={"format": "pt"})
    total = sum(v.numel() * v.element_size() for v in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": {k: n for n, ks in shards.items() for k in ks}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def write_processor_files(folder: Path) -> None:
    """preprocessor_config.json (the released bf16-rounded DINOv2 mean/std) and the word-level tokenizer."""
    preprocessor = {"image_resize_strategy": "resize-naive", "tvf_normalize_params": [DINO_NORM, SIGLIP_NORM]}
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    write_tokenizer(folder, PROMPT_WORDS + LIBERO_WORDS.split())


def new_folder(folder: str | Path, size: str) -> tuple[Path, FolderSize]:
    """`folder`, created, and the architecture of `size`; refused when the folder already holds files (a random
    folder never overwrites anything) or the size is unknown."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty; choose a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder, SIZES[size]


def folder_arguments(doc: str) -> argparse.ArgumentParser:
    """The command line of a random-folder writer: the folder, its size, seed and dtype."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("folder", help="where to write it (a new or empty folder)")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    return parser


def write_weights(folder: Path, model: OpenVLAOFT) -> None:
    """The VLM into `SHARDS` safetensors shards + their index; the heads as DDP-prefixed `.pt` state dicts."""
    write_shards(folder, model.vlm, SHARDS)
    for name, module in (("action_head", model.action_head), ("proprio_projector", model.proprio_projector)):
        assert module is not None
        state = {f"module.{k}": v for k, v in module.state_dict().items()}
        torch.save(state, folder / f"{name}--50000_checkpoint.pt")


def write_random_folder(
    folder: str | Path, size: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float32
) -> Path:
    """A random-weight checkpoint folder of `size` ("tiny" | "full") at `folder` (created; must not hold files)."""
    folder, spec = new_folder(folder, size)
    write_weights(folder, random_model(spec, seed, dtype))
    (folder / "config.json").write_text(json.dumps(config_json(spec)))
    (folder / "dataset_statistics.json").write_text(json.dumps(statistics_json()))
    write_processor_files(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = folder_arguments(__doc__)
    args = parser.parse_args(argv)
    try:
        path = write_random_folder(args.folder, args.size, args.seed, getattr(torch, args.dtype))
    except (FileExistsError, OSError) as err:
        parser.exit(2, f"error: {err}\n")
    print(f"wrote a random-weight OpenVLA-OFT folder ({args.size}, {args.dtype}) to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
