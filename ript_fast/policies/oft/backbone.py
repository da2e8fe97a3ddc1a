"""The language backbone of the OFT-style policy: a Hugging Face causal LM from a local folder, with LoRA.

`from_pretrained` reads a local folder only (no hub access at run time: set the path to a downloaded
model, e.g. a Llama-2 or OpenVLA LLM folder). PEFT LoRA adapts it (rank, alpha = min(rank, 16), dropout 0,
`target_modules="all-linear"`, gaussian init: the released OFT-RIPT settings); the base weights stay frozen.
The policy runs the LM's decoder stack on `inputs_embeds` and reads hidden states, never the vocab head.

The folder may come from anyone, so loading it runs none of its code: no `trust_remote_code` modules, and
`.bin` weights are read with `weights_only=True` (tensors only: a pickle naming anything else is refused,
before any of its objects is built, with a CheckpointError naming the folder).

Instructions are tokenized by the folder's tokenizer when it has one. Without one (a bare config +
weights folder, as the tests make) a byte-level fallback maps each UTF-8 byte b to token id b % vocab_size,
which keeps instructions distinguishable without any vocabulary file.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ript_fast.policies.oft.config import OftConfig

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.txt")


def load_backbone(cfg: OftConfig) -> nn.Module:
    """The causal LM of `cfg.backbone_path` wrapped with LoRA adapters (only those are trainable)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    path = Path(cfg.backbone_path)
    if not cfg.backbone_path or not (path / "config.json").is_file():
        raise FileNotFoundError(f"policy.oft.backbone_path {cfg.backbone_path!r} is not a folder with a config.json")
    dtype = torch.bfloat16 if cfg.backbone_dtype == "bfloat16" else torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=dtype, local_files_only=True, trust_remote_code=False, weights_only=True
        )
    except pickle.UnpicklingError:
        from ript_fast.train.checkpoint import CheckpointError  # here: train.checkpoint imports the policies

        raise CheckpointError(
            f"policy.oft.backbone_path {path}: a weights file of it holds more than tensors (a pickle that could "
            "run code); refused"
        ) from None
    targets: str | list[str] = "all-linear" if cfg.lora_targets == ["all-linear"] else list(cfg.lora_targets)
    lora = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha if cfg.lora_alpha is not None else min(cfg.lora_rank, 16),
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        init_lora_weights="gaussian",
    )
    return get_peft_model(model, lora)


def decoder_of(backbone: nn.Module) -> nn.Module:
    """The LM's transformer stack (LoRA layers are injected in place, so they run)."""
    return backbone.get_base_model().get_decoder()  # type: ignore[operator]


class InstructionTokenizer:
    """Instruction strings -> fixed-length (n, max_tokens) ids and mask (right-padded), cached per string."""

    def __init__(self, path: str, vocab_size: int, max_tokens: int) -> None:
        self.vocab_size = vocab_size
        self.max_tokens = max_tokens
        self._hf: Any = None
        if any((Path(path) / name).is_file() for name in _TOKENIZER_FILES):
            from transformers import AutoTokenizer

            self._hf = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        self._cache: dict[str, list[int]] = {}

    @property
    def is_byte_fallback(self) -> bool:
        return self._hf is None

    def ids(self, text: str) -> list[int]:
        if text not in self._cache:
            raw = self._hf(text)["input_ids"] if self._hf is not None else [b % self.vocab_size for b in text.encode()]
            self._cache[text] = list(raw)[: self.max_tokens]
        return self._cache[text]

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.zeros(len(texts), self.max_tokens, dtype=torch.int64)
        mask = torch.zeros(len(texts), self.max_tokens, dtype=torch.bool)
        for row, text in enumerate(texts):
            tokens = self.ids(text)
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.int64)
            mask[row, : len(tokens)] = True
        return ids, mask
