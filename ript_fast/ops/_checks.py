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

    Weights must be finite and >= 0 (a bool mask is 0/1); positions with weight 0 are never read. Their values
    are checked in the ops' kernels (`check_weight_values`), not here: a data-dependent check would break tracing.
    """
    if mask is None:
        return None
    mask = check_tensor("mask", mask)
    if mask.dtype != torch.bool and mask.dtype not in FLOATING:
        raise TypeError(f"mask must be bool or floating, got {mask.dtype}")
    check_shape("mask", mask, shape, layout)
    return mask.detach().to(dtype)


# Value checks. They read tensor values, so they run in the ops' real kernels (never in the fake kernels that
# torch.compile traces): eagerly and inside compiled graphs alike. One min/max reduction per tensor is the whole
# cost on the common path (on CUDA, with one sync to read it back); only a tensor that fails it is looked at
# again, restricted to what the kernel reads.


def check_weight_values(weights: torch.Tensor | None) -> None:
    """Mask weights must be finite and >= 0. A negative weight flips its term's sign and can cancel the sum of
    weights that normalises the PPO mean (a loss of 0, or any value); NaN or inf poisons every sum. Fractional
    weights are meant: the trainer averages tokens per rollout with weights 1 / (the rollout's valid tokens)."""
    if weights is None:
        return
    extremes = _extremes(weights)
    if extremes is None:
        return
    lo, hi = extremes
    if not (lo >= 0 and hi < math.inf):  # False for NaN too
        raise ValueError(f"mask must hold finite weights >= 0 (e.g. 0/1), got {_offender(lo, hi, allow_neg_inf=False)}")


def check_finite(name: str, values: torch.Tensor) -> None:
    """`values` must hold no NaN or inf (every element is read), e.g. rewards: a NaN reward makes its whole group's
    advantages NaN and passes the informative-group test (NaN != NaN)."""
    _check_read_values(name, values, None, allow_neg_inf=False)


def check_ppo_targets(logp_old: torch.Tensor, advantages: torch.Tensor, weights: torch.Tensor | None) -> None:
    """The PPO kernels' constants, checked where the kernels read them (a position, or a rollout, with a weight
    != 0); masked padding may hold anything. A NaN or inf advantage, or a NaN logp_old, makes the loss and the
    gradient of every parameter NaN; +inf is no log-probability (-inf is: the log-ratio clamp keeps it finite)."""
    check_weight_values(weights)
    _check_read_values("advantages", advantages, weights, allow_neg_inf=False)
    _check_read_values("logp_old", logp_old, weights, allow_neg_inf=True)


def _check_read_values(name: str, values: torch.Tensor, weights: torch.Tensor | None, allow_neg_inf: bool) -> None:
    extremes = _extremes(values)
    if extremes is None or _allowed(*extremes, allow_neg_inf):
        return
    where = ""
    if weights is not None:
        extremes = _extremes(values[_read_by(weights, values.dim())])
        if extremes is None or _allowed(*extremes, allow_neg_inf):
            return
        where = " where the mask is non-zero"
    what = "finite or -inf log-probabilities" if allow_neg_inf else "finite"
    raise ValueError(f"{name} must be {what}{where}, got {_offender(*extremes, allow_neg_inf=allow_neg_inf)}")


def _read_by(weights: torch.Tensor, ndim: int) -> torch.Tensor:
    """Which elements of a (B,) or (B, T) tensor the kernels read under (B,) or (B, T) weights: those whose
    weight is non-zero; for a per-rollout value (B,) under (B, T) weights, rollouts with any such token."""
    read = weights != 0
    while read.dim() > ndim:
        read = read.any(dim=-1)
    return read


def _extremes(t: torch.Tensor) -> tuple[float, float] | None:
    """(min, max) of `t`, both NaN when it holds a NaN; None when there is nothing to check: an empty tensor, a
    CUDA stream being captured into a graph (reading a value back would break the capture), or a device the
    kernels do not run on (their launch names it)."""
    if t.numel() == 0 or t.device.type not in ("cpu", "cuda"):
        return None
    if t.is_cuda and torch.cuda.is_current_stream_capturing():
        return None
    lo, hi = torch.aminmax(t)
    if t.is_cuda:  # one device-to-host copy (a sync) rather than two
        lo, hi = torch.stack((lo, hi)).tolist()
        return lo, hi
    return float(lo), float(hi)


def _allowed(lo: float, hi: float, allow_neg_inf: bool) -> bool:
    """Whether a tensor with these extremes is finite (or finite and -inf); False when it holds a NaN."""
    return hi < math.inf and (allow_neg_inf or lo > -math.inf)


def _offender(lo: float, hi: float, allow_neg_inf: bool) -> str:
    """The value that failed a check, as the error shows it."""
    if math.isnan(lo) or math.isnan(hi):
        return "NaN"
    if hi == math.inf:
        return "inf"
    if lo == -math.inf and not allow_neg_inf:
        return "-inf"
    return f"{lo:g}"  # a negative weight


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
