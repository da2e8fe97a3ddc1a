"""Argument validation shared by the public ops: every error names the offending argument."""

from __future__ import annotations

import math

import torch

FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_tensor(name: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_floating(name: str, t: torch.Tensor) -> None:
    if t.dtype not in FLOATING:
        raise TypeError(f"{name} must be float32, float64, float16 or bfloat16, got {t.dtype}")


def check_ndim(name: str, t: torch.Tensor, ndim: int, layout: str) -> None:
    if t.dim() != ndim:
        raise ValueError(f"{name} must have shape {layout}, got {tuple(t.shape)}")


def check_same_device(**tensors: torch.Tensor | None) -> None:
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"{name} on {dev}" for name, dev in devices.items())
        raise ValueError(f"all tensors must be on one device, got {listed}")


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the kernels accumulate in (and return log-probs/losses in): float64 for float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_shape(name: str, t: torch.Tensor, shape: tuple[int, ...], layout: str) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {layout} = {tuple(shape)}, got {tuple(t.shape)}")


def check_tokens(name: str, value: object, shape: tuple[int, ...]) -> torch.Tensor:
    tokens = check_tensor(name, value)
    if tokens.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be int64 or int32, got {tokens.dtype}")
    check_shape(name, tokens, shape, "(B, T)")
    return tokens


def check_weights(mask: object, shape: tuple[int, ...], dtype: torch.dtype, layout: str) -> torch.Tensor | None:
    """Validates an optional bool or floating mask and returns it as kernel weights in `dtype` (None if absent).

    Weights are meant to be >= 0 (a bool mask is 0/1); positions with weight 0 are never read.
    """
    if mask is None:
        return None
    mask = check_tensor("mask", mask)
    if mask.dtype != torch.bool and mask.dtype not in FLOATING:
        raise TypeError(f"mask must be bool or floating, got {mask.dtype}")
    check_shape("mask", mask, shape, layout)
    return mask.detach().to(dtype)


def check_positive(name: str, value: object) -> float:
    """A finite real number > 0 (bools are rejected: they are almost always a misplaced argument)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return float(value)


def check_reduction(reduction: object) -> str:
    if reduction not in ("sum", "none"):
        raise ValueError(f"reduction must be 'sum' or 'none', got {reduction!r}")
    return str(reduction)
