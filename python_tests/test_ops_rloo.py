"""RLOO advantage and informative-group mask against a float64 reference written from paper Eq. 5."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from python_tests.conftest import DEVICES
from ript_fast import ops


def reference_rloo(rewards: torch.Tensor) -> torch.Tensor:
    r = rewards.double()
    k = r.shape[1]
    baseline = (r.sum(dim=1, keepdim=True) - r) / (k - 1)
    return r - baseline


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(1, 2), (3, 8), (37, 16), (1000, 5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(device: str, shape: tuple[int, int], dtype: torch.dtype) -> None:
    rewards = torch.randint(0, 2, shape, device=device).to(dtype)
    got = ops.rloo_advantage(rewards)
    assert got.dtype == dtype and got.shape == rewards.shape
    torch.testing.assert_close(got.double(), reference_rloo(rewards).to(device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_accumulate_in_float(device: str, dtype: torch.dtype) -> None:
    rewards = torch.rand(64, 16, device=device).to(dtype)
    got = ops.rloo_advantage(rewards)
    assert got.dtype == dtype
    expected = reference_rloo(rewards.float()).to(dtype)
    torch.testing.assert_close(got, expected.to(device))


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous(device: str) -> None:
    base = torch.rand(8, 20, device=device, dtype=torch.float64)
    rewards = base[:, ::2]  # stride 2 along K
    torch.testing.assert_close(ops.rloo_advantage(rewards), reference_rloo(rewards))
    transposed = torch.rand(6, 9, device=device, dtype=torch.float64).t()
    torch.testing.assert_close(ops.rloo_advantage(transposed), reference_rloo(transposed))


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device: str) -> None:
    rewards = torch.rand(5, 4, device=device, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ops.rloo_advantage, (rewards,))
    assert torch.autograd.gradgradcheck(ops.rloo_advantage, (rewards,))


@pytest.mark.parametrize("device", DEVICES)
def test_informative_groups(device: str) -> None:
    rewards = torch.tensor([[0.0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 1, 0]], device=device)
    assert ops.informative_groups(rewards).tolist() == [False, False, True, True]
    assert not ops.rloo_advantage(rewards)[:2].any()


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (torch.zeros(3, 1), ValueError, "K >= 2"),
        (torch.zeros(3), ValueError, "rewards must have shape"),
        (torch.zeros(3, 4, dtype=torch.int64), TypeError, "rewards must be float"),
        ([[0.0, 1.0]], TypeError, "rewards must be a torch.Tensor"),
    ],
)
def test_bad_input(bad: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ops.rloo_advantage(bad)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        ops.informative_groups(bad)  # type: ignore[arg-type]


def test_empty_batch() -> None:
    assert ops.rloo_advantage(torch.zeros(0, 4)).shape == (0, 4)
    assert ops.informative_groups(torch.zeros(0, 4)).shape == (0,)


def test_compiles_fullgraph() -> None:
    @torch.compile(fullgraph=True, backend="aot_eager")
    def loss(r: torch.Tensor) -> torch.Tensor:
        adv = ops.rloo_advantage(r)
        keep = ops.informative_groups(r)
        return (adv * keep[:, None]).square().sum()

    r = torch.rand(4, 6, dtype=torch.float64, requires_grad=True)
    got = loss(r)
    expected = (reference_rloo(r) * (r.amax(1) != r.amin(1))[:, None]).square().sum()
    torch.testing.assert_close(got, expected)
    got.backward()
    assert r.grad is not None and torch.isfinite(r.grad).all()


@settings(max_examples=50, deadline=None)
@given(
    groups=st.integers(1, 40),
    k=st.integers(2, 24),
    values=st.sampled_from(["binary", "uniform", "large"]),
)
def test_fuzz(groups: int, k: int, values: str) -> None:
    if values == "binary":
        rewards = torch.randint(0, 2, (groups, k)).double()
    elif values == "uniform":
        rewards = torch.rand(groups, k, dtype=torch.float64)
    else:
        rewards = torch.randn(groups, k, dtype=torch.float64) * 1e6
    torch.testing.assert_close(ops.rloo_advantage(rewards), reference_rloo(rewards))
    assert ops.informative_groups(rewards).tolist() == (rewards.amax(1) != rewards.amin(1)).tolist()
