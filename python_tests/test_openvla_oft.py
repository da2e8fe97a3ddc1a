"""OpenVLA-OFT: loading an official-layout checkpoint folder, the forward pass, and the folder's refusals.

The folders are written here in the official layout (sharded safetensors + index, config.json as OpenVLAConfig writes
it, DDP-prefixed `.pt` heads, tokenizer, preprocessor and statistics files) at a tiny size; the official code itself
is compared in scripts/openvla_oft_equality.py, not here.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from python_tests.folder_damage import Refusal, assert_refused, damage_json, damage_shard, drop_tensor
from ript_fast.policies.openvla_oft import (
    OpenVLAOFT,
    OpenVLAOFTConfig,
    load_openvla_oft,
    normalize_proprio,
    pixel_values,
    tokenize_prompts,
    unnormalize_actions,
)
from ript_fast.policies.openvla_oft.config import read_model_config
from ript_fast.policies.openvla_oft.loader import check_openvla_oft_folder
from ript_fast.policies.openvla_oft.random_folder import STATS_KEY, TINY
from ript_fast.policies.openvla_oft.random_folder import config_json as size_config_json
from ript_fast.policies.openvla_oft.sequence import EMPTY_TOKEN_ID
from ript_fast.train.checkpoint import CheckpointError

TINY_IDS = TINY.timm_model_ids
IMAGE = TINY.image_size  # 2 x 2 patches of 14 px


def config_json() -> dict:
    return size_config_json(TINY)


@pytest.fixture(scope="module")
def folder(oft_folder: Path) -> Path:
    """The session's tiny random folder (conftest); tests that damage one work on a copy."""
    return oft_folder


@pytest.fixture
def copy(folder: Path, tmp_path: Path) -> Path:
    """A private copy of the folder, to damage."""
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def inputs(ckpt, instructions: list[str], seed: int = 0) -> tuple[torch.Tensor, ...]:
    rng = np.random.default_rng(seed)
    n = len(instructions)
    cams = [rng.integers(0, 256, (n, IMAGE, IMAGE, 3), dtype=np.uint8) for _ in range(2)]
    ids, mask = tokenize_prompts(ckpt.tokenizer.encode, instructions)
    proprio = torch.as_tensor(rng.uniform(-1, 1, (n, 8)), dtype=torch.float32)
    return pixel_values(cams, ckpt.image_normalization), ids, mask, proprio


# ------------------------------------------------------------------------------------------------ loading, forward


def test_loads_the_folder_and_predicts_a_chunk(folder: Path) -> None:
    ckpt = load_openvla_oft(folder, unnorm_key="libero_goal")
    assert ckpt.statistics.unnorm_key == STATS_KEY  # the `_no_noops` fallback of the official eval
    assert not ckpt.model.training
    px, ids, mask, proprio = inputs(ckpt, ["put the bowl on the plate", "open the drawer"])
    with torch.no_grad():
        first = ckpt.model(px, ids, mask, proprio)
        again = ckpt.model(px, ids, mask, proprio)
    assert first.shape == (2, 8, 7)
    assert torch.isfinite(first).all()
    assert torch.equal(first, again)
    assert not torch.allclose(first[0], first[1], atol=1e-4)


def test_the_loaded_weights_are_the_files(folder: Path) -> None:
    ckpt = load_openvla_oft(folder)
    shard = load_file(str(folder / "model-00001-of-00002.safetensors"))
    own = ckpt.model.vlm.state_dict()
    assert all(torch.equal(own[k], v) for k, v in shard.items())
    head = torch.load(folder / "action_head--50000_checkpoint.pt", weights_only=True)
    assert torch.equal(ckpt.model.action_head.model.fc2.weight, head["module.model.fc2.weight"])


def test_every_input_reaches_the_actions(folder: Path) -> None:
    """Images (each camera), instruction and proprio all change the chunk; so does the stop token that follows the
    action slots, which only a bidirectional (non-causal) attention lets them see."""
    ckpt = load_openvla_oft(folder)
    px, ids, mask, proprio = inputs(ckpt, ["put the bowl on the plate"])
    with torch.no_grad():
        base = ckpt.model(px, ids, mask, proprio)
        variants = {
            "third-person image": ckpt.model(torch.cat([px[:, :6] * 0.5, px[:, 6:]], 1), ids, mask, proprio),
            "wrist image": ckpt.model(torch.cat([px[:, :6], px[:, 6:] * 0.5], 1), ids, mask, proprio),
            "proprio": ckpt.model(px, ids, mask, -proprio),
            "instruction": ckpt.model(px, *tokenize_prompts(ckpt.tokenizer.encode, ["open it"]), proprio),
        }
        ckpt.model.vlm.language_model.get_input_embeddings().weight[2] += 1.0
        variants["stop-token embedding"] = ckpt.model(px, ids, mask, proprio)
    for name, out in variants.items():
        assert not torch.allclose(out, base, atol=1e-5), name


def test_a_prompt_without_the_empty_token_is_refused(folder: Path) -> None:
    ckpt = load_openvla_oft(folder)
    px, ids, mask, proprio = inputs(ckpt, ["open it"])
    with pytest.raises(ValueError, match="29871"):
        ckpt.model(px, ids[:, :-1], mask[:, :-1], proprio)


def test_a_padded_batch_equals_each_query_alone(folder: Path) -> None:
    ckpt = load_openvla_oft(folder)
    texts = ["put the bowl on the plate and open the drawer", "open it", "put the bowl"]
    px, ids, mask, proprio = inputs(ckpt, texts)
    assert (mask == 0).any()
    with torch.no_grad():
        batch = ckpt.model(px, ids, mask, proprio)
        for i, text in enumerate(texts):
            one_ids, one_mask = tokenize_prompts(ckpt.tokenizer.encode, [text])
            alone = ckpt.model(px[i : i + 1], one_ids, one_mask, proprio[i : i + 1])
            torch.testing.assert_close(batch[i : i + 1], alone, atol=1e-5, rtol=0)


def test_full_size_key_names_and_shapes_are_the_official_ones() -> None:
    """The 7B model (on the meta device: no memory) has the official checkpoint's names and shapes."""
    cfg = read_model_config(
        {**config_json(), "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
         "image_sizes": [224, 224], "text_config": {"vocab_size": 32064, "pad_token_id": 32000}},
        Path("config.json"),
    )  # fmt: skip
    with torch.device("meta"):
        model = OpenVLAOFT(cfg)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {
        "vlm.vision_backbone.featurizer.pos_embed": (1, 256, 1024),
        "vlm.vision_backbone.featurizer.reg_token": (1, 4, 1024),
        "vlm.vision_backbone.featurizer.cls_token": (1, 1, 1024),
        "vlm.vision_backbone.featurizer.blocks.23.ls2.scale_factor": (1024,),
        "vlm.vision_backbone.featurizer.patch_embed.proj.weight": (1024, 3, 14, 14),
        "vlm.vision_backbone.fused_featurizer.pos_embed": (1, 256, 1152),
        "vlm.vision_backbone.fused_featurizer.blocks.26.attn.qkv.weight": (3456, 1152),
        "vlm.vision_backbone.fused_featurizer.blocks.0.mlp.fc1.weight": (4304, 1152),
        "vlm.vision_backbone.fused_featurizer.attn_pool.latent": (1, 1, 1152),
        "vlm.vision_backbone.fused_featurizer.attn_pool.kv.weight": (2304, 1152),
        "vlm.projector.fc1.weight": (8704, 2176),
        "vlm.projector.fc3.weight": (4096, 4096),
        "vlm.language_model.model.embed_tokens.weight": (32064, 4096),
        "vlm.language_model.model.layers.31.mlp.gate_proj.weight": (11008, 4096),
        "vlm.language_model.lm_head.weight": (32064, 4096),
        "proprio_projector.fc1.weight": (4096, 8),
        "action_head.model.fc1.weight": (4096, 28672),
        "action_head.model.mlp_resnet_blocks.1.ffn.1.weight": (4096, 4096),
        "action_head.model.fc2.weight": (7, 4096),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert not any("gamma" in k or ("cls_token" in k and "fused" in k) for k in shapes)
    assert sum(v.numel() for v in model.vlm.parameters()) > 7.5e9


# ------------------------------------------------------------------------------------------------ inputs


def test_prompts_are_bos_padding_tokens_then_the_empty_token(folder: Path) -> None:
    ckpt = load_openvla_oft(folder)
    ids, mask = tokenize_prompts(ckpt.tokenizer.encode, ["Open It", "put the bowl on the plate"])
    assert ids[:, 0].tolist() == [1, 1] and ids[:, -1].tolist() == [EMPTY_TOKEN_ID] * 2
    assert mask[0].tolist()[:1] == [1] and mask[0, 1:].tolist() == sorted(mask[0, 1:].tolist())  # pads after BOS
    lower, _ = tokenize_prompts(ckpt.tokenizer.encode, ["open it"])
    assert torch.equal(lower[0], ids[0][mask[0].bool()])  # the instruction is lower-cased
    ending = tokenize_prompts(lambda text: [1, 5, EMPTY_TOKEN_ID], ["x"])[0]
    assert ending.tolist() == [[1, 5, EMPTY_TOKEN_ID]]  # not appended twice


def test_pixels_use_each_backbones_normalization(folder: Path) -> None:
    ckpt = load_openvla_oft(folder)
    gray = np.full((1, IMAGE, IMAGE, 3), 128, np.uint8)
    px = pixel_values([gray, np.zeros((1, 40, 30, 3), np.uint8)], ckpt.image_normalization)
    assert px.shape == (1, 12, IMAGE, IMAGE)
    torch.testing.assert_close(px[0, 0], torch.full((IMAGE, IMAGE), (128 / 255 - 0.484375) / 0.228515625))
    torch.testing.assert_close(px[0, 3], torch.full((IMAGE, IMAGE), (128 / 255 - 0.5) / 0.5))
    torch.testing.assert_close(px[0, 6:], torch.cat([px[0, 6:9], torch.full((3, IMAGE, IMAGE), -1.0)]))


# ------------------------------------------------------------------------------------------------ refusals


def damage_head(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / "action_head--50000_checkpoint.pt"
        state = torch.load(path, weights_only=True)
        edit(state)
        torch.save(state, path)

    return apply


REFUSALS: dict[str, Refusal] = {
    # name: (damage, file named, key named, loader kwargs)
    "no action head": (
        lambda f: (f / "action_head--50000_checkpoint.pt").unlink(),
        "openvla-7b-oft-finetuned-libero-goal",
        "action_head--*_checkpoint.pt",
        {},
    ),
    "two action heads": (
        lambda f: shutil.copy(f / "action_head--50000_checkpoint.pt", f / "action_head--100_checkpoint.pt"),
        "openvla-7b-oft-finetuned-libero-goal",
        "action_head",
        {},
    ),
    "unexpected key": (
        damage_shard(lambda s: s.update(extra=torch.zeros(2))),
        "model-00002-of-00002.safetensors",
        "extra",
        {},
    ),
    "missing key": (
        drop_tensor("vision_backbone.featurizer.reg_token"),
        "model.safetensors.index.json",
        "vision_backbone.featurizer.reg_token",
        {},
    ),
    "wrong shape": (
        damage_shard(lambda s: s.update({k: torch.zeros(3) for k in list(s)[:1]})),
        "model-00002-of-00002.safetensors",
        "has shape (3,)",
        {},
    ),
    "key in a shard but not in the index": (
        damage_shard(lambda s: s.update(extra=torch.zeros(2)), index_too=False),
        "model-00002-of-00002.safetensors",
        "extra",
        {},
    ),
    "unexpected head key": (
        damage_head(lambda s: s.update({"module.model.extra": torch.zeros(1)})),
        "action_head--50000_checkpoint.pt",
        "module.model.extra",
        {},
    ),
    "unnorm key absent": (
        lambda f: None,
        "dataset_statistics.json",
        "libero_spatial",
        {"unnorm_key": "libero_spatial"},
    ),
    "statistics of another action size": (
        damage_json(
            "dataset_statistics.json", lambda d: d[STATS_KEY].update(action={"q01": [0.0] * 6, "q99": [1.0] * 6})
        ),
        "dataset_statistics.json",
        f"{STATS_KEY}.action.q01",
        {},
    ),
    "not an OpenVLA config": (
        damage_json("config.json", lambda d: d.update(model_type="llama")),
        "config.json",
        "model_type",
        {},
    ),
    "unknown ViT": (
        damage_json("config.json", lambda d: d.update(timm_model_ids=["vit_huge_patch14_clip_224", TINY_IDS[1]])),
        "config.json",
        "timm_model_ids",
        {},
    ),
    "tokenizer with another stop token": (
        damage_json("tokenizer_config.json", lambda d: d.update(eos_token="?")),
        "tokenizer.json",
        "eos_token",
        {},
    ),
    "no preprocessor config": (
        lambda f: (f / "preprocessor_config.json").unlink(),
        "preprocessor_config.json",
        "missing",
        {},
    ),
}


@pytest.mark.parametrize("reader", [load_openvla_oft, check_openvla_oft_folder], ids=["load", "check"])
@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_folder_that_does_not_match_is_refused_naming_file_and_key(case: str, reader, copy: Path) -> None:
    """Loading refuses it, and so does the check a run makes before it starts (which reads no weights)."""
    assert_refused(reader, copy, REFUSALS[case])


# ------------------------------------------------------------------------------------------------ no code execution


class Payload:
    """Unpickling this creates `marker` (it calls open(marker, "w"))."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("component", ["action_head", "proprio_projector"])
def test_a_pickle_that_would_run_code_is_refused_and_never_runs(component: str, copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "CODE_RAN"
    path = copy / f"{component}--50000_checkpoint.pt"
    torch.save({"module.fc1.weight": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=f"{path.name}.*could run code"):
        load_openvla_oft(copy)
    assert not marker.exists()


def test_the_payload_is_live(tmp_path: Path) -> None:
    marker = tmp_path / "CODE_RAN"
    torch.save({"x": Payload(marker)}, tmp_path / "p.pt")
    torch.load(tmp_path / "p.pt", weights_only=False)
    assert marker.exists()


def test_the_folders_python_files_are_never_imported(copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "IMPORTED"
    for name in ("modeling_prismatic.py", "configuration_prismatic.py", "processing_prismatic.py"):
        (copy / name).write_text(f"open({str(marker)!r}, 'w')\n")
    load_openvla_oft(copy)
    assert not marker.exists()


def test_bounds_q99_maps_as_the_official_evaluation(folder: Path) -> None:
    stats = load_openvla_oft(folder).statistics
    chunk = np.array([[-1.0, 0.0, 1.0, 0.5, -0.5, 0.25, 0.7]])
    actions = unnormalize_actions(chunk, stats.action)
    high = np.array([1.0, 2, 3, 4, 5, 6])
    expected = 0.5 * (chunk[0, :6] + 1) * (high + 1 + 1e-8) - 1
    np.testing.assert_allclose(actions[0, :6], expected, rtol=0, atol=1e-12)
    assert actions[0, 6] == 0.7  # the gripper (mask false) passes through
    proprio = normalize_proprio(np.array([-0.5, 0.0, 0.5, 2.0, -2.0, 0.25, 0.0, 0.0]), stats.proprio)
    np.testing.assert_allclose(proprio[:6], [-1.0, 0.0, 1.0, 1.0, -1.0, 0.5], atol=1e-7)  # clipped to [-1, 1]


def test_config_without_oft_settings_uses_the_libero_defaults() -> None:
    cfg = read_model_config(config_json(), Path("config.json"))
    assert isinstance(cfg, OpenVLAOFTConfig)
    assert (cfg.num_images, cfg.chunk_len, cfg.action_dim, cfg.proprio_dim) == (2, 8, 7, 8)
    assert cfg.llama["num_key_value_heads"] == 2 and cfg.llama["rms_norm_eps"] == 1e-6


# ------------------------------------------------------------------------------------------------ LIBERO batch, dtype


def libero_observations(n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    cameras = [rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8) for _ in range(2)]
    states = rng.normal(0, 0.3, (n, 16))
    states[:, 10:14] /= np.linalg.norm(states[:, 10:14], axis=1, keepdims=True)
    return cameras, states


def test_a_libero_batch_goes_through_the_official_steps(folder: Path) -> None:
    from ript_fast.policies.openvla_oft import libero_inputs as li
    from ript_fast.policies.openvla_oft.libero_batch import actions_for_env, mean_chunk, prepare_libero_batch

    ckpt = load_openvla_oft(folder)
    cameras, states = libero_observations(2)
    texts = ["put the bowl on the plate", "open the drawer"]
    inputs = prepare_libero_batch(ckpt, cameras, states, texts)
    assert inputs.pixel_values.shape == (2, 12, IMAGE, IMAGE)  # 224 px policy images, then the processor's resize
    images = [np.stack([li.center_crop(li.resize_for_policy(li.camera_image(i))) for i in c]) for c in cameras]
    assert torch.equal(inputs.pixel_values, pixel_values(images, ckpt.image_normalization))
    proprio = normalize_proprio(
        li.libero_proprio(states[:, 7:10], states[:, 10:14], states[:, 14:16]), ckpt.statistics.proprio
    )
    assert torch.equal(inputs.proprio, torch.as_tensor(proprio, dtype=torch.float32))
    normalized = mean_chunk(ckpt, inputs)
    actions = actions_for_env(ckpt, normalized)
    assert actions.shape == (2, 8, 7) and set(np.unique(actions[..., -1])) <= {-1.0, 0.0, 1.0}
    expected = unnormalize_actions(normalized.numpy().astype(np.float64), ckpt.statistics.action)
    np.testing.assert_array_equal(actions[..., :6], expected[..., :6])


def test_bfloat16_weights_give_the_float32_actions_roughly(folder: Path) -> None:
    from ript_fast.policies.openvla_oft.libero_batch import mean_chunk, prepare_libero_batch

    full = load_openvla_oft(folder)
    half = load_openvla_oft(folder, dtype=torch.bfloat16)
    assert next(half.model.parameters()).dtype == torch.bfloat16
    inputs = prepare_libero_batch(full, *libero_observations(2), ["put the bowl", "open it"])
    torch.testing.assert_close(mean_chunk(half, inputs), mean_chunk(full, inputs), atol=0.1, rtol=0)


def test_a_folder_without_proprio_projector_gives_a_model_without_the_proprio_token(copy: Path) -> None:
    (copy / "proprio_projector--50000_checkpoint.pt").unlink()
    ckpt = load_openvla_oft(copy)
    assert ckpt.model.proprio_projector is None and ckpt.statistics.proprio is None
    px, ids, mask, _ = inputs(ckpt, ["open it"])
    with torch.no_grad():
        assert ckpt.model(px, ids, mask).shape == (1, 8, 7)


def test_a_single_weights_file_without_index_loads(copy: Path, folder: Path) -> None:
    state = {}
    for shard in sorted(copy.glob("model-*.safetensors")):
        state.update(load_file(str(shard)))
        shard.unlink()
    (copy / "model.safetensors.index.json").unlink()
    save_file(state, str(copy / "model.safetensors"))
    px, ids, mask, proprio = inputs(load_openvla_oft(folder), ["open it"])
    with torch.no_grad():
        torch.testing.assert_close(
            load_openvla_oft(copy).model(px, ids, mask, proprio), load_openvla_oft(folder).model(px, ids, mask, proprio)
        )
