"""gaussian_logprob / laplace_logprob against the closed-form float64 densities of Sec. 4.3."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from python_tests.conftest import DEVICES
from python_tests.ops_reference import gaussian_logprob_ref, laplace_logprob_ref
from ript_fast import ops

FAMILIES = [
    pytest.param(ops.gaussian_logprob, gaussian_logprob_ref, id="gaussian"),
    pytest.param(ops.laplace_logprob, laplace_logprob_ref, id="laplace"),
]
Op = Callable[..., torch.Tensor]


def make_inputs(
    b: int, t: int, d: int, device: str, dtype: torch.dtype = torch.float64, scale_shape: str = "full"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean = torch.randn(b, t, d, dtype=torch.float64).to(device=device, dtype=dtype)
    shape = {"full": (b, t, d), "dims": (d,), "steps": (t, d)}[scale_shape]
    log_scale = (torch.randn(shape, dtype=torch.float64) * 0.5 - 1).to(device=device, dtype=dtype)
    actions = (mean.double() + torch.randn(b, t, d, dtype=torch.float64, device=device) * 0.3).to(dtype)
    return mean, log_scale, actions


def make_mask(b: int, t: int, device: str, kind: str) -> torch.Tensor | None:
    if kind == "bool":
        return torch.rand(b, t, device=device) > 0.3
    if kind == "float":
        return torch.rand(b, t, device=device)
    return None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("op", "reference"), FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale_shape", ["full", "dims", "steps"])
@pytest.mark.parametrize("mask", ["none", "bool", "float"])
def test_matches_reference(device: str, op: Op, reference: Op, dtype: torch.dtype, scale_shape: str, mask: str) -> None:
    mean, log_scale, actions = make_inputs(192, 8, 7, device, dtype, scale_shape)
    m = make_mask(192, 8, device, mask)
    got = op(mean, log_scale, actions, m)
    assert got.shape == (192,) and got.dtype == dtype
    torch.testing.assert_close(got.double(), reference(mean, log_scale, actions, m), rtol=1e-5, atol=1e-4)
    per_step = op(mean, log_scale, actions, m, reduction="none")
    assert per_step.shape == (192, 8)
    torch.testing.assert_close(per_step.double(), reference(mean, log_scale, actions, m, "none"), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("op", "reference"), FAMILIES)
@pytest.mark.parametrize("scale_shape", ["full", "dims"])
def test_gradcheck(device: str, op: Op, reference: Op, scale_shape: str) -> None:
    mean, log_scale, actions = make_inputs(3, 2, 4, device, scale_shape=scale_shape)
    mask = make_mask(3, 2, device, "float")
    inputs = tuple(z.requires_grad_() for z in (mean, log_scale, actions))
    assert torch.autograd.gradcheck(lambda m, s, a: op(m, s, a, mask), inputs)
    assert torch.autograd.gradcheck(lambda m, s, a: op(m, s, a, None, reduction="none"), inputs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("op", "reference"), FAMILIES)
def test_gradients_match_reference(device: str, op: Op, reference: Op) -> None:
    mean, log_scale, actions = make_inputs(16, 8, 7, device, scale_shape="dims")
    mask = make_mask(16, 8, device, "bool")
    ours = [z.clone().requires_grad_() for z in (mean, log_scale, actions)]
    theirs = [z.clone().requires_grad_() for z in (mean, log_scale, actions)]
    op(*ours, mask).sum().backward()
    reference(*theirs, mask).sum().backward()
    for a, b in zip(ours, theirs, strict=True):
        assert a.grad is not None and a.grad.shape == a.shape
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("device", DEVICES)
def test_laplace_subgradient_zero_at_the_mode(device: str) -> None:
    loc = torch.randn(2, 3, 4, dtype=torch.float64, device=device, requires_grad=True)
    log_scale = torch.zeros(4, dtype=torch.float64, device=device, requires_grad=True)
    actions = loc.detach().clone()
    ops.laplace_logprob(loc, log_scale, actions).sum().backward()
    assert loc.grad is not None and (loc.grad == 0).all()
    assert log_scale.grad is not None
    torch.testing.assert_close(log_scale.grad, torch.full_like(log_scale, -6.0))  # d/ds (-s) summed over B T


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("op", "reference"), FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs(device: str, op: Op, reference: Op, dtype: torch.dtype) -> None:
    mean, log_scale, actions = make_inputs(32, 8, 7, device, dtype, "dims")
    got = op(mean, log_scale, actions)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), reference(mean, log_scale, actions), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("op", "reference"), FAMILIES)
def test_non_contiguous_and_promotion(device: str, op: Op, reference: Op) -> None:
    mean = torch.randn(7, 8, 5, dtype=torch.float64, device=device).permute(1, 2, 0)  # (8, 5, 7)
    log_scale = torch.randn(14, dtype=torch.float32, device=device)[::2]  # (7,), stride 2, float32
    actions = torch.randn(8, 5, 7, dtype=torch.float32, device=device)  # promoted to float64
    mask = (torch.rand(5, 8, device=device) > 0.5).t()
    got = op(mean, log_scale, actions, mask)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, reference(mean, log_scale, actions, mask))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("op", "reference"), FAMILIES)
def test_masked_rows_are_never_read(device: str, op: Op, reference: Op) -> None:
    mean, log_scale, actions = make_inputs(2, 3, 4, device)
    mask = torch.tensor([[True, False, True], [False, True, True]], device=device)
    mean[~mask] = float("nan")
    mean.requires_grad_()
    got = op(mean, log_scale, actions, mask)
    assert torch.isfinite(got).all()
    got.sum().backward()
    assert mean.grad is not None and torch.isfinite(mean.grad).all() and (mean.grad[~mask] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("op", "reference"), FAMILIES)
def test_empty_and_single(device: str, op: Op, reference: Op) -> None:
    for shape in [(0, 8, 7), (1, 1, 1)]:
        mean, log_scale, actions = make_inputs(*shape, device)
        mean.requires_grad_()
        got = op(mean, log_scale, actions)
        assert got.shape == (shape[0],)
        torch.testing.assert_close(got, reference(mean, log_scale, actions))
        got.sum().backward()
        assert mean.grad is not None and mean.grad.shape == mean.shape


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mean": torch.zeros(2, 3)}, ValueError, "mean must have shape"),
        ({"mean": torch.zeros(2, 3, 4, dtype=torch.int64)}, TypeError, "mean must be float"),
        ({"log_std": torch.zeros(5)}, ValueError, "log_std of shape"),
        ({"log_std": torch.zeros(1, 1, 3, 4)}, ValueError, "log_std of shape"),
        ({"actions": torch.zeros(2, 3, 5)}, ValueError, "actions must have shape"),
        ({"mask": torch.ones(2, 4, dtype=torch.bool)}, ValueError, "mask must have shape"),
        ({"reduction": "mean"}, ValueError, "reduction must be"),
        ({"actions": None}, TypeError, "actions must be a torch.Tensor"),
    ],
)
def test_bad_input(kwargs: dict, error: type[Exception], match: str) -> None:
    args = {"mean": torch.zeros(2, 3, 4), "log_std": torch.zeros(4), "actions": torch.zeros(2, 3, 4), **kwargs}
    with pytest.raises(error, match=match):
        ops.gaussian_logprob(**args)


def test_laplace_names_its_arguments() -> None:
    with pytest.raises(ValueError, match="log_scale of shape"):
        ops.laplace_logprob(torch.zeros(2, 3, 4), torch.zeros(3), torch.zeros(2, 3, 4))
    with pytest.raises(TypeError, match=r"loc must be a torch\.Tensor"):
        ops.laplace_logprob(1.0, torch.zeros(4), torch.zeros(2, 3, 4))  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 5),
    t=st.integers(1, 9),
    d=st.integers(1, 8),
    family=st.sampled_from(["gaussian", "laplace"]),
    scale_shape=st.sampled_from(["full", "dims", "steps"]),
    mask=st.sampled_from(["none", "bool", "float"]),
)
def test_fuzz(b: int, t: int, d: int, family: str, scale_shape: str, mask: str) -> None:
    op, reference = (
        (ops.gaussian_logprob, gaussian_logprob_ref)
        if family == "gaussian"
        else (ops.laplace_logprob, laplace_logprob_ref)
    )
    mean, log_scale, actions = make_inputs(b, t, d, "cpu", scale_shape=scale_shape)
    m = make_mask(b, t, "cpu", mask)
    ours = [z.clone().requires_grad_() for z in (mean, log_scale)]
    theirs = [z.clone().requires_grad_() for z in (mean, log_scale)]
    got, expected = op(*ours, actions, m), reference(*theirs, actions, m)
    torch.testing.assert_close(got, expected)
    got.sum().backward()
    expected.sum().backward()
    for a, c in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.grad, c.grad)


@pytest.mark.parametrize(("op", "reference"), FAMILIES)
def test_double_backward_is_refused(op: Op, reference: Op) -> None:
    mean, log_scale, actions = make_inputs(2, 3, 4, "cpu")
    mean.requires_grad_()
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(op(mean, log_scale, actions).sum(), mean, create_graph=True)


def test_no_gradient_buffers_without_grad() -> None:
    """The forward computes the (B, T, D) gradients only when an input requires grad and grad mode is on."""
    module = sys.modules["ript_fast.ops.continuous_logprob"]
    mean, log_scale, actions = make_inputs(2, 3, 4, "cpu")
    logp, grad_mean, grad_log_scale = module._continuous_logprob("gaussian", mean, log_scale, actions, None, False)
    assert grad_mean.numel() == 0 and grad_log_scale.numel() == 0
    torch.testing.assert_close(logp.sum(1), ops.gaussian_logprob(mean, log_scale, actions))
    with torch.no_grad():
        no_grad = ops.gaussian_logprob(mean.requires_grad_(), log_scale, actions)
    torch.testing.assert_close(no_grad, ops.gaussian_logprob(mean, log_scale, actions))
