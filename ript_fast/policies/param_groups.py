"""Optimizer param groups with the usual weight-decay split (QueST's `separate_no_decay`).

Weight decay pulls weights toward zero; on biases, norm gains and embedding tables that only hurts, so
they go into a group with weight_decay 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

_NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)


def decay_groups(
    params: Iterable[nn.Parameter], root: nn.Module, lr: float, weight_decay: float, name: str
) -> list[dict[str, Any]]:
    """Splits `params` (members of `root`) into groups `name` and `name`/no_decay, each parameter once."""
    exempt: set[int] = set()
    for module in root.modules():
        for pname, param in module.named_parameters(recurse=False):
            if isinstance(module, _NO_DECAY_MODULES) or pname.endswith("bias") or param.ndim < 2:
                exempt.add(id(param))
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for param in params:
        if id(param) not in seen:
            seen.add(id(param))
            (no_decay if id(param) in exempt else decay).append(param)
    groups = [
        {"name": name, "params": decay, "lr": lr, "weight_decay": weight_decay},
        {"name": f"{name}/no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]
