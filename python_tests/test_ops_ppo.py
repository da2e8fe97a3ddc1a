"""ppo_clip_loss against the float64 reference of Eq. 6 at both ratio levels, with its statistics."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from python_tests.conftest import DEVICES
from python_tests.ops_reference import ppo_clip_loss_ref
from ript_fast import ops


def make_batch(
    shape: tuple[int, ...], device: str, dtype: torch.dtype = torch.float64, spread: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logp_old = (torch.randn(shape, dtype=torch.float64) - 3).to(device)
    logp_new = (logp_old + torch.randn(shape, dtype=torch.float64, device=device) * spread).to(dtype)
    advantages = torch.randn(shape[0], dtype=torch.float64, device=device)
    return logp_new, logp_old, advantages


def check_against_reference(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor | None = None,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
) -> None:
    ours = logp_new.detach().clone().requires_grad_()
    theirs = logp_new.detach().double().requires_grad_()
    loss, *stats = ops.ppo_clip_loss(ours, logp_old, advantages, clip_eps, clip_eps_high, True, mask=mask)
    loss_ref, stats_ref = ppo_clip_loss_ref(theirs, logp_old, advantages, clip_eps, clip_eps_high, mask)
    tol = {} if logp_new.dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(loss.double(), loss_ref, **tol)
    for got, expected in zip(stats, stats_ref, strict=True):
        assert not got.requires_grad and got.dim() == 0
        torch.testing.assert_close(got.double(), expected, **tol)
    loss.backward()
    loss_ref.backward()
    assert ours.grad is not None and ours.grad.dtype == logp_new.dtype
    torch.testing.assert_close(ours.grad.double(), theirs.grad, **tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("clip", [(0.2, None), (0.1, 0.1), (0.2, 0.28)])
def test_sequence_level(device: str, dtype: torch.dtype, clip: tuple[float, float | None]) -> None:
    check_against_reference(*make_batch((160,), device, dtype), clip_eps=clip[0], clip_eps_high=clip[1])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mask", ["none", "bool", "float"])
def test_token_level(device: str, dtype: torch.dtype, mask: str) -> None:
    logp_new, logp_old, advantages = make_batch((16, 60), device, dtype)
    m = {
        "none": None,
        "bool": torch.rand(16, 60, device=device) > 0.4,
        "float": torch.rand(16, 60, device=device),
    }[mask]
    check_against_reference(logp_new, logp_old, advantages, m, 0.2, 0.28)


@pytest.mark.parametrize("device", DEVICES)
def test_sequence_mask_drops_rollouts(device: str) -> None:
    logp_new, logp_old, advantages = make_batch((8,), device)
    mask = torch.tensor([True] * 6 + [False] * 2, device=device)
    logp_new[6:] = float("nan")  # padding copies are never read
    check_against_reference(logp_new, logp_old, advantages, mask)
    loss = ops.ppo_clip_loss(logp_new[:6], logp_old[:6], advantages[:6])
    torch.testing.assert_close(ops.ppo_clip_loss(logp_new, logp_old, advantages, mask=mask), loss)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device: str) -> None:
    logp_new, logp_old, advantages = make_batch((6, 5), device, spread=0.5)
    mask = torch.rand(6, 5, device=device)
    x = logp_new.requires_grad_()
    assert torch.autograd.gradcheck(lambda z: ops.ppo_clip_loss(z, logp_old, advantages, 0.2, 0.3, mask=mask), (x,))
    seq_new, seq_old, seq_adv = make_batch((9,), device, spread=0.5)
    y = seq_new.requires_grad_()
    assert torch.autograd.gradcheck(lambda z: ops.ppo_clip_loss(z, seq_old, seq_adv), (y,))


@pytest.mark.parametrize("device", DEVICES)
def test_extreme_log_ratios_stay_finite(device: str) -> None:
    inf = float("inf")
    logp_new = torch.tensor([0.0, -1e4, 1e4, -inf, -3.0, 50.0], device=device, requires_grad=True)
    logp_old = torch.tensor([1e4, 0.0, -1e4, -2.0, -inf, 0.0], device=device)
    advantages = torch.tensor([1.0, -1.0, -1.0, 1.0, -1.0, -0.5], device=device)
    loss, *stats = ops.ppo_clip_loss(logp_new, logp_old, advantages, return_stats=True)
    assert torch.isfinite(loss) and all(torch.isfinite(s) for s in stats)
    loss.backward()
    assert logp_new.grad is not None and torch.isfinite(logp_new.grad).all()
    check_against_reference(logp_new.detach().double(), logp_old.double(), advantages.double())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_logp_new(device: str, dtype: torch.dtype) -> None:
    logp_new, logp_old, advantages = make_batch((4, 30), device, dtype)
    loss = ops.ppo_clip_loss(logp_new, logp_old, advantages)
    assert loss.dtype == torch.float32
    expected = ppo_clip_loss_ref(logp_new, logp_old, advantages)[0]
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_and_all_masked(device: str) -> None:
    empty = torch.zeros(0, device=device, requires_grad=True)
    loss, *stats = ops.ppo_clip_loss(empty, empty.detach(), empty.detach(), return_stats=True)
    assert loss.item() == 0 and all(s.item() == 0 for s in stats)
    loss.backward()
    logp_new, logp_old, advantages = make_batch((3, 4), device)
    logp_new.requires_grad_()
    loss = ops.ppo_clip_loss(logp_new, logp_old, advantages, mask=torch.zeros(3, 4, dtype=torch.bool, device=device))
    loss.backward()
    assert loss.item() == 0 and logp_new.grad is not None and (logp_new.grad == 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous(device: str) -> None:
    logp_new, logp_old, advantages = make_batch((30, 8), device)
    check_against_reference(logp_new.t().contiguous().t(), logp_old.t().contiguous().t(), advantages, None)
    check_against_reference(logp_new[:, ::2], logp_old[:, ::2], advantages.expand(2, 30)[0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"logp_new": torch.zeros(2, 3, 4)}, ValueError, "logp_new must have shape"),
        ({"logp_new": torch.zeros(4, dtype=torch.int64)}, TypeError, "logp_new must be float"),
        ({"logp_old": torch.zeros(5)}, ValueError, "logp_old must have shape"),
        ({"logp_old": torch.zeros(4, dtype=torch.int32)}, TypeError, "logp_old must be float"),
        ({"advantages": torch.zeros(3)}, ValueError, "advantages must have shape"),
        ({"advantages": "a"}, TypeError, "advantages must be a torch.Tensor"),
        ({"mask": torch.ones(3, dtype=torch.bool)}, ValueError, "mask must have shape"),
        ({"clip_eps": 0.0}, ValueError, "clip_eps must be finite and > 0"),
        ({"clip_eps": -0.1}, ValueError, "clip_eps must be finite and > 0"),
        ({"clip_eps_high": float("inf")}, ValueError, "clip_eps_high must be finite and > 0"),
        ({"clip_eps": "0.2"}, TypeError, "clip_eps must be a float"),
    ],
)
def test_bad_input(kwargs: dict, error: type[Exception], match: str) -> None:
    args = {"logp_new": torch.zeros(4), "logp_old": torch.zeros(4), "advantages": torch.zeros(4), **kwargs}
    with pytest.raises(error, match=match):
        ops.ppo_clip_loss(**args)


def test_core_validates_on_its_own() -> None:
    from ript_fast._core import _C
    from ript_fast.ops._buffers import ref

    x = torch.zeros(4)
    loss, stats = torch.empty(()), torch.empty(3)
    with pytest.raises(ValueError, match="clip_eps"):
        _C.cpu.ppo_clip_loss(ref(x), ref(x), ref(x), None, 0.0, 0.2, ref(loss), ref(stats), None)
    with pytest.raises(ValueError, match="logp_old: shape differs"):
        _C.cpu.ppo_clip_loss(ref(x), ref(torch.zeros(5)), ref(x), None, 0.2, 0.2, ref(loss), ref(stats), None)
    with pytest.raises(ValueError, match="stats: size"):
        _C.cpu.ppo_clip_loss(ref(x), ref(x), ref(x), None, 0.2, 0.2, ref(loss), ref(torch.empty(2)), None)


@settings(max_examples=50, deadline=None)
@given(
    b=st.integers(1, 12),
    t=st.sampled_from([None, 1, 5, 17]),
    spread=st.sampled_from([0.01, 0.3, 3.0, 100.0]),
    clip=st.tuples(st.floats(0.01, 0.9), st.one_of(st.none(), st.floats(0.01, 2.0))),
    mask=st.booleans(),
)
def test_fuzz(b: int, t: int | None, spread: float, clip: tuple[float, float | None], mask: bool) -> None:
    shape = (b,) if t is None else (b, t)
    logp_new, logp_old, advantages = make_batch(shape, "cpu", spread=spread)
    m = torch.rand(shape) > 0.3 if mask else None
    check_against_reference(logp_new, logp_old, advantages, m, *clip)


def test_double_backward_is_refused() -> None:
    logp_new, logp_old, advantages = make_batch((5,), "cpu")
    x = logp_new.requires_grad_()
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(ops.ppo_clip_loss(x, logp_old, advantages), x, create_graph=True)


def test_return_stats_is_a_named_loss_tuple() -> None:
    logp_new, logp_old, advantages = make_batch((4, 3), "cpu")
    result = ops.ppo_clip_loss(logp_new.requires_grad_(), logp_old, advantages, return_stats=True)
    assert isinstance(result, ops.PPOLoss)
    loss, clip_fraction, approx_kl, mean_ratio = result
    assert result.approx_kl is approx_kl and result.mean_ratio is mean_ratio
    assert loss.requires_grad and not any(s.requires_grad for s in (clip_fraction, approx_kl, mean_ratio))
    torch.testing.assert_close(loss, ops.ppo_clip_loss(logp_new, logp_old, advantages))
