"""categorical_ppo_loss (fused) against the float64 composition of Eq. 7 and Eq. 6, at both ratio levels."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from python_tests.conftest import DEVICES
from python_tests.ops_reference import categorical_logprob_ref, categorical_ppo_loss_ref
from ript_fast import ops


def make_problem(
    b: int, t: int, v: int, device: str, level: str, dtype: torch.dtype = torch.float64, mask: str = "bool"
) -> dict:
    """Logits, sampled tokens, a mask, and old log-probs near the current ones (some ratios clip, some do not)."""
    logits = (torch.randn(b, t, v, dtype=torch.float64) * 2).to(device=device, dtype=dtype)
    tokens = torch.randint(0, v, (b, t), device=device)
    m = {
        "none": None,
        "bool": torch.rand(b, t, device=device) > 0.25,
        "float": torch.rand(b, t, device=device) * (torch.rand(b, t, device=device) > 0.25),
    }[mask]
    per_token = categorical_logprob_ref(logits, tokens, None, reduction="none")
    if level == "sequence":
        logp_old = categorical_logprob_ref(logits, tokens, m) + torch.randn(b, dtype=torch.float64, device=device) * 0.3
    else:
        logp_old = per_token + torch.randn(b, t, dtype=torch.float64, device=device) * 0.3
    advantages = torch.randn(b, dtype=torch.float64, device=device)
    return {"logits": logits, "tokens": tokens, "logp_old": logp_old, "advantages": advantages, "mask": m}


def check_against_reference(problem: dict, rtol: float = 1e-7, atol: float = 1e-9, **kwargs: float) -> None:
    logits = problem["logits"]
    ours = logits.detach().clone().requires_grad_()
    theirs = logits.detach().double().requires_grad_()
    rest = {k: problem[k] for k in ("tokens", "logp_old", "advantages", "mask")}
    loss, *stats = ops.categorical_ppo_loss(ours, return_stats=True, **rest, **kwargs)
    loss_ref, stats_ref = categorical_ppo_loss_ref(theirs, **rest, **kwargs)
    torch.testing.assert_close(loss.double(), loss_ref, rtol=rtol, atol=atol)
    for got, expected in zip(stats, stats_ref, strict=True):
        torch.testing.assert_close(got.double(), expected, rtol=rtol, atol=atol)
    loss.backward()
    loss_ref.backward()
    assert ours.grad is not None and ours.grad.dtype == logits.dtype
    torch.testing.assert_close(ours.grad.double(), theirs.grad, rtol=rtol * 100, atol=atol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("level", ["sequence", "token"])
@pytest.mark.parametrize("mask", ["none", "bool", "float"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 7, 50), (4, 60, 1024)])
def test_matches_reference(device: str, level: str, mask: str, shape: tuple[int, int, int]) -> None:
    problem = make_problem(*shape, device, level, mask=mask)
    check_against_reference(problem, clip_eps=0.2, clip_eps_high=0.28, temperature=0.9)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("level", ["sequence", "token"])
def test_float32_and_large_vocab(device: str, level: str) -> None:
    problem = make_problem(2, 3, 33000, device, level, dtype=torch.float32)
    check_against_reference(problem, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("level", ["sequence", "token"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_logits(device: str, level: str, dtype: torch.dtype) -> None:
    problem = make_problem(3, 8, 500, device, level, dtype=dtype)
    loss = ops.categorical_ppo_loss(**problem)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), categorical_ppo_loss_ref(**problem)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("level", ["sequence", "token"])
def test_equals_composition_of_ops(device: str, level: str) -> None:
    """The fused op is the same function as ppo_clip_loss(categorical_logprob(...)) at matching ratio levels."""
    problem = make_problem(5, 9, 40, device, level, mask="float")
    x1 = problem["logits"].clone().requires_grad_()
    x2 = problem["logits"].clone().requires_grad_()
    fused = ops.categorical_ppo_loss(x1, problem["tokens"], problem["logp_old"], problem["advantages"], problem["mask"])
    if level == "sequence":
        logp_new = ops.categorical_logprob(x2, problem["tokens"], problem["mask"])
        rollout_mask = (problem["mask"] != 0).any(dim=1)
        composed = ops.ppo_clip_loss(logp_new, problem["logp_old"], problem["advantages"], mask=rollout_mask)
    else:
        valid = problem["mask"] != 0
        logp_new = ops.categorical_logprob(x2, problem["tokens"], valid, reduction="none")
        composed = ops.ppo_clip_loss(logp_new, problem["logp_old"], problem["advantages"], mask=problem["mask"])
    torch.testing.assert_close(fused, composed)
    fused.backward()
    composed.backward()
    torch.testing.assert_close(x1.grad, x2.grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("level", ["sequence", "token"])
def test_gradcheck(device: str, level: str) -> None:
    problem = make_problem(3, 4, 6, device, level, mask="float")
    x = problem.pop("logits").requires_grad_()
    assert torch.autograd.gradcheck(lambda z: ops.categorical_ppo_loss(z, **problem, temperature=1.3), (x,))


@pytest.mark.parametrize("device", DEVICES)
def test_backward_scales_and_repeats(device: str) -> None:
    problem = make_problem(3, 5, 20, device, "token")
    x = problem.pop("logits").requires_grad_()
    loss = ops.categorical_ppo_loss(x, **problem)
    (grad_one,) = torch.autograd.grad(loss, x, retain_graph=True)
    (grad_three,) = torch.autograd.grad(loss * 3, x, retain_graph=True)
    loss.backward(retain_graph=True)
    loss.backward()
    torch.testing.assert_close(grad_three, 3 * grad_one)
    torch.testing.assert_close(x.grad, 2 * grad_one)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(ops.categorical_ppo_loss(x, **problem), x, create_graph=True)


@pytest.mark.parametrize("device", DEVICES)
def test_no_grad_forward(device: str) -> None:
    problem = make_problem(3, 5, 20, device, "sequence")
    with torch.no_grad():
        loss = ops.categorical_ppo_loss(
            problem["logits"].requires_grad_(), **{k: v for k, v in problem.items() if k != "logits"}
        )
    torch.testing.assert_close(loss, categorical_ppo_loss_ref(**problem)[0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("level", ["sequence", "token"])
def test_extreme_logits(device: str, level: str) -> None:
    problem = make_problem(2, 4, 64, device, level, dtype=torch.float32)
    logits = problem["logits"]
    logits[0, 0] = -1e4
    logits[0, 0, problem["tokens"][0, 0]] = 1e4
    logits[1, :, 32:] = float("-inf")
    problem["tokens"][1] %= 32
    problem["tokens"][0, 1] = 40
    logits[0, 1, 40] = float("-inf")  # the sampled token itself impossible under the new policy
    x = logits.clone().requires_grad_()
    loss, *stats = ops.categorical_ppo_loss(x, **{k: v for k, v in problem.items() if k != "logits"}, return_stats=True)
    assert torch.isfinite(loss) and all(torch.isfinite(s) for s in stats)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("device", DEVICES)
def test_rollout_without_valid_tokens_is_left_out(device: str) -> None:
    problem = make_problem(4, 6, 30, device, "sequence")
    problem["mask"][3] = False
    problem["tokens"][3] = -1  # never read
    loss = ops.categorical_ppo_loss(**problem)
    first_three = {k: v[:3] for k, v in problem.items()}
    torch.testing.assert_close(loss, ops.categorical_ppo_loss(**first_three))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("level", ["sequence", "token"])
def test_bad_token_raises_index_error(device: str, level: str) -> None:
    problem = make_problem(2, 3, 10, device, level, mask="none")
    problem["tokens"][1, 1] = 10
    with pytest.raises(IndexError, match=r"at \(b=1, t=1\) is outside \[0, V=10\)"):
        ops.categorical_ppo_loss(**problem)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous(device: str) -> None:
    problem = make_problem(4, 6, 30, device, "token", mask="float")
    problem["logits"] = problem["logits"].transpose(0, 1).contiguous().transpose(0, 1)
    problem["tokens"] = problem["tokens"].t().contiguous().t()
    problem["logp_old"] = problem["logp_old"].t().contiguous().t()
    check_against_reference(problem)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"logp_old": torch.zeros(2, 4)}, ValueError, r"logp_old must have shape \(B, T\)"),
        ({"logp_old": torch.zeros(3)}, ValueError, r"logp_old must have shape \(B,\)"),
        ({"logp_old": torch.zeros(2, dtype=torch.int64)}, TypeError, "logp_old must be float"),
        ({"advantages": torch.zeros(2, 3)}, ValueError, "advantages must have shape"),
        ({"clip_eps": 0}, ValueError, "clip_eps must be finite and > 0"),
        ({"clip_eps_high": -1.0}, ValueError, "clip_eps_high must be finite and > 0"),
        ({"temperature": -1.0}, ValueError, "temperature must be finite and > 0"),
        ({"tokens": torch.zeros(2, 3, dtype=torch.int16)}, TypeError, "tokens must be int64 or int32"),
        ({"mask": torch.ones(2, 3, 1)}, ValueError, "mask must have shape"),
    ],
)
def test_bad_input(kwargs: dict, error: type[Exception], match: str) -> None:
    args = {
        "logits": torch.zeros(2, 3, 4),
        "tokens": torch.zeros(2, 3, dtype=torch.int64),
        "logp_old": torch.zeros(2),
        "advantages": torch.zeros(2),
        **kwargs,
    }
    with pytest.raises(error, match=match):
        ops.categorical_ppo_loss(**args)


def test_empty_batch() -> None:
    x = torch.zeros(0, 3, 5, requires_grad=True)
    tokens = torch.zeros(0, 3, dtype=torch.int64)
    for logp_old in (torch.zeros(0), torch.zeros(0, 3)):
        loss = ops.categorical_ppo_loss(x, tokens, logp_old, torch.zeros(0))
        assert loss.item() == 0
        loss.backward()


@settings(max_examples=30, deadline=None)
@given(
    b=st.integers(1, 4),
    t=st.integers(1, 6),
    v=st.integers(1, 40),
    level=st.sampled_from(["sequence", "token"]),
    mask=st.sampled_from(["none", "bool", "float"]),
    temperature=st.floats(0.2, 3.0),
    clip_eps=st.floats(0.05, 0.5),
)
def test_fuzz(b: int, t: int, v: int, level: str, mask: str, temperature: float, clip_eps: float) -> None:
    problem = make_problem(b, t, v, "cpu", level, mask=mask)
    check_against_reference(problem, clip_eps=clip_eps, temperature=temperature)
