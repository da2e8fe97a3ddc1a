"""How many queries one re-scoring pass may hold within a memory budget (`score_pass_memory_gb`).

Memory model of a re-scoring pass with gradients (`OpenVLAOFTPolicy._heads_in_passes`: each pass a checkpoint, so one
pass's activations are alive at a time): what its forward saves for the backward grows linearly in its number of
queries q, saved(q) = fixed + q x per_query (the frozen weights it also saves are resident anyway: not counted);
while the backward of the pass runs, the gradients of those activations come on top, at most as large, so its peak
is about 2 x saved(q). The budget picks the largest q with 2 x saved(q) <= budget.

`saved` is measured, not modelled: a probe forward of one and of two queries (without a backward) counts the bytes
of every tensor autograd saves (`torch.autograd.graph.saved_tensors_hooks`, each storage once), on whatever device
the policy runs. No allocator statistics, so it reads the same on a CPU as on a GPU, and needs no warm-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

Cond = dict[str, torch.Tensor]


def saved_bytes(fn: Callable[[Cond], Any], cond: Cond, exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the storages autograd saves for the backward of `fn(cond)`, counted once each, those of `exclude`
    (the module's parameters and buffers) left out."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn(cond)
    return sum(seen.values())


def queries_per_pass(fn: Callable[[Cond], Any], cond: Cond, budget_bytes: float, exclude: list[torch.Tensor]) -> int:
    """The most queries of `cond` one pass of `fn` may hold with 2 x saved(q) <= `budget_bytes` (at least one):
    per_query and fixed from probes of the first one and two queries (one alone when `cond` has one)."""
    total = next(iter(cond.values())).shape[0]
    one = saved_bytes(fn, _first(cond, 1), exclude)
    per_query = saved_bytes(fn, _first(cond, 2), exclude) - one if total > 1 else one
    per_query = max(per_query, 1)
    fixed = max(one - per_query, 0)
    return max(1, int((budget_bytes / 2 - fixed) // per_query))


def _first(cond: Cond, n: int) -> Cond:
    return {k: v[:n] for k, v in cond.items()}
