"""Helpers shared by the ops' autograd formulas."""

from __future__ import annotations

import torch


def first_order_only(op: str) -> None:
    """Refuses double backward: the kernels give first derivatives only, and silently returning a graph without
    the second-order terms would be wrong. (Inside a backward, grad mode is on only under create_graph=True.)"""
    if torch.is_grad_enabled():
        raise RuntimeError(f"{op}: double backward (create_graph=True) is not supported; the op is first-order only")


def scale_saved_grad(saved: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """`saved * grad` for a gradient computed during the forward, without a copy when `grad` is exactly 1.

    The usual `loss.backward()` passes 1, and returning the saved tensor itself lets autograd hand it to
    `.grad` as is: the fused losses then never hold two (B, T, V) buffers. Under torch.compile the value is not
    known while tracing, so the product is always taken there.
    """
    if not torch.compiler.is_compiling() and grad.numel() == 1 and bool(grad == 1):
        return saved
    return saved * grad
