"""categorical_logprob against the float64 reference of Eq. 7: values, gradients, layouts, edge cases, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from python_tests.conftest import DEVICES
from python_tests.ops_reference import categorical_logprob_ref
from ript_fast import ops
from ript_fast._core import _C
from ript_fast.ops._buffers import ref


def make_inputs(
    shape: tuple[int, int, int], device: str, dtype: torch.dtype = torch.float64, mask: str = "none"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    b, t, v = shape
    logits = (torch.randn(b, t, v, dtype=torch.float64) * 3).to(device=device, dtype=dtype)
    tokens = torch.randint(0, v, (b, t), device=device)
    if mask == "bool":
        return logits, tokens, torch.rand(b, t, device=device) > 0.3
    if mask == "float":
        return logits, tokens, torch.rand(b, t, device=device) * (torch.rand(b, t, device=device) > 0.3)
    return logits, tokens, None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 5), (3, 7, 1000), (2, 1, 33000), (4, 60, 1024)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mask", ["none", "bool", "float"])
def test_matches_reference(device: str, shape: tuple[int, int, int], dtype: torch.dtype, mask: str) -> None:
    logits, tokens, m = make_inputs(shape, device, dtype, mask)
    for temperature in (1.0, 0.7):
        got = ops.categorical_logprob(logits, tokens, m, temperature)
        assert got.shape == (shape[0],) and got.dtype == dtype
        expected = categorical_logprob_ref(logits, tokens, m, temperature)
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-4 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_matches_reference(device: str, dtype: torch.dtype) -> None:
    logits, tokens, mask = make_inputs((3, 5, 300), device, dtype, "float")
    upstream = torch.randn(3, 5, dtype=torch.float64, device=device)
    x = logits.clone().requires_grad_()
    (ops.categorical_logprob(x, tokens, mask, 0.8, reduction="none").double() * upstream).sum().backward()
    x_ref = logits.double().requires_grad_()
    (categorical_logprob_ref(x_ref, tokens, mask, 0.8, reduction="none") * upstream).sum().backward()
    assert x.grad is not None and x.grad.dtype == dtype
    torch.testing.assert_close(x.grad.double(), x_ref.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device: str) -> None:
    logits, tokens, mask = make_inputs((3, 4, 7), device, torch.float64, "float")
    x = logits.requires_grad_()
    assert torch.autograd.gradcheck(lambda z: ops.categorical_logprob(z, tokens, mask, 1.3), (x,))
    assert torch.autograd.gradcheck(lambda z: ops.categorical_logprob(z, tokens, None, 0.5, "none"), (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_accumulate_in_float(device: str, dtype: torch.dtype) -> None:
    logits, tokens, mask = make_inputs((4, 9, 2000), device, dtype, "bool")
    x = logits.clone().requires_grad_()
    got = ops.categorical_logprob(x, tokens, mask)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), categorical_logprob_ref(logits, tokens, mask), rtol=1e-5, atol=1e-4)
    got.sum().backward()
    x_ref = logits.double().requires_grad_()
    categorical_logprob_ref(x_ref, tokens, mask).sum().backward()
    assert x.grad is not None and x.grad.dtype == dtype
    torch.testing.assert_close(x.grad, x_ref.grad.to(dtype), rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_layouts(device: str) -> None:
    b, t, v = 3, 5, 40
    transposed = torch.randn(t, b, v, dtype=torch.float64, device=device).transpose(0, 1)
    strided_vocab = torch.randn(b, t, 2 * v, dtype=torch.float64, device=device)[..., ::2]
    expanded = torch.randn(1, t, v, dtype=torch.float64, device=device).expand(b, t, v)
    tokens = torch.randint(0, v, (t, b), device=device).t()
    mask = (torch.rand(t, b, device=device) > 0.2).t()
    for logits in (transposed, strided_vocab, expanded):
        assert not logits.is_contiguous()
        x = logits.detach().requires_grad_()
        got = ops.categorical_logprob(x, tokens, mask, 1.5)
        torch.testing.assert_close(got, categorical_logprob_ref(logits, tokens, mask, 1.5))
        got.sum().backward()
        x_ref = logits.detach().clone().requires_grad_()
        categorical_logprob_ref(x_ref, tokens, mask, 1.5).sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad)


@pytest.mark.parametrize("device", DEVICES)
def test_int32_tokens_and_reduction_none(device: str) -> None:
    logits, tokens, mask = make_inputs((2, 6, 11), device, torch.float64, "float")
    got = ops.categorical_logprob(logits, tokens.int(), mask, reduction="none")
    assert got.shape == (2, 6)
    torch.testing.assert_close(got, categorical_logprob_ref(logits, tokens, mask, reduction="none"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_logits(device: str, dtype: torch.dtype) -> None:
    v = 300
    logits = torch.randn(2, 3, v, dtype=dtype, device=device)
    logits[0, 0, 5] = 1e4
    logits[0, 1, 6] = -1e4
    logits[1, :, :250] = float("-inf")  # masked-out vocab entries, ahead of every finite one
    tokens = torch.tensor([[5, 6, 0], [251, 260, 299]], device=device)
    x = logits.clone().requires_grad_()
    got = ops.categorical_logprob(x, tokens, reduction="none")
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), categorical_logprob_ref(logits, tokens, reduction="none"))
    got.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad[1, :, :250] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_sampled_token_with_minus_inf_logit(device: str) -> None:
    logits = torch.randn(1, 2, 8, dtype=torch.float64, device=device)
    logits[0, 0, 3] = float("-inf")
    tokens = torch.tensor([[3, 1]], device=device)
    x = logits.clone().requires_grad_()
    per_token = ops.categorical_logprob(x, tokens, reduction="none")
    assert per_token[0, 0] == float("-inf") and torch.isfinite(per_token[0, 1])
    per_token[0, 0].backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad[0, 0, 3] == 1.0  # the limit of d/dx (x - lse) as x -> -inf


@pytest.mark.parametrize("device", DEVICES)
def test_masked_positions_are_never_read(device: str) -> None:
    logits = torch.randn(2, 3, 9, dtype=torch.float64, device=device)
    tokens = torch.tensor([[1, -100, 2], [9999, 0, -1]], device=device)
    mask = tokens.ge(0) & tokens.lt(9)
    logits[~mask] = float("nan")
    x = logits.clone().requires_grad_()
    got = ops.categorical_logprob(x, tokens, mask)
    assert torch.isfinite(got).all()
    got.sum().backward()
    assert x.grad is not None and (x.grad[~mask] == 0).all() and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device: str) -> None:
    x = torch.zeros(0, 4, 10, device=device, requires_grad=True)
    tokens = torch.zeros(0, 4, dtype=torch.int64, device=device)
    got = ops.categorical_logprob(x, tokens)
    assert got.shape == (0,)
    got.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.parametrize("device", DEVICES)
def test_out_of_range_token_raises_index_error(device: str) -> None:
    logits = torch.randn(2, 3, 5, device=device)
    for bad in (5, -1):
        tokens = torch.zeros(2, 3, dtype=torch.int64, device=device)
        tokens[1, 2] = bad
        with pytest.raises(IndexError, match=r"tokens: value .* at \(b=1, t=2\) is outside \[0, V=5\)"):
            ops.categorical_logprob(logits, tokens)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"logits": torch.zeros(2, 3)}, ValueError, "logits must have shape"),
        ({"logits": torch.zeros(2, 3, 4, dtype=torch.int64)}, TypeError, "logits must be float"),
        ({"logits": torch.zeros(2, 3, 0)}, ValueError, "V >= 1"),
        ({"tokens": torch.zeros(2, 4, dtype=torch.int64)}, ValueError, "tokens must have shape"),
        ({"tokens": torch.zeros(2, 3)}, TypeError, "tokens must be int64 or int32"),
        ({"mask": torch.ones(3, 2, dtype=torch.bool)}, ValueError, "mask must have shape"),
        ({"mask": torch.ones(2, 3, dtype=torch.int64)}, TypeError, "mask must be bool or floating"),
        ({"temperature": 0.0}, ValueError, "temperature must be finite and > 0"),
        ({"temperature": float("nan")}, ValueError, "temperature must be finite and > 0"),
        ({"temperature": True}, TypeError, "temperature must be a float"),
        ({"reduction": "mean"}, ValueError, "reduction must be"),
        ({"logits": [[[0.0]]]}, TypeError, "logits must be a torch.Tensor"),
    ],
)
def test_bad_input(kwargs: dict, error: type[Exception], match: str) -> None:
    args = {"logits": torch.zeros(2, 3, 4), "tokens": torch.zeros(2, 3, dtype=torch.int64), **kwargs}
    with pytest.raises(error, match=match):
        ops.categorical_logprob(**args)


def test_core_validates_on_its_own() -> None:
    """The C++ entry points check what they are given even when called directly, bypassing the Python checks."""
    logits, tokens = torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.int64)
    logp, lse = torch.empty(2, 3), torch.empty(2, 3)
    run = _C.cpu.categorical_logprob
    with pytest.raises(ValueError, match="tokens: size"):
        run(ref(logits), ref(tokens[:1]), None, 1.0, ref(logp), ref(lse))
    with pytest.raises(ValueError, match="logp: expected dtype float32"):
        run(ref(logits), ref(tokens), None, 1.0, ref(logp.double()), ref(lse))
    with pytest.raises(ValueError, match="mask: expected dtype float32"):
        run(ref(logits), ref(tokens), ref(torch.ones(2, 3, dtype=torch.bool)), 1.0, ref(logp), ref(lse))
    with pytest.raises(ValueError, match="temperature"):
        run(ref(logits), ref(tokens), None, -1.0, ref(logp), ref(lse))
    with pytest.raises(ValueError, match="vocab dimension must have stride 1"):
        run(ref(logits.transpose(1, 2).contiguous().transpose(1, 2)), ref(tokens), None, 1.0, ref(logp), ref(lse))


@pytest.mark.cuda
def test_mixed_devices_raise() -> None:
    with pytest.raises(ValueError, match="one device"):
        ops.categorical_logprob(torch.zeros(2, 3, 4, device="cuda"), torch.zeros(2, 3, dtype=torch.int64))


def test_double_backward_is_refused() -> None:
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(ops.categorical_logprob(x, torch.zeros(2, 3, dtype=torch.int64)).sum(), x)
    assert grad.shape == x.shape
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(
            ops.categorical_logprob(x, torch.zeros(2, 3, dtype=torch.int64)).sum(), x, create_graph=True
        )


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 4),
    t=st.integers(1, 6),
    v=st.integers(1, 70),
    temperature=st.floats(0.1, 5.0),
    scale=st.sampled_from([0.1, 3.0, 300.0]),
    mask=st.sampled_from(["none", "bool", "float"]),
)
def test_fuzz(b: int, t: int, v: int, temperature: float, scale: float, mask: str) -> None:
    logits, tokens, m = make_inputs((b, t, v), "cpu", torch.float64, mask)
    logits = logits * scale
    x = logits.clone().requires_grad_()
    got = ops.categorical_logprob(x, tokens, m, temperature)
    x_ref = logits.clone().requires_grad_()
    expected = categorical_logprob_ref(x_ref, tokens, m, temperature)
    torch.testing.assert_close(got, expected)
    got.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
