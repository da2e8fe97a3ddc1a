"""Loads an official OpenVLA-OFT checkpoint folder as downloaded, running nothing from it.

The folder (what moojink/openvla-7b-oft-finetuned-libero-* hold):
- `config.json` (architecture), `model.safetensors.index.json` + `model-*.safetensors` (or one `model.safetensors`):
  vision backbone, projector and Llama LM;
- `action_head--<step>_checkpoint.pt`, `proprio_projector--<step>_checkpoint.pt`: state dicts saved from DDP-wrapped
  modules (keys behind `module.`), read with `torch.load(weights_only=True)`: tensors only, a pickle naming anything
  else is refused before any object of it is built;
- `dataset_statistics.json`, `preprocessor_config.json`, `tokenizer.json` (+ `tokenizer_config.json`).
The folder's `*.py` files are never imported (no `trust_remote_code`); nothing is fetched from a hub.

Everything is checked before the model is used: every key of every file must be one the model has, with its shape,
and every parameter of the model must come from a file. A mismatch is one `FolderError` (a CheckpointError) naming
the file and the key. The model is built on the meta device and takes the file's tensors directly, so a 7B
checkpoint is never initialized randomly first.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ript_fast.policies.openvla_oft.config import OpenVLAOFTConfig, read_model_config
from ript_fast.policies.openvla_oft.errors import FolderError, read_json
from ript_fast.policies.openvla_oft.images import PREPROCESSOR_FILE, BackboneNormalization, read_image_normalization
from ript_fast.policies.openvla_oft.model import OpenVLAOFT, PrismaticVLM
from ript_fast.policies.openvla_oft.normalization import DatasetStatistics, read_statistics
from ript_fast.policies.openvla_oft.scale_head import LaplaceScaleHead, load_scale_head_state, read_scale_head_file
from ript_fast.policies.openvla_oft.tokenizer import PromptTokenizer

CONFIG_FILE = "config.json"
STATISTICS_FILE = "dataset_statistics.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_WEIGHTS_FILE = "model.safetensors"
ACTION_HEAD = "action_head"
PROPRIO_PROJECTOR = "proprio_projector"
DDP_PREFIX = "module."


@dataclass
class OpenVLAOFTCheckpoint:
    """A loaded folder: the model and what turns observations into its inputs and its outputs into actions."""

    model: OpenVLAOFT
    tokenizer: PromptTokenizer
    statistics: DatasetStatistics
    image_normalization: tuple[BackboneNormalization, BackboneNormalization]
    folder: Path
    scale_head: LaplaceScaleHead | None = None  # RIPT's scale head: the given file's, or freshly initialized


def find_component_file(folder: Path, name: str) -> Path | None:
    """The one `<name>--*checkpoint.pt` of the folder (official `find_checkpoint_file`), None when there is none."""
    found = sorted(p for p in folder.iterdir() if name in p.name and "checkpoint" in p.name and p.suffix == ".pt")
    if len(found) > 1:
        raise FolderError(folder, name, f"matches several files {[p.name for p in found]}; keep one")
    return found[0] if found else None


def read_component(path: Path) -> dict[str, torch.Tensor]:
    """A `.pt` state dict, tensors only, with DDP's `module.` prefix removed."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise FolderError(path, "", "holds more than tensors (a pickle that could run code); refused") from None
    except (OSError, RuntimeError, EOFError) as err:
        raise FolderError(path, "", f"is not a readable torch file ({err})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FolderError(path, "", "is not a state dict (a mapping of names to tensors)")
    return {k.removeprefix(DDP_PREFIX): v for k, v in state.items()}


def _weights_listing(folder: Path) -> Path:
    """The file that says which tensors the model folder holds: the index, or the single weights file."""
    index = folder / INDEX_FILE
    return index if index.is_file() else folder / SINGLE_WEIGHTS_FILE


def _weight_files(folder: Path) -> dict[str, Path]:
    """Key -> shard file, from the index (or the single weights file)."""
    index_path = folder / INDEX_FILE
    if index_path.is_file():
        weight_map = read_json(index_path).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise FolderError(index_path, "weight_map", "is missing or empty")
        return {key: folder / str(name) for key, name in weight_map.items()}
    single = folder / SINGLE_WEIGHTS_FILE
    if not single.is_file():
        raise FolderError(folder, "", f"has neither {INDEX_FILE} nor {SINGLE_WEIGHTS_FILE}: not a model folder")
    with safe_open(str(single), framework="pt") as f:
        return {key: single for key in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)


def read_shards(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Path]]:
    """Every tensor of the safetensors shards, and the file each came from; the index must match the shards."""
    files = _weight_files(folder)
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(files.values())):
        expected = {k for k, f in files.items() if f == shard}
        if not shard.is_file():
            raise FolderError(shard, next(iter(sorted(expected))), "is listed in the index but the file is missing")
        try:
            with safe_open(str(shard), framework="pt") as f:
                present = set(f.keys())
                if present != expected:
                    key = sorted(present ^ expected)[0]
                    raise FolderError(shard, key, "is in the index or in the file but not in both")
                for key in present:
                    tensors[key] = f.get_tensor(key)
        except SafetensorError as err:
            raise FolderError(shard, "", f"is not a readable safetensors file ({err})") from None
    return tensors, files


def assign_state(
    module: nn.Module, state: dict[str, torch.Tensor], source: dict[str, Path], listing: Path, prefix: str
) -> None:
    """Loads `state` into `module` by name (strict, shapes checked) without copying.

    Errors name the file a wrong tensor came from, or `listing` (the file that should have listed it) for a missing one.
    """
    expected = module.state_dict()
    for key, tensor in state.items():
        if key not in expected:
            raise FolderError(source[key], f"{prefix}{key}", "is not a parameter of the model")
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise FolderError(
                source[key], f"{prefix}{key}", f"has shape {tuple(tensor.shape)}; expected {tuple(expected[key].shape)}"
            )
    missing = sorted(set(expected) - set(state))
    if missing:
        raise FolderError(listing, f"{prefix}{missing[0]}", f"is missing ({len(missing)} parameter(s) absent)")
    module.load_state_dict(state, strict=True, assign=True)


def load_vlm_weights(folder: Path, vlm: PrismaticVLM) -> None:
    """The shards' tensors into `vlm` (built on the meta device), by name: the safetensors headers are checked
    against the model first (keys and shapes, no weight read), then the tensors are read and assigned."""
    check_weight_listing(folder, vlm)
    shards, sources = read_shards(folder)
    assign_state(vlm, shards, sources, _weights_listing(folder), prefix="")
    lm = vlm.language_model  # its rotary frequencies are non-persistent buffers: in no file, still on meta
    with torch.device("cpu"):
        lm.model.rotary_emb = type(lm.model.rotary_emb)(config=lm.config)


def read_folder_config(folder: str | Path) -> tuple[Path, dict]:
    """The folder and its loaded config.json; a missing folder or file is a FolderError naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderError(folder, "", "is not a folder")
    return folder, read_json(folder / CONFIG_FILE)


@dataclass
class FolderContents:
    """Everything of a folder but the VLM weights: what `check_openvla_oft_folder` reads (seconds, even for 7B)."""

    cfg: OpenVLAOFTConfig
    tokenizer: PromptTokenizer
    statistics: DatasetStatistics
    image_normalization: tuple[BackboneNormalization, BackboneNormalization]
    head_path: Path
    head_state: dict[str, torch.Tensor]
    proprio_path: Path | None
    proprio_state: dict[str, torch.Tensor] | None


def read_folder(
    folder: str | Path, *, unnorm_key: str | None = None, num_images: int = 2, chunk_len: int = 8
) -> FolderContents:
    """Reads and cross-checks config, heads, statistics, tokenizer and preprocessor (see `load_openvla_oft`)."""
    folder, raw_config = read_folder_config(folder)
    config_path = folder / CONFIG_FILE
    head_path = find_component_file(folder, ACTION_HEAD)
    if head_path is None:
        raise FolderError(folder, f"{ACTION_HEAD}--*_checkpoint.pt", "is missing (the L1 action head)")
    proprio_path = find_component_file(folder, PROPRIO_PROJECTOR)
    head_state = read_component(head_path)
    proprio_state = read_component(proprio_path) if proprio_path else None
    action_dim = _out_features(head_state, "model.fc2.weight", head_path, 0)
    proprio_dim = _out_features(proprio_state, "fc1.weight", proprio_path, 1) if proprio_state else None

    stats_path = folder / STATISTICS_FILE
    statistics = read_statistics(read_json(stats_path), unnorm_key, stats_path, need_proprio=proprio_dim is not None)
    _check_dim(stats_path, f"{statistics.unnorm_key}.action.q01", statistics.action.dim, action_dim, head_path)
    if statistics.proprio is not None and proprio_path is not None:
        _check_dim(
            stats_path, f"{statistics.unnorm_key}.proprio.q01", statistics.proprio.dim, proprio_dim, proprio_path
        )

    cfg: OpenVLAOFTConfig = read_model_config(
        raw_config,
        config_path,
        num_images=num_images,
        action_dim=action_dim,
        proprio_dim=proprio_dim,
        chunk_len=chunk_len,
    )
    tokenizer = PromptTokenizer(folder, cfg.vocab_size)
    preprocessor_path = folder / PREPROCESSOR_FILE
    normalization = read_image_normalization(read_json(preprocessor_path), preprocessor_path, cfg.image_sizes)
    return FolderContents(cfg, tokenizer, statistics, normalization, head_path, head_state, proprio_path, proprio_state)


def check_weight_listing(folder: Path, vlm: nn.Module) -> None:
    """Every tensor of `vlm` is listed in the shards' headers with its shape, and nothing else is (only the
    safetensors headers are read)."""
    expected = {k: tuple(v.shape) for k, v in vlm.state_dict().items()}
    files = _weight_files(folder)
    for shard in sorted(set(files.values())):
        if not shard.is_file():
            raise FolderError(
                shard, next(k for k, f in files.items() if f == shard), "is listed but the file is missing"
            )
        try:
            with safe_open(str(shard), framework="pt") as f:
                shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118
        except SafetensorError as err:
            raise FolderError(shard, "", f"is not a readable safetensors file ({err})") from None
        for key, shape in shapes.items():
            if key not in expected:
                raise FolderError(shard, key, "is not a parameter of the model")
            if shape != expected[key]:
                raise FolderError(shard, key, f"has shape {shape}; expected {expected[key]}")
    missing = sorted(set(expected) - set(files))
    if missing:
        raise FolderError(_weights_listing(folder), missing[0], f"is missing ({len(missing)} parameter(s) absent)")


def assign_heads(model: OpenVLAOFT, found: FolderContents) -> None:
    """The action head's and proprio projector's `.pt` states into `model` (checked key by key, as the VLM's)."""
    head_sources = dict.fromkeys(found.head_state, found.head_path)
    assign_state(model.action_head, found.head_state, head_sources, found.head_path, DDP_PREFIX)
    if model.proprio_projector is not None and found.proprio_state is not None and found.proprio_path is not None:
        sources = dict.fromkeys(found.proprio_state, found.proprio_path)
        assign_state(model.proprio_projector, found.proprio_state, sources, found.proprio_path, DDP_PREFIX)


def check_openvla_oft_folder(
    folder: str | Path,
    *,
    unnorm_key: str | None = None,
    num_images: int = 2,
    chunk_len: int = 8,
    scale_head: str | Path | None = None,
) -> OpenVLAOFTConfig:
    """What `load_openvla_oft` would refuse, found without reading the weights: for checks before a run starts."""
    contents = read_folder(folder, unnorm_key=unnorm_key, num_images=num_images, chunk_len=chunk_len)
    with torch.device("meta"):
        model = OpenVLAOFT(contents.cfg)
    check_weight_listing(Path(folder), model.vlm)
    assign_heads(model, contents)
    if scale_head is not None:
        head = LaplaceScaleHead(contents.cfg.llm_dim, contents.cfg.action_dim)
        load_scale_head_state(head, read_scale_head_file(scale_head), scale_head)
    return contents.cfg


def load_openvla_oft(
    folder: str | Path,
    *,
    unnorm_key: str | None = None,
    num_images: int = 2,
    chunk_len: int = 8,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    scale_head: str | Path | None = None,
    with_scale_head: bool = True,
) -> OpenVLAOFTCheckpoint:
    """The folder's model in eval mode, in `dtype` on `device`, with its tokenizer, statistics and image settings.

    num_images and chunk_len are not stored in the folder (the official evaluation passes them: 2 cameras and 8 for
    LIBERO). unnorm_key is the dataset to un-normalize with (LIBERO: the suite, e.g. `libero_goal`).
    scale_head: RIPT's scale-head file (the released `*_scale_header.pth`, or one ript-fast trained; it may sit
    outside the folder); None with `with_scale_head` gives a freshly initialized one (to train by NLL first).
    """
    folder = Path(folder)
    found = read_folder(folder, unnorm_key=unnorm_key, num_images=num_images, chunk_len=chunk_len)
    with torch.device("meta"):
        model = OpenVLAOFT(found.cfg)
    load_vlm_weights(folder, model.vlm)
    assign_heads(model, found)
    model = model.to(device=device, dtype=dtype).eval()
    head = None
    if scale_head is not None or with_scale_head:
        head = LaplaceScaleHead(found.cfg.llm_dim, found.cfg.action_dim)
        if scale_head is not None:
            load_scale_head_state(head, read_scale_head_file(scale_head), scale_head)
        head = head.to(device=device, dtype=dtype).eval()
    return OpenVLAOFTCheckpoint(model, found.tokenizer, found.statistics, found.image_normalization, folder, head)


def _out_features(state: dict[str, torch.Tensor], key: str, path: Path | None, axis: int) -> int:
    if key not in state or state[key].ndim != 2:
        raise FolderError(path or "", f"{DDP_PREFIX}{key}", "is missing or not a matrix")
    return int(state[key].shape[axis])


def _check_dim(stats_path: Path, key: str, stats_dim: int, model_dim: int | None, weights: Path) -> None:
    if stats_dim != model_dim:
        raise FolderError(stats_path, key, f"has {stats_dim} dimensions; {weights.name} has {model_dim}")
