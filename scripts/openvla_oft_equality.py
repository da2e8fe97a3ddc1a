"""Equality proof: ript-fast's OpenVLA-OFT against the official modeling code, at a tiny size, in float32.

Two steps, each in its own Python environment (the official code needs transformers 4.40.1 from the
moojink/transformers-openvla-oft fork and timm 0.9.10; ript-fast runs on current transformers):

    # 1. in a venv with the official code's pins, given a checkout of moojink/openvla-oft (never part of this repo):
    python scripts/openvla_oft_equality.py reference --official /path/to/openvla-oft --out /tmp/oft-eq
    # 2. in ript-fast's venv:
    python scripts/openvla_oft_equality.py compare --out /tmp/oft-eq

Step 1 builds the official `OpenVLAForActionPrediction` (tiny DINOv2-reg4 and SigLIP ViTs registered with timm under
their own names, a 2-layer Llama with the real 32064-token vocabulary), an `L1RegressionActionHead` and a
`ProprioProjector`, all with random weights; saves them in the official folder layout (sharded `model-*.safetensors` +
index, `config.json`, processor and tokenizer files, `dataset_statistics.json`, `action_head--*_checkpoint.pt` and
`proprio_projector--*_checkpoint.pt` with DDP's `module.` prefix); then runs the official evaluation path on a few
observations (the official processor for each camera, `normalize_proprio`, `predict_action` with the head and proprio
projector, two cameras) and stores inputs and outputs in `reference.npz`.
Step 2 loads the folder with `load_openvla_oft`, prepares the same raw observations with ript-fast's own functions,
runs each observation alone and all of them as one padded batch, and prints the largest absolute difference of every
intermediate and output. It exits 1 when an action differs by more than 1e-4.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

CHUNK, ACTION_DIM, PROPRIO_DIM = 8, 7, 8
UNNORM_KEY = "libero_goal"
STATS_KEY = "libero_goal_no_noops"  # the name OFT checkpoints store; the lookup falls back to it
TOL = 1e-4

# Tiny ViTs with the official module structure (timm kwargs; ript-fast gets the same numbers in `compare`).
TINY_DINO = dict(patch_size=14, embed_dim=64, depth=4, num_heads=4, init_values=1e-5, reg_tokens=4, no_embed_class=True)
TINY_SIGLIP = dict(
    patch_size=14, embed_dim=48, depth=3, num_heads=4, mlp_ratio=3.7362, class_token=False, global_pool="map"
)
TINY_IDS = ("tiny_dinov2_reg4_patch14", "tiny_siglip_patch14")
TINY_LLAMA = dict(
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    vocab_size=32064,
    pad_token_id=32000,
    max_position_embeddings=2048,
)
CASES = [  # (instruction, seed, image side): two prompt lengths; one camera at 256 px exercises the resize
    ("put the bowl on the plate", 0, 224),
    ("open the top drawer and put the bowl inside", 1, 224),
    ("Turn On The Stove", 2, 256),
]
PROMPT_WORDS = {"in", "what", "action", "should", "robot", "take", "to", "out"}
WORDS = sorted({w for text, _, _ in CASES for w in text.lower().split()} | PROMPT_WORDS)


def observations() -> list[dict]:
    out = []
    for text, seed, side in CASES:
        rng = np.random.default_rng(seed)
        out.append(
            {
                "instruction": text,
                "full_image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
                "wrist_image": rng.integers(0, 256, (side, side, 3), dtype=np.uint8),
                "state": rng.normal(0, 0.5, PROPRIO_DIM),
            }
        )
    return out


def statistics() -> dict:
    rng = np.random.default_rng(7)
    low_a, low_p = rng.uniform(-1, 0, ACTION_DIM), rng.uniform(-1, 0, PROPRIO_DIM)
    return {
        STATS_KEY: {
            "action": {
                "q01": low_a.tolist(),
                "q99": (low_a + rng.uniform(0.5, 2, ACTION_DIM)).tolist(),
                "mask": [True] * (ACTION_DIM - 1) + [False],
            },
            "proprio": {"q01": low_p.tolist(), "q99": (low_p + rng.uniform(0.5, 2, PROPRIO_DIM)).tolist()},
        }
    }


# ---------------------------------------------------------------------------------------------- step 1: official


def import_official(root: Path) -> dict:
    """The official modules, imported from `root` without `prismatic/__init__` (it imports the training stack) and
    with stubs for the imports the L1/proprio path never uses (diffusers' scheduler, TF, FiLM, RLDS utilities)."""
    import enum
    import importlib.machinery
    import importlib.util

    sys.argv = [sys.argv[0], "libero"]  # prismatic.vla.constants picks the robot platform from argv
    for name in (
        "prismatic",
        "prismatic.extern",
        "prismatic.extern.hf",
        "prismatic.models",
        "prismatic.training",
        "prismatic.vla",
        "experiments",
        "experiments.robot",
    ):
        module = types.ModuleType(name)
        module.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = module
    stubs = {
        "diffusers": {},
        "diffusers.schedulers": {},
        "diffusers.schedulers.scheduling_ddim": {"DDIMScheduler": object},
        "tensorflow": {"Tensor": object},
        "json_numpy": {"patch": lambda: None},
        "prismatic.models.film_vit_wrapper": {"FiLMedPrismaticVisionBackbone": object},
    }
    if importlib.util.find_spec("tensorflow") is not None:
        del stubs["tensorflow"]  # the real one: the LIBERO image steps are compared too
    for name, attrs in stubs.items():
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # torch._dynamo looks modules up by spec
        module.__dict__.update(attrs)
        sys.modules[name] = module
    from prismatic.vla import constants

    data_utils = types.ModuleType("prismatic.vla.datasets.rlds.utils.data_utils")
    data_utils.NormalizationType = constants.NormalizationType
    for name in ("prismatic.vla.datasets", "prismatic.vla.datasets.rlds", "prismatic.vla.datasets.rlds.utils"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules[data_utils.__name__] = data_utils
    assert isinstance(constants.NormalizationType.BOUNDS_Q99, enum.Enum)
    from experiments.robot import openvla_utils
    from prismatic.extern.hf import configuration_prismatic, modeling_prismatic, processing_prismatic
    from prismatic.models import action_heads, projectors

    return {
        "config": configuration_prismatic,
        "modeling": modeling_prismatic,
        "processing": processing_prismatic,
        "heads": action_heads,
        "projectors": projectors,
        "utils": openvla_utils,
        "constants": constants,
    }


def register_tiny_timm() -> None:
    import timm
    from timm.models import vision_transformer as vt

    for name, kwargs in zip(TINY_IDS, (TINY_DINO, TINY_SIGLIP), strict=True):

        def build(pretrained: bool = False, _kw: dict = kwargs, **more: object) -> object:
            more = {k: v for k, v in more.items() if not k.startswith("pretrained_cfg") and k != "cache_dir"}
            return vt.VisionTransformer(**{**_kw, **more})

        build.__name__ = name
        timm.models.register_model(build)


def write_tokenizer(out: Path) -> None:
    """A word-level tokenizer (the real Llama-2 one is not on this machine); BOS 1, </s> 2 as in Llama-2."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for word in [*WORDS, ":", "?"]:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(out / "tokenizer.json"))


def perturb(module: object, rng_seed: int) -> None:
    """Random weights everywhere (norms and LayerScale too), so that no parameter is a no-op in the comparison."""
    import torch

    gen = torch.Generator().manual_seed(rng_seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * (0.05 if p.ndim < 2 else 0.02))


def tiny_official_config(mods: dict, out: Path, **settings: object) -> object:
    """The official `OpenVLAConfig` of the tiny model (`settings` added), with the tiny ViTs registered with timm, the
    official auto classes registered (as `get_vla` does) and `out` created."""
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor

    register_tiny_timm()
    out.mkdir(parents=True, exist_ok=True)
    cfg_mod, processing = mods["config"], mods["processing"]
    AutoConfig.register("openvla", cfg_mod.OpenVLAConfig)
    AutoImageProcessor.register(cfg_mod.OpenVLAConfig, processing.PrismaticImageProcessor)
    AutoProcessor.register(cfg_mod.OpenVLAConfig, processing.PrismaticProcessor)
    return cfg_mod.OpenVLAConfig(
        vision_backbone_id="dinosiglip-vit-so-224px",
        llm_backbone_id="llama2-7b-pure",
        arch_specifier="no-align+fused-gelu-mlp",
        image_resize_strategy="resize-naive",
        text_config=TINY_LLAMA,
        timm_model_ids=list(TINY_IDS),
        torch_dtype="float32",
        **settings,
    )


def save_processor(out: Path, processing: types.ModuleType) -> None:
    """The official processor (word-level tokenizer, both backbones' image transforms) saved into `out`."""
    from transformers import LlamaTokenizerFast

    write_tokenizer(out)
    tokenizer = LlamaTokenizerFast(
        tokenizer_file=str(out / "tokenizer.json"), bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    image_processor = processing.PrismaticImageProcessor(
        use_fused_vision_backbone=True,
        image_resize_strategy="resize-naive",
        input_sizes=[(3, 224, 224)] * 2,
        interpolations=["bicubic", "bicubic"],
        means=[(0.485, 0.456, 0.406), (0.5, 0.5, 0.5)],
        stds=[(0.229, 0.224, 0.225), (0.5, 0.5, 0.5)],
    )
    processing.PrismaticProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    # The released files carry bf16-rounded DINOv2 mean/std in tvf_normalize_params (not the nominal `means`):
    # write such values here too, so the comparison shows which of the two the official processor applies.
    pre = json.loads((out / "preprocessor_config.json").read_text())
    pre["tvf_normalize_params"][0].update(
        mean=[0.484375, 0.455078125, 0.40625], std=[0.228515625, 0.2236328125, 0.224609375]
    )
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))


def reference(official: Path, out: Path) -> None:
    import importlib.util

    import torch
    from PIL import Image
    from transformers import AutoProcessor

    torch.manual_seed(0)
    mods = import_official(official)
    modeling, processing = mods["modeling"], mods["processing"]
    config = tiny_official_config(mods, out)
    vla = modeling.OpenVLAForActionPrediction(config)
    perturb(vla, 1)
    vla.save_pretrained(out, max_shard_size="2MB", safe_serialization=True)

    llm_dim = TINY_LLAMA["hidden_size"]
    head = mods["heads"].L1RegressionActionHead(input_dim=llm_dim, hidden_dim=llm_dim, action_dim=ACTION_DIM)
    proprio_projector = mods["projectors"].ProprioProjector(llm_dim=llm_dim, proprio_dim=PROPRIO_DIM)
    perturb(head, 2)
    perturb(proprio_projector, 3)
    for name, module in (("action_head", head), ("proprio_projector", proprio_projector)):
        torch.save({f"module.{k}": v for k, v in module.state_dict().items()}, out / f"{name}--100_checkpoint.pt")

    save_processor(out, processing)
    (out / "dataset_statistics.json").write_text(json.dumps(statistics(), indent=2))

    # ---- the official evaluation path, from the folder
    utils = mods["utils"]
    vla = modeling.OpenVLAForActionPrediction.from_pretrained(
        out, torch_dtype=torch.float32, attn_implementation="sdpa"
    )
    vla.vision_backbone.set_num_images_in_input(2)
    vla.norm_stats = json.loads((out / "dataset_statistics.json").read_text())
    vla.eval()
    processor = AutoProcessor.from_pretrained(out)
    head = mods["heads"].L1RegressionActionHead(input_dim=llm_dim, hidden_dim=llm_dim, action_dim=ACTION_DIM)
    head.load_state_dict(utils.load_component_state_dict(utils.find_checkpoint_file(str(out), "action_head")))
    proprio_projector = mods["projectors"].ProprioProjector(llm_dim=llm_dim, proprio_dim=PROPRIO_DIM)
    proprio_projector.load_state_dict(
        utils.load_component_state_dict(utils.find_checkpoint_file(str(out), "proprio_projector"))
    )
    head.eval()
    proprio_projector.eval()
    record: dict[str, list] = {
        k: [] for k in ("pixel_values", "input_ids", "proprio", "hidden", "normalized", "actions")
    }
    for obs in observations():
        prompt = f"In: What action should the robot take to {obs['instruction'].lower()}?\nOut:"
        # the official `prepare_images_for_vla` resizes non-224 images with TF (JPEG + lanczos); the model
        # comparison takes the processor's own resize of the PIL image instead (TF is not installed here)
        images = [Image.fromarray(obs[k]).convert("RGB") for k in ("full_image", "wrist_image")]
        inputs = processor(prompt, images[0])
        wrist = processor(prompt, images[1])
        inputs["pixel_values"] = torch.cat([inputs["pixel_values"], wrist["pixel_values"]], dim=1)
        proprio = utils.normalize_proprio(obs["state"], vla.norm_stats[STATS_KEY]["proprio"])
        with torch.inference_mode():
            actions, hidden = vla.predict_action(
                **inputs,
                unnorm_key=STATS_KEY,
                do_sample=False,
                proprio=proprio,
                proprio_projector=proprio_projector,
                action_head=head,
                use_film=False,
            )
            normalized = head.predict_action(hidden).reshape(CHUNK, ACTION_DIM)
        record["pixel_values"].append(inputs["pixel_values"][0].numpy())
        record["input_ids"].append(inputs["input_ids"][0].numpy())
        record["proprio"].append(np.asarray(proprio))
        record["hidden"].append(hidden[0].numpy())
        record["normalized"].append(normalized.numpy())
        record["actions"].append(np.asarray(actions))
    arrays = {f"{k}_{i}": v for k, values in record.items() for i, v in enumerate(values)}
    np.savez(out / "reference.npz", **arrays)
    if importlib.util.find_spec("tensorflow") is not None:
        libero_reference(utils, out)
    import timm
    import transformers

    print(
        f"official reference written to {out} (transformers {transformers.__version__}, timm {timm.__version__}, "
        f"torch {torch.__version__})"
    )


def libero_images() -> list[np.ndarray]:
    """256 x 256 camera-like images: a smooth gradient scene with edges, and plain noise (JPEG's worst case)."""
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float64)
    smooth = np.stack([xx, yy, 255 - (xx + yy) / 2], axis=-1)
    smooth[80:160, 100:180] = [200, 30, 30]
    smooth = np.clip(smooth + rng.normal(0, 4, smooth.shape), 0, 255).astype(np.uint8)
    return [smooth, rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)]


def libero_reference(utils: object, out: Path) -> None:
    """The official LIBERO image steps (TensorFlow), each on the same input ript-fast will get."""
    import tensorflow as tf

    arrays = {}
    for i, image in enumerate(libero_images()):
        jpeg = tf.io.decode_image(tf.image.encode_jpeg(image), expand_animations=False, dtype=tf.uint8).numpy()
        resized = tf.image.resize(image, (224, 224), method="lanczos3", antialias=True)
        arrays[f"input_{i}"] = image
        arrays[f"jpeg_{i}"] = jpeg
        arrays[f"lanczos_{i}"] = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()
        arrays[f"policy_{i}"] = utils.resize_image_for_policy(image, 224)
        arrays[f"crop_{i}"] = np.asarray(utils.center_crop_image(arrays[f"policy_{i}"]))
    np.savez(out / "libero_images.npz", **arrays)


def compare_libero_images(out: Path) -> dict[str, tuple[int, int, int]]:
    """Step by step: (max abs difference, differing values, all values) of ript-fast's functions vs TensorFlow's."""
    from ript_fast.policies.openvla_oft import libero_inputs as li

    ref = np.load(out / "libero_images.npz")
    found: dict[str, tuple[int, int, int]] = {}
    for i, name in enumerate(("smooth", "noise")):
        image = ref[f"input_{i}"]
        steps = {
            "JPEG round trip": (li.jpeg_round_trip(image), ref[f"jpeg_{i}"]),
            "lanczos3 resize 256 -> 224 (same input)": (li.lanczos_resize(image), ref[f"lanczos_{i}"]),
            "resize_for_policy (JPEG + resize)": (li.resize_for_policy(image), ref[f"policy_{i}"]),
            "center crop 90% (same input)": (li.center_crop(ref[f"policy_{i}"]), ref[f"crop_{i}"]),
        }
        for step, (ours, theirs) in steps.items():
            diff = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
            found[f"{step}, {name} image"] = (int(diff.max()), int((diff > 0).sum()), diff.size)
    return found


# ---------------------------------------------------------------------------------------------- step 2: ript-fast


class Differences(dict[str, float]):
    """The largest |ours - official| seen per compared quantity."""

    def note(self, name: str, ours: np.ndarray, theirs: np.ndarray) -> None:
        assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
        self[name] = max(self.get(name, 0.0), float(np.abs(ours.astype(np.float64) - theirs).max()))

    def print(self) -> None:
        width = max(len(k) for k in self)
        for name, value in self.items():
            print(f"{name:<{width}}  max |ours - official| = {value:.3e}")


def register_tiny_vits() -> None:
    """The tiny ViTs of `TINY_DINO` / `TINY_SIGLIP`, made buildable by ript-fast under the same timm ids."""
    from ript_fast.policies.openvla_oft import ViTArchitecture, register_vit_architecture

    register_vit_architecture(
        TINY_IDS[0],
        ViTArchitecture(
            patch_size=14,
            embed_dim=64,
            depth=4,
            num_heads=4,
            mlp_hidden_dim=256,
            reg_tokens=4,
            no_embed_class=True,
            layer_scale=True,
        ),
    )
    register_vit_architecture(
        TINY_IDS[1],
        ViTArchitecture(
            patch_size=14,
            embed_dim=48,
            depth=3,
            num_heads=4,
            mlp_hidden_dim=int(48 * 3.7362),
            class_token=False,
            attention_pool=True,
        ),
    )


def compare(out: Path) -> int:
    import torch

    from ript_fast.policies.openvla_oft import (
        load_openvla_oft,
        normalize_proprio,
        pixel_values,
        prompt_text,
        tokenize_prompts,
        unnormalize_actions,
    )

    register_tiny_vits()
    ckpt = load_openvla_oft(out, unnorm_key=UNNORM_KEY, num_images=2, chunk_len=CHUNK)
    ref = np.load(out / "reference.npz")
    obs = observations()
    diffs = Differences()
    note = diffs.note

    batch_pixels, batch_proprio = [], []
    for i, o in enumerate(obs):
        ids = ckpt.tokenizer.encode(prompt_text(o["instruction"]))  # the processor's ids (29871 comes later)
        note("input_ids (exact)", np.asarray(ids), ref[f"input_ids_{i}"])
        px = pixel_values([o["full_image"][None], o["wrist_image"][None]], ckpt.image_normalization)
        note("pixel_values", px[0].numpy(), ref[f"pixel_values_{i}"])
        proprio = normalize_proprio(o["state"], ckpt.statistics.proprio)
        note("normalized proprio", proprio, ref[f"proprio_{i}"])
        input_ids, mask = tokenize_prompts(ckpt.tokenizer.encode, [o["instruction"]])
        with torch.no_grad():
            prop = torch.as_tensor(proprio, dtype=torch.float32)[None]
            hidden = ckpt.model.action_hidden_states(px, input_ids, mask, prop)
            normalized = ckpt.model.action_head(hidden)[0].numpy()
        note("action hidden states (one query)", hidden[0].numpy(), ref[f"hidden_{i}"])
        note("normalized action chunk (one query)", normalized, ref[f"normalized_{i}"])
        note("action chunk (one query)", unnormalize_actions(normalized, ckpt.statistics.action), ref[f"actions_{i}"])
        batch_pixels.append(px)
        batch_proprio.append(proprio)
    input_ids, mask = tokenize_prompts(ckpt.tokenizer.encode, [o["instruction"] for o in obs])
    with torch.no_grad():
        batch = ckpt.model(torch.cat(batch_pixels), input_ids, mask, torch.as_tensor(np.stack(batch_proprio)).float())
    for i in range(len(obs)):
        normalized = batch[i].numpy()
        note("normalized action chunk (padded batch of 3)", normalized, ref[f"normalized_{i}"])
        note(
            "action chunk (padded batch of 3)",
            unnormalize_actions(normalized, ckpt.statistics.action),
            ref[f"actions_{i}"],
        )
    spread = np.stack([ref[f"normalized_{i}"] for i in range(len(obs))])
    print(f"official normalized actions: std {spread.std():.3f}, range [{spread.min():.3f}, {spread.max():.3f}]")
    diffs.print()
    if (out / "libero_images.npz").is_file():
        for step, (largest, count, total) in compare_libero_images(out).items():
            print(f"LIBERO image step: {step:<52} max |diff| = {largest}, {count} of {total} uint8 values differ")
    worst = max(v for k, v in diffs.items() if "action chunk" in k)
    ok = worst <= TOL and diffs["input_ids (exact)"] == 0
    print(f"{'PASS' if ok else 'FAIL'}: largest action difference {worst:.3e} (tolerance {TOL:g})")
    return 0 if ok else 1


def run_steps(
    doc: str, official_repo: str, reference: Callable[[Path, Path], None], compare: Callable[[Path], int]
) -> int:
    """An equality script's two steps: `reference --official CHECKOUT --out DIR`, then `compare --out DIR`."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    ref = sub.add_parser("reference", help="run the official code (in its own venv); write the folder + outputs")
    ref.add_argument("--official", type=Path, required=True, help=f"a checkout of github.com/{official_repo}")
    ref.add_argument("--out", type=Path, required=True)
    cmp_ = sub.add_parser("compare", help="load the folder with ript-fast and compare")
    cmp_.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.step == "reference":
        reference(args.official.resolve(), args.out)
        return 0
    return compare(args.out)


def main() -> int:
    return run_steps(__doc__, "moojink/openvla-oft", reference, compare)


if __name__ == "__main__":
    sys.exit(main())
