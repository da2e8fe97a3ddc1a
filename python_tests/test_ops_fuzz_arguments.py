"""Hypothesis fuzzing of every public op with arbitrary, mostly wrong, arguments (shapes, dtypes, and values:
negative masks, inf, NaN): each call either returns a result of the documented shape or raises ValueError /
TypeError / IndexError naming an argument. Never a crash, a hang or a silent wrong shape. (test_ops_value_checks.py
says exactly which values must raise.)"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ript_fast import ops

ERRORS = (ValueError, TypeError, IndexError)
ARGUMENTS = ("logits", "tokens", "mask", "temperature", "logp_new", "logp_old", "advantages", "rewards", "clip_eps")
ARGUMENTS += ("mean", "log_std", "loc", "log_scale", "actions", "reduction", "clip_eps_high")
ARGUMENTS += ("hidden", "weight", "bias")

dims = st.integers(0, 5)
shapes = st.lists(dims, min_size=0, max_size=4).map(tuple)
dtypes = st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.int32, torch.bool])


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    shape, dtype = draw(shapes), draw(dtypes)
    scale = draw(st.sampled_from([1.0, 1e4, float("inf"), float("nan")]))  # inf/nan: the value checks
    if dtype.is_floating_point:
        return torch.randn(shape, dtype=torch.float64).mul(scale).to(dtype)
    if dtype == torch.bool:
        return torch.rand(shape) > 0.5
    return torch.randint(-2, 8, shape, dtype=dtype)


def check(call, out_shape: tuple[int, ...] | None) -> None:
    try:
        out = call()
    except ERRORS as err:
        assert any(name in str(err) for name in ARGUMENTS), f"error names no argument: {err}"
        return
    result = out[0] if isinstance(out, tuple) else out
    if out_shape is not None:
        assert tuple(result.shape) == out_shape


@settings(max_examples=150, deadline=None)
@given(logits=tensors(), tokens=tensors(), mask=st.one_of(st.none(), tensors()), t=st.floats(-1, 3))
def test_categorical_logprob_any_arguments(logits, tokens, mask, t) -> None:
    b = logits.shape[0] if logits.dim() == 3 else -1
    check(lambda: ops.categorical_logprob(logits, tokens, mask, temperature=t), (b,) if b >= 0 else None)


@settings(max_examples=150, deadline=None)
@given(logits=tensors(), tokens=tensors(), old=tensors(), adv=tensors(), eps=st.floats(-0.5, 1.5))
def test_categorical_ppo_loss_any_arguments(logits, tokens, old, adv, eps) -> None:
    check(lambda: ops.categorical_ppo_loss(logits, tokens, old, adv, clip_eps=eps), ())


@settings(max_examples=150, deadline=None)
@given(hidden=tensors(), weight=tensors(), tokens=tensors(), mask=st.one_of(st.none(), tensors()), bias=tensors())
def test_linear_categorical_logprob_any_arguments(hidden, weight, tokens, mask, bias) -> None:
    b = hidden.shape[0] if hidden.dim() == 3 else -1
    check(lambda: ops.linear_categorical_logprob(hidden, weight, tokens, mask), (b,) if b >= 0 else None)
    check(lambda: ops.linear_categorical_logprob(hidden, weight, tokens, mask, bias=bias), (b,) if b >= 0 else None)


@settings(max_examples=150, deadline=None)
@given(hidden=tensors(), weight=tensors(), tokens=tensors(), old=tensors(), adv=tensors(), eps=st.floats(-0.5, 1.5))
def test_linear_categorical_ppo_loss_any_arguments(hidden, weight, tokens, old, adv, eps) -> None:
    check(lambda: ops.linear_categorical_ppo_loss(hidden, weight, tokens, old, adv, clip_eps=eps), ())


@settings(max_examples=150, deadline=None)
@given(new=tensors(), old=tensors(), adv=tensors(), mask=st.one_of(st.none(), tensors()), eps=st.floats(-0.5, 1.5))
def test_ppo_clip_loss_any_arguments(new, old, adv, mask, eps) -> None:
    check(lambda: ops.ppo_clip_loss(new, old, adv, clip_eps=eps, mask=mask), ())


@settings(max_examples=150, deadline=None)
@given(mean=tensors(), scale=tensors(), actions=tensors(), mask=st.one_of(st.none(), tensors()))
def test_continuous_logprobs_any_arguments(mean, scale, actions, mask) -> None:
    b = mean.shape[0] if mean.dim() == 3 else -1
    for op in (ops.gaussian_logprob, ops.laplace_logprob):
        check(lambda op=op: op(mean, scale, actions, mask), (b,) if b >= 0 else None)


@settings(max_examples=150, deadline=None)
@given(rewards=tensors())
def test_group_ops_any_arguments(rewards) -> None:
    check(lambda: ops.rloo_advantage(rewards), tuple(rewards.shape))
    check(lambda: ops.informative_groups(rewards), tuple(rewards.shape[:1]))
