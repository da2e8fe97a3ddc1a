"""OpenVLA: loading an official-layout folder, its action tokens, the prompt, decoding and re-scoring, the refusals.

The folders are written here in the official layout (3 safetensors shards + index, config.json with n_action_bins and
norm_stats, tokenizer and preprocessor files, dataset_statistics.json of a LIBERO fine-tune) at a tiny size; the
official code itself is compared in scripts/openvla_equality.py (bench/RESULTS.md), not here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from python_tests.folder_damage import Refusal, assert_refused, damage_json, damage_shard, drop_tensor
from ript_fast.policies.openvla.action_tokens import ActionBins
from ript_fast.policies.openvla.loader import check_openvla_folder, load_openvla
from ript_fast.policies.openvla.random_folder import BASE_DATASET, STATS_KEY, write_random_openvla_folder
from ript_fast.policies.openvla_oft import FolderError, pixel_values, tokenize_prompts
from ript_fast.policies.openvla_oft.random_folder import TINY
from ript_fast.policies.openvla_oft.sequence import EMPTY_TOKEN_ID, prompt_ids

IMAGE = TINY.image_size
SHARD = "model-00002-of-00003.safetensors"


@pytest.fixture(scope="module")
def ckpt(openvla_folder: Path):
    return load_openvla(openvla_folder)


@pytest.fixture
def copy(openvla_folder: Path, tmp_path: Path) -> Path:
    """A private copy of the session's folder, to damage."""
    return Path(shutil.copytree(openvla_folder, tmp_path / openvla_folder.name))


def inputs(ckpt, instructions: list[str], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (len(instructions), IMAGE, IMAGE, 3), dtype=np.uint8)
    ids, mask = tokenize_prompts(ckpt.tokenizer.encode, instructions)
    return pixel_values([images], ckpt.image_normalization), ids, mask


def greedy(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=-1)


# ------------------------------------------------------------------------------------------------ action tokens


def test_tokens_are_the_last_256_ids_of_the_32000_token_vocabulary(ckpt) -> None:
    bins = ckpt.model.cfg.bins
    assert (bins.vocab_size, bins.n_bins, bins.first_token) == (32000, 256, 31744)  # 32064 rows less 64 of padding
    lm_head = ckpt.model.vlm.language_model.lm_head.weight
    assert torch.equal(ckpt.model.bin_weight(), lm_head[31744:32000])


def test_the_full_size_folder_config_gives_openvla_7b() -> None:
    """The 7B configuration (on the meta device: no memory) has openvla-7b's LM rows and its action tokens."""
    from ript_fast.policies.openvla.model import OpenVLA
    from ript_fast.policies.openvla.random_folder import model_config
    from ript_fast.policies.openvla_oft.random_folder import FULL

    cfg = model_config(FULL)
    with torch.device("meta"):
        model = OpenVLA(cfg)
    assert tuple(model.vlm.language_model.lm_head.weight.shape) == (32064, 4096)
    assert tuple(model.bin_weight().shape) == (256, 4096) and cfg.bins.first_token == 31744


def test_bin_centers_round_trip_through_the_tokens() -> None:
    bins = ActionBins()
    centers = bins.centers
    assert centers.shape == (255,) and np.allclose(np.diff(centers), 2 / 255)
    tokens = bins.from_normalized(centers)
    assert len(set(tokens.tolist())) == 255 and tokens.min() >= 1 and tokens.max() <= 255
    np.testing.assert_array_equal(bins.to_normalized(tokens), centers)


def test_encoding_and_decoding_follow_the_official_formulas() -> None:
    """Token = 32000 - digitize(clip(a)) against linspace(-1, 1, 256); decoding takes center clip(32000 - t - 1, 0,
    254): the two lowest ids share the last center, out-of-range actions clip to the end bins."""
    bins = ActionBins()
    edges = np.linspace(-1, 1, 256)
    actions = np.array([-5.0, -1.0, -0.3, 0.0, 0.999, 1.0, 7.0])
    token_ids = bins.from_normalized(actions) + bins.first_token
    np.testing.assert_array_equal(token_ids, 32000 - np.digitize(np.clip(actions, -1, 1), edges))
    every = np.arange(31744, 32000)
    np.testing.assert_array_equal(
        bins.to_normalized(every - bins.first_token), bins.centers[np.clip(32000 - every - 1, 0, 254)]
    )
    assert bins.to_normalized(np.array([0]))[0] == bins.to_normalized(np.array([1]))[0] == bins.centers[-1]


# ------------------------------------------------------------------------------------------------ prompt


def test_the_prompt_is_the_official_one_with_the_empty_token_once(ckpt) -> None:
    """`In: What action should the robot take to {instruction.lower()}?\\nOut:` with BOS, then 29871 appended unless the
    encoded prompt already ends with it (predict_action's check)."""
    expected = ckpt.tokenizer.encode("In: What action should the robot take to open the drawer?\nOut:")
    ids = prompt_ids(ckpt.tokenizer.encode, "Open The Drawer")
    assert ids == [*expected, EMPTY_TOKEN_ID] and ids[0] == ckpt.tokenizer.bos_id
    assert prompt_ids(lambda text: [1, 7, EMPTY_TOKEN_ID], "x") == [1, 7, EMPTY_TOKEN_ID]


# ------------------------------------------------------------------------------------------------ loading, decoding


def test_loads_the_folder_as_stored(openvla_folder: Path, ckpt) -> None:
    assert len(list(openvla_folder.glob("model-*-of-00003.safetensors"))) == 3
    assert ckpt.statistics.unnorm_key == STATS_KEY and not ckpt.model.training
    own = ckpt.model.vlm.state_dict()
    shard = load_file(str(openvla_folder / SHARD))
    assert shard and all(torch.equal(own[k], v) for k, v in shard.items())


def test_the_base_layout_reads_config_norm_stats(tmp_path: Path) -> None:
    """openvla-7b has no dataset_statistics.json: the statistics are config.json's norm_stats, of many datasets, so
    the key must be given (one line naming config.json and unnorm_key otherwise)."""
    folder = write_random_openvla_folder(tmp_path / "openvla-7b", fine_tune_statistics=False)
    assert load_openvla(folder, unnorm_key=BASE_DATASET).statistics.unnorm_key == BASE_DATASET
    config = json.loads((folder / "config.json").read_text())
    config["norm_stats"]["fractal20220817_data"] = config["norm_stats"][BASE_DATASET]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(FolderError, match=r"config\.json: unnorm_key must be given"):
        check_openvla_folder(folder)


def test_greedy_decoding_is_deterministic_and_reads_image_and_instruction(ckpt) -> None:
    px, ids, mask = inputs(ckpt, ["put the bowl on the plate"])
    tokens, logits = ckpt.model.decode(px, ids, mask, greedy)
    assert tokens.shape == (1, 7) and logits.shape == (1, 7, 256)
    assert torch.equal(tokens, logits.argmax(dim=-1))
    again, _ = ckpt.model.decode(px, ids, mask, greedy)
    assert torch.equal(tokens, again)
    _, other_image = ckpt.model.decode(px * 0.5, ids, mask, greedy)
    _, other_task = ckpt.model.decode(px, *tokenize_prompts(ckpt.tokenizer.encode, ["open the drawer"]), greedy)
    assert not torch.allclose(logits[:, 0], other_image[:, 0], atol=1e-5)
    assert not torch.allclose(logits[:, 0], other_task[:, 0], atol=1e-5)


def test_each_token_is_decoded_from_the_ones_before_it(ckpt) -> None:
    """Autoregressive: forcing another first token changes the later logits, not the first ones."""
    px, ids, mask = inputs(ckpt, ["open the drawer"])
    _, logits = ckpt.model.decode(px, ids, mask, greedy)
    forced = iter([torch.tensor([3]), *[None] * 6])

    def first_then_greedy(step_logits: torch.Tensor) -> torch.Tensor:
        token = next(forced)
        return step_logits.argmax(dim=-1) if token is None else token

    _, other = ckpt.model.decode(px, ids, mask, first_then_greedy)
    torch.testing.assert_close(other[:, 0], logits[:, 0], atol=0, rtol=0)
    assert not torch.allclose(other[:, 1], logits[:, 1], atol=1e-5)


def test_a_padded_batch_equals_each_query_alone(ckpt) -> None:
    texts = ["put the bowl on the plate and open the drawer", "open it", "put the bowl"]
    px, ids, mask = inputs(ckpt, texts)
    assert (mask == 0).any()
    tokens, logits = ckpt.model.decode(px, ids, mask, greedy)
    for i, text in enumerate(texts):
        alone_tokens, alone = ckpt.model.decode(px[i : i + 1], *tokenize_prompts(ckpt.tokenizer.encode, [text]), greedy)
        assert torch.equal(tokens[i : i + 1], alone_tokens)
        torch.testing.assert_close(logits[i : i + 1], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("prefix_grad", [True, False], ids=["whole-pass", "cached-prefix"])
def test_rescoring_the_decoded_tokens_gives_the_decoding_logits(ckpt, prefix_grad: bool) -> None:
    """Teacher forcing over [prompt, a1..a6] (one pass, or the cached prefix and the 7 read positions) reads the
    hidden states the KV-cached decoding chose from."""
    px, ids, mask = inputs(ckpt, ["put the bowl on the plate", "open it"])
    torch.manual_seed(1)
    tokens, logits = ckpt.model.decode(px, ids, mask, lambda x: torch.multinomial(torch.softmax(x, -1), 1)[:, 0])
    with torch.enable_grad():
        hidden = ckpt.model.action_hidden_states(px, ids, mask, tokens, prefix_grad=prefix_grad)
    torch.testing.assert_close(ckpt.model.bin_logits(hidden).detach(), logits, atol=1e-5, rtol=0)


def test_a_prompt_without_the_empty_token_is_refused(ckpt) -> None:
    px, ids, mask = inputs(ckpt, ["open it"])
    with pytest.raises(ValueError, match="29871"):
        ckpt.model.decode(px, ids[:, :-1], mask[:, :-1], greedy)


# ------------------------------------------------------------------------------------------------ refusals

REFUSALS: dict[str, Refusal] = {
    # name: (damage, file named, key named, loader kwargs)
    "unnorm key absent": (lambda f: None, "dataset_statistics.json", "libero_object", {"unnorm_key": "libero_object"}),
    "unexpected shard key": (
        damage_shard(lambda s: s.update(extra=torch.zeros(2)), shard=SHARD),
        SHARD,
        "extra",
        {},
    ),
    "wrong shard shape": (
        damage_shard(lambda s: s.update({k: torch.zeros(3) for k in list(s)[:1]}), shard=SHARD),
        SHARD,
        "has shape (3,)",
        {},
    ),
    "key in a shard but not in the index": (
        damage_shard(lambda s: s.update(extra=torch.zeros(2)), index_too=False, shard=SHARD),
        SHARD,
        "extra",
        {},
    ),
    "missing key": (
        drop_tensor("language_model.lm_head.weight"),
        "model.safetensors.index.json",
        "language_model.lm_head.weight",
        {},
    ),
    "shard file missing": (
        lambda f: (f / "model-00003-of-00003.safetensors").unlink(),
        "model-00003-of-00003.safetensors",
        "listed",
        {},
    ),
    "statistics without q99": (
        damage_json("dataset_statistics.json", lambda d: d[STATS_KEY]["action"].pop("q99")),
        "dataset_statistics.json",
        f"{STATS_KEY}.action.q99",
        {},
    ),
    "more bins than the vocabulary": (
        damage_json("config.json", lambda d: d.update(n_action_bins=40000)),
        "config.json",
        "n_action_bins",
        {},
    ),
    "not an OpenVLA config": (
        damage_json("config.json", lambda d: d.update(model_type="llama")),
        "config.json",
        "model_type",
        {},
    ),
    "no tokenizer": (lambda f: (f / "tokenizer.json").unlink(), "tokenizer.json", "missing", {}),
    "no preprocessor config": (
        lambda f: (f / "preprocessor_config.json").unlink(),
        "preprocessor_config.json",
        "missing",
        {},
    ),
}


@pytest.mark.parametrize("reader", [load_openvla, check_openvla_folder], ids=["load", "check"])
@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_folder_that_does_not_match_is_refused_naming_file_and_key(case: str, reader, copy: Path) -> None:
    """Loading refuses it, and so does the check a run makes before it starts (which reads no weights)."""
    assert_refused(reader, copy, REFUSALS[case])


def test_shard_headers_are_checked_before_any_weight_is_read(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shape mismatch in one shard's header is refused before a single tensor of any shard is read."""
    import safetensors

    damage_shard(lambda s: s.update({k: torch.zeros(3) for k in list(s)[:1]}), shard=SHARD)(copy)
    reads: list[str] = []
    real_open = safetensors.safe_open

    class Recording:
        def __init__(self, path: str, **kwargs: object) -> None:
            self.handle = real_open(path, **kwargs)

        def __enter__(self):
            file = self.handle.__enter__()
            real_get = file.get_tensor

            class File:
                keys = file.keys
                get_slice = file.get_slice

                @staticmethod
                def get_tensor(key: str) -> torch.Tensor:
                    reads.append(key)
                    return real_get(key)

            return File

        def __exit__(self, *args: object) -> None:
            self.handle.__exit__(*args)

    monkeypatch.setattr("ript_fast.policies.openvla_oft.loader.safe_open", Recording)
    with pytest.raises(FolderError, match=SHARD):
        load_openvla(copy)
    assert reads == []


def test_the_folders_python_files_are_never_imported(copy: Path, tmp_path: Path) -> None:
    """config.json's auto_map names the folder's modeling code; loading, the run check and reading the folder as an
    eval checkpoint import none of it."""
    from ript_fast.train.checkpoint import read_checkpoint_meta

    marker = tmp_path / "IMPORTED"
    for name in ("modeling_prismatic.py", "configuration_prismatic.py", "processing_prismatic.py"):
        (copy / name).write_text(f"open({str(marker)!r}, 'w')\n")
    assert "auto_map" in json.loads((copy / "config.json").read_text())
    load_openvla(copy)
    check_openvla_folder(copy)
    assert read_checkpoint_meta(copy)["family"] == "openvla"
    assert not marker.exists()
