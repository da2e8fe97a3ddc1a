"""Which contexts each collection round rolls out.

A round rolls out `contexts_per_round` groups; group g runs on env slots of one fixed task (an env slot's
model is built for its task), so each group draws its context from that task's contexts. Draws are without
replacement within a pass over a task's contexts, then reshuffled. The sampler state is checkpointed, so
a resumed run draws exactly the contexts an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class ContextSampler:
    """Indices in [0, num_contexts) without replacement, reshuffled after each full pass."""

    def __init__(self, num_contexts: int, seed: int) -> None:
        if num_contexts < 1:
            raise ValueError("the context dataset is empty")
        self.num_contexts = num_contexts
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(num_contexts)
        self._pos = 0

    def draw(self, count: int) -> np.ndarray:
        out = np.empty(count, dtype=np.int64)
        for i in range(count):
            if self._pos == self.num_contexts:
                self._order = self._rng.permutation(self.num_contexts)
                self._pos = 0
            out[i] = self._order[self._pos]
            self._pos += 1
        return out

    def state_dict(self) -> dict:
        return {"rng": self._rng.bit_generator.state, "order": self._order.tolist(), "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]
        self._order = np.asarray(state["order"], dtype=np.int64)
        self._pos = int(state["pos"])


class TaskGroupSampler:
    """Draws, for groups g = 0..count-1, a context of task `group_tasks[g]` (rows of the context dataset)."""

    def __init__(self, context_tasks: Sequence[str], group_tasks: Sequence[str], seed: int) -> None:
        tasks = np.asarray(context_tasks)
        self.group_tasks = list(group_tasks)
        missing = sorted(set(self.group_tasks) - set(tasks.tolist()))
        if missing:
            raise ValueError(f"no contexts for task(s) {missing}")
        self._rows = {t: np.flatnonzero(tasks == t) for t in dict.fromkeys(self.group_tasks)}
        self._samplers = {t: ContextSampler(len(rows), seed + i) for i, (t, rows) in enumerate(self._rows.items())}

    def draw(self, count: int) -> np.ndarray:
        if count > len(self.group_tasks):
            raise ValueError(f"a round has {len(self.group_tasks)} groups, asked for {count}")
        return np.asarray(
            [self._rows[t][self._samplers[t].draw(1)[0]] for t in self.group_tasks[:count]], dtype=np.int64
        )

    def state_dict(self) -> dict:
        return {t: s.state_dict() for t, s in self._samplers.items()}

    def load_state_dict(self, state: dict) -> None:
        for t, s in state.items():
            self._samplers[t].load_state_dict(s)
