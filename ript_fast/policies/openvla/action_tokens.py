"""OpenVLA's action tokens: each normalized action dimension is one of `n_bins` tokens at the end of the vocabulary.

As the official `ActionTokenizer` and `predict_action` define them: `n_bins` uniform edges over [-1, 1]
(`linspace(-1, 1, n_bins)`) and the `n_bins - 1` midpoints as bin centers. Encoding clips to [-1, 1], digitizes
against the edges (an index in [1, n_bins]) and takes token `vocab_size - index`, where `vocab_size` is the Llama
vocabulary without the padding rows (`text_config.vocab_size - pad_to_multiple_of` = 32000): the last `n_bins` ids
of it. Decoding maps token t to center `clip(vocab_size - t - 1, 0, n_bins - 2)`, so the two lowest ids share the
last center.

Here a token is held as its bin `b = t - (vocab_size - n_bins)` in [0, n_bins): the index of its row among the LM
head's action rows, which is what the policy samples and scores over (no logit of any other token is computed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ActionBins:
    vocab_size: int = 32000  # the tokenizer's vocabulary: the LM's rows less the padding to a multiple of 64
    n_bins: int = 256

    @property
    def first_token(self) -> int:
        """The vocabulary id of bin 0 (31744 for OpenVLA)."""
        return self.vocab_size - self.n_bins

    @property
    def centers(self) -> np.ndarray:
        edges = np.linspace(-1, 1, self.n_bins)
        return (edges[:-1] + edges[1:]) / 2.0

    def to_normalized(self, bins: np.ndarray) -> np.ndarray:
        """Bins (...) int -> normalized actions (...) float64 at the bin centers (official decoding)."""
        index = np.clip(self.n_bins - 1 - np.asarray(bins, dtype=np.int64), 0, self.n_bins - 2)
        return self.centers[index]

    def from_normalized(self, actions: np.ndarray) -> np.ndarray:
        """Normalized actions (...) -> bins (...) int64 (official encoding: clip, digitize against the edges)."""
        edges = np.linspace(-1, 1, self.n_bins)
        index = np.digitize(np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0), edges)
        return (self.n_bins - index).astype(np.int64)
