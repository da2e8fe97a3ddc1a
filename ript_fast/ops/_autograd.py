"""Helpers shared by the ops' autograd formulas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode


def first_order_only(op: str) -> None:
    """Refuses double backward: the kernels give first derivatives only, and silently returning a graph without
    the second-order terms would be wrong. (Inside a backward, grad mode is on only under create_graph=True.)"""
    if torch.is_grad_enabled():
        raise RuntimeError(f"{op}: double backward (create_graph=True) is not supported; the op is first-order only")


def scale_saved_grad(saved: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """`saved * grad` for a gradient computed during the forward, without a copy when `grad` is exactly 1.

    The usual `loss.backward()` passes 1, and returning the saved tensor itself lets autograd hand it to
    `.grad` as is: the fused losses then never hold two (B, T, V) buffers. Under torch.compile the value is not
    known while tracing (dynamo, or AOT autograd tracing the backward with functional tensors, as torch 2.11
    does), so the product is always taken there.
    """
    if grad.numel() == 1 and not _traced((grad,)) and bool(grad == 1):
        return saved
    return saved * grad


class FusedOp:
    """One op, registered as a torch.library custom op and callable eagerly without its dispatch cost.

    torch.compile needs the custom op (with its fake kernel) to trace the op as one opaque node. In eager mode,
    though, the custom op's dispatch costs tens of microseconds per call, as much as a whole small kernel (the
    continuous heads' loss takes ~0.3 ms). Eager calls therefore run the same `impl`, `setup` and `backward`
    as a plain autograd.Function (or `impl` itself for an op without autograd, e.g. a backward kernel), and
    only traced code sees the custom op. Both paths share every line that computes anything.
    """

    def __init__(
        self,
        name: str,
        impl: Callable[..., Any],
        fake: Callable[..., Any],
        setup: Callable[..., None] | None = None,
        backward: Callable[..., Any] | None = None,
    ) -> None:
        self.op = torch.library.custom_op(name, impl, mutates_args=())
        self.op.register_fake(fake)
        self._eager: Callable[..., Any] = impl
        if backward is not None:
            assert setup is not None, "an op with a backward needs its setup_context"
            self.op.register_autograd(backward, setup_context=setup)
            self._eager = _eager_function(name, impl, setup, backward).apply

    def __call__(self, *args: Any) -> Any:
        return self.op(*args) if _traced(args) else self._eager(*args)


_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)


def _traced(args: tuple) -> bool:
    """Whether anything but plain eager execution is under way: torch.compile, a dispatch mode (make_fx, fake
    or functional tracing) or a tensor subclass. Those must see the custom op."""
    if torch.compiler.is_compiling() or _get_current_dispatch_mode() is not None:
        return True
    return any(isinstance(a, torch.Tensor) and type(a) not in _PLAIN_TENSORS for a in args)


def _eager_function(
    name: str, impl: Callable[..., Any], setup: Callable[..., None], backward: Callable[..., Any]
) -> type[torch.autograd.Function]:
    """The op as an autograd.Function. Its forward calls `setup` itself (the ctx-first style): a Function with a
    separate setup_context re-binds its arguments through inspect.signature on every call, a cost this avoids."""

    def forward(ctx: torch.autograd.function.FunctionCtx, *args: Any) -> Any:
        output = impl(*args)
        setup(ctx, args, output)
        return output

    body = {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    return type(name.replace("::", "_"), (torch.autograd.Function,), body)
