"""Equality proof: ript-fast's OpenVLA against the official modeling code, at a tiny size, in float32.

Two steps, each in its own Python environment (the official code needs stock transformers 4.40.1 and timm 0.9.10;
ript-fast runs on current transformers):

    # 1. in a venv with the official code's pins, given a checkout of openvla/openvla (never part of this repo):
    python scripts/openvla_equality.py reference --official /path/to/openvla --out /tmp/openvla-eq
    # 2. in ript-fast's venv:
    python scripts/openvla_equality.py compare --out /tmp/openvla-eq

Step 1 builds the official `OpenVLAForActionPrediction` at a tiny size (the tiny timm ViTs and 2-layer Llama with the
real 32064-row vocabulary of `openvla_oft_equality.py`), with random weights, saves it in the official folder layout
(sharded `model-*.safetensors` + index, `config.json` with `norm_stats`, processor and tokenizer files,
`dataset_statistics.json` under `libero_goal`), then runs the official evaluation path on a few observations
(`processor(prompt, image)`, `predict_action(..., unnorm_key, do_sample=False)`: greedy `generate` of 7 tokens with
its KV cache) and stores the inputs, the generated token ids, the logits each was chosen from and the actions.
After the random init the decoder layers' matrices are scaled up (x20, so that the tokens depend on the inputs) and
so are the LM head's rows of the 256 action tokens (x3, so that the greedy argmax over the whole vocabulary lands on
action tokens, as it does for a trained model; the script checks that it does).
Step 2 loads the folder with `load_openvla`, prepares the same observations with ript-fast's functions, decodes
greedily over the action bins (each query alone, then all as one padded batch) and prints the largest difference of
every intermediate and output. It exits 1 when a token differs or an action-bin logit differs by more than 1e-4.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
from openvla_oft_equality import (
    CASES,
    Differences,
    perturb,
    register_tiny_vits,
    run_steps,
    save_processor,
    tiny_official_config,
)

UNNORM_KEY = "libero_goal"  # the vanilla LIBERO fine-tunes' key
BASE_KEY = "bridge_orig"  # a pretraining dataset in config.json's norm_stats
ACTION_DIM, N_BINS, VOCAB = 7, 256, 32000  # VOCAB: text_config.vocab_size - pad_to_multiple_of
ACTION_ROW_SCALE = 3.0
# At the init scale a random 2-layer LM's last hidden state barely depends on its inputs (every greedy token was the
# same, 31851, for every query); decoder matrices x20 make each query and each fed-back token change the next.
LAYER_WEIGHT_SCALE = 20.0
TOL = 1e-4


def statistics(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    low = rng.uniform(-1, 0, ACTION_DIM)
    return {
        "action": {
            "q01": low.tolist(),
            "q99": (low + rng.uniform(0.5, 2, ACTION_DIM)).tolist(),
            "mask": [True] * (ACTION_DIM - 1) + [False],
        }
    }


def observations() -> list[dict]:
    """One camera per query: 224 px, and 256 px for the last case (the processor's own bicubic resize)."""
    out = []
    for text, seed, side in CASES:
        rng = np.random.default_rng(100 + seed)
        out.append({"instruction": text, "full_image": rng.integers(0, 256, (side, side, 3), dtype=np.uint8)})
    return out


# ---------------------------------------------------------------------------------------------- step 1: official


def import_official(root: Path) -> dict:
    """The official HF modules, imported from `root` without `prismatic/__init__` (it imports the training stack)."""
    for name in ("prismatic", "prismatic.extern", "prismatic.extern.hf", "prismatic.vla"):
        module = types.ModuleType(name)
        module.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = module
    from prismatic.extern.hf import configuration_prismatic, modeling_prismatic, processing_prismatic
    from prismatic.vla import action_tokenizer

    return {
        "config": configuration_prismatic,
        "modeling": modeling_prismatic,
        "processing": processing_prismatic,
        "action_tokenizer": action_tokenizer,
    }


def token_actions() -> np.ndarray:
    """Normalized actions for the tokenizer round trip: random, beyond [-1, 1], the edges, every bin center."""
    edges = np.linspace(-1, 1, N_BINS)
    rng = np.random.default_rng(3)
    return np.concatenate([rng.uniform(-1.2, 1.2, 1000), edges, (edges[:-1] + edges[1:]) / 2])


def official_tokenizer_round_trip(module: types.ModuleType) -> dict[str, np.ndarray]:
    """The official `ActionTokenizer` on a stand-in base tokenizer of Llama-2's 32000 tokens whose `decode` returns
    the ids it is given (the class needs only `vocab_size` and `decode`), so its encoding is read as token ids."""
    base = types.SimpleNamespace(vocab_size=VOCAB, decode=lambda ids: np.asarray(ids))
    tokenizer = module.ActionTokenizer(base, bins=N_BINS)
    every_token = np.arange(VOCAB - N_BINS, VOCAB)
    return {
        "tokenizer_encoded": np.asarray(tokenizer(token_actions())),
        "tokenizer_decoded": tokenizer.decode_token_ids_to_actions(every_token),
    }


def reference(official: Path, out: Path) -> None:
    import torch
    from PIL import Image
    from transformers import AutoProcessor

    torch.manual_seed(0)
    mods = import_official(official)
    modeling, processing = mods["modeling"], mods["processing"]
    config = tiny_official_config(mods, out, norm_stats={BASE_KEY: statistics(5)}, n_action_bins=N_BINS)
    vla = modeling.OpenVLAForActionPrediction(config)
    perturb(vla, 1)
    with torch.no_grad():
        for weight in vla.language_model.model.layers.parameters():
            if weight.ndim == 2:
                weight.mul_(LAYER_WEIGHT_SCALE)
        vla.language_model.lm_head.weight[VOCAB - N_BINS : VOCAB] *= ACTION_ROW_SCALE
    vla.save_pretrained(out, max_shard_size="7MB", safe_serialization=True)

    save_processor(out, processing)
    (out / "dataset_statistics.json").write_text(json.dumps({UNNORM_KEY: statistics(7)}, indent=2))

    # ---- the official evaluation path (experiments/robot/openvla_utils.py get_vla + get_vla_action), from the folder,
    # in float32 with SDPA attention (get_vla asks for bf16 and flash-attention 2, which needs a GPU; both are causal)
    vla = modeling.OpenVLAForActionPrediction.from_pretrained(
        out, torch_dtype=torch.float32, attn_implementation="sdpa"
    )
    vla.norm_stats = json.loads((out / "dataset_statistics.json").read_text())  # get_vla's override
    vla.eval()
    processor = AutoProcessor.from_pretrained(out)
    generated: list = []
    generate = vla.generate

    def recording_generate(*args: object, **kwargs: object) -> torch.Tensor:
        """`generate` as predict_action calls it, also keeping the logits each greedy token was chosen from."""
        result = generate(*args, **kwargs, return_dict_in_generate=True, output_logits=True)
        generated.append(result)
        return result.sequences

    vla.generate = recording_generate
    record: dict[str, list] = {k: [] for k in ("input_ids", "pixel_values", "tokens", "logits", "actions")}
    for obs in observations():
        prompt = f"In: What action should the robot take to {obs['instruction'].lower()}?\nOut:"
        inputs = processor(prompt, Image.fromarray(obs["full_image"]).convert("RGB"))
        with torch.inference_mode():
            actions = vla.predict_action(**inputs, unnorm_key=UNNORM_KEY, do_sample=False)
        result = generated.pop()
        record["input_ids"].append(inputs["input_ids"][0].numpy())
        record["pixel_values"].append(inputs["pixel_values"][0].numpy())
        record["tokens"].append(result.sequences[0, -ACTION_DIM:].numpy())
        record["logits"].append(torch.cat(result.logits).float().numpy())  # (7, 32064)
        record["actions"].append(np.asarray(actions))
    arrays = {f"{k}_{i}": v for k, values in record.items() for i, v in enumerate(values)}
    np.savez(out / "reference.npz", **arrays, **official_tokenizer_round_trip(mods["action_tokenizer"]))
    import timm
    import transformers

    print(
        f"official reference written to {out} (transformers {transformers.__version__}, timm {timm.__version__}, "
        f"torch {torch.__version__}); tokens {[t.tolist() for t in record['tokens']]}"
    )


# ---------------------------------------------------------------------------------------------- step 2: ript-fast


def compare(out: Path) -> int:
    import torch

    from ript_fast.policies.openvla.loader import load_openvla
    from ript_fast.policies.openvla_oft import pixel_values, prompt_text, tokenize_prompts, unnormalize_actions

    register_tiny_vits()
    ckpt = load_openvla(out, unnorm_key=UNNORM_KEY)
    bins = ckpt.model.cfg.bins
    ref = np.load(out / "reference.npz")
    obs = observations()
    diffs = Differences()
    note = diffs.note

    def greedy(logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=-1)

    official_tokens = np.stack([ref[f"tokens_{i}"] for i in range(len(obs))])
    in_bins = ((official_tokens >= bins.first_token) & (official_tokens < VOCAB)).mean()
    print(f"official greedy tokens that are action tokens: {in_bins:.0%} ({official_tokens.size} tokens)")
    note("ActionTokenizer encoding (exact)", bins.from_normalized(token_actions()) + bins.first_token,
         ref["tokenizer_encoded"])  # fmt: skip
    note("ActionTokenizer decoding of all 256 tokens", bins.to_normalized(np.arange(N_BINS)), ref["tokenizer_decoded"])
    all_pixels = []
    for i, o in enumerate(obs):
        ids = ckpt.tokenizer.encode(prompt_text(o["instruction"]))  # the processor's ids (29871 comes later)
        note("input_ids (exact)", np.asarray(ids), ref[f"input_ids_{i}"])
        px = pixel_values([o["full_image"][None]], ckpt.image_normalization)
        note("pixel_values", px[0].numpy(), ref[f"pixel_values_{i}"])
        input_ids, mask = tokenize_prompts(ckpt.tokenizer.encode, [o["instruction"]])
        chosen, logits = ckpt.model.decode(px, input_ids, mask, greedy)
        note("action tokens, one query (exact)", chosen[0].numpy() + bins.first_token, ref[f"tokens_{i}"])
        official_bin_logits = ref[f"logits_{i}"][:, bins.first_token : VOCAB]
        note("action-bin logits, one query", logits[0].numpy(), official_bin_logits)
        actions = unnormalize_actions(bins.to_normalized(chosen[0].numpy()), ckpt.statistics.action, eps=0.0)
        note("un-normalized actions, one query", actions, ref[f"actions_{i}"])
        all_pixels.append(px)
    input_ids, mask = tokenize_prompts(ckpt.tokenizer.encode, [o["instruction"] for o in obs])
    chosen, logits = ckpt.model.decode(torch.cat(all_pixels), input_ids, mask, greedy)
    for i in range(len(obs)):
        note("action tokens, padded batch of 3 (exact)", chosen[i].numpy() + bins.first_token, ref[f"tokens_{i}"])
        note("action-bin logits, padded batch of 3", logits[i].numpy(), ref[f"logits_{i}"][:, bins.first_token : VOCAB])
    spread = np.stack([ref[f"logits_{i}"][:, bins.first_token : VOCAB] for i in range(len(obs))])
    print(f"official action-bin logits: std {spread.std():.3f}, range [{spread.min():.3f}, {spread.max():.3f}]")
    diffs.print()
    exact = all(v == 0 for k, v in diffs.items() if "exact" in k)
    worst = max(v for k, v in diffs.items() if "logits" in k or "actions" in k)
    ok = exact and worst <= TOL and in_bins == 1.0
    print(f"{'PASS' if ok else 'FAIL'}: tokens {'equal' if exact else 'DIFFER'}, largest logit/action difference "
          f"{worst:.3e} (tolerance {TOL:g})")  # fmt: skip
    return 0 if ok else 1


def main() -> int:
    return run_steps(__doc__, "openvla/openvla", reference, compare)


if __name__ == "__main__":
    sys.exit(main())
