"""linear_categorical_logprob / linear_categorical_ppo_loss against the float64 references applied to the float64
logits hidden @ weight.T + bias: values, gradients of hidden, weight and bias, chunking edge cases, layouts,
half precision, extreme values, errors, and peak memory flat in the number of rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest
import torch

from python_tests.conftest import DEVICES
from python_tests.ops_reference import categorical_logprob_ref, categorical_ppo_loss_ref, linear_logits_ref
from ript_fast import ops


def make_head(
    b: int, t: int, h: int, v: int, device: str, dtype: torch.dtype = torch.float64, mask: str = "none"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """hidden (B, T, H), weight (V, H), bias (V,), tokens (B, T), mask; logits of about unit scale times 3."""
    hidden = torch.randn(b, t, h, dtype=torch.float64).to(device=device, dtype=dtype)
    weight = (torch.randn(v, h, dtype=torch.float64) * 3 / h**0.5).to(device=device, dtype=dtype)
    bias = torch.randn(v, dtype=torch.float64).to(device=device, dtype=dtype)
    tokens = torch.randint(0, v, (b, t), device=device)
    m = None
    if mask == "bool":
        m = torch.rand(b, t, device=device) > 0.3
    elif mask == "float":
        m = torch.rand(b, t, device=device) * (torch.rand(b, t, device=device) > 0.3)
    return hidden, weight, bias, tokens, m


def leaves(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [x.detach().clone().requires_grad_() for x in tensors]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    # (B, T, H, V, chunk): V not a multiple of anything, one row, chunks of 1 row, chunk > rows, rows % chunk != 0
    "shape",
    [(1, 1, 3, 1, None), (1, 1, 5, 7, 1), (2, 3, 8, 37, 4), (3, 7, 16, 1000, 5), (2, 5, 4, 333, 100)],
)
@pytest.mark.parametrize("mask", ["none", "bool", "float"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_matches_reference(device: str, shape: tuple, mask: str, with_bias: bool) -> None:
    b, t, h, v, chunk = shape
    hidden, weight, bias, tokens, m = make_head(b, t, h, v, device, torch.float64, mask)
    bias = bias if with_bias else None
    upstream = torch.randn(b, t, dtype=torch.float64, device=device)
    for temperature in (1.0, 0.6):
        x, w, *bb = leaves(hidden, weight, *([bias] if with_bias else []))
        got = ops.linear_categorical_logprob(
            x, w, tokens, m, temperature, bb[0] if bb else None, reduction="none", chunk_size=chunk
        )
        assert got.shape == (b, t) and got.dtype == torch.float64
        (got * upstream).sum().backward()
        xr, wr, *br = leaves(hidden, weight, *([bias] if with_bias else []))
        expected = categorical_logprob_ref(
            linear_logits_ref(xr, wr, br[0] if br else None), tokens, m, temperature, "none"
        )
        (expected * upstream).sum().backward()
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
        for ours, theirs in zip([x, w, *bb], [xr, wr, *br], strict=True):
            torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-9, atol=1e-10)
        summed = ops.linear_categorical_logprob(hidden, weight, tokens, m, temperature, bias, chunk_size=chunk)
        torch.testing.assert_close(summed, expected.detach().sum(dim=1), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device: str) -> None:
    hidden, weight, bias, tokens, mask = make_head(2, 3, 4, 9, device, torch.float64, "float")
    inputs = tuple(leaves(hidden, weight, bias))

    def fn(x: torch.Tensor, w: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
        return ops.linear_categorical_logprob(x, w, tokens, mask, 1.3, bb, reduction="none", chunk_size=4)

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("device", DEVICES)
def test_frozen_head_gets_no_gradient(device: str) -> None:
    hidden, weight, _, tokens, mask = make_head(2, 4, 6, 50, device, torch.float64, "bool")
    x = hidden.clone().requires_grad_()
    ops.linear_categorical_logprob(x, weight, tokens, mask, chunk_size=3).sum().backward()
    assert weight.grad is None and x.grad is not None
    xr = hidden.clone().requires_grad_()
    categorical_logprob_ref(linear_logits_ref(xr, weight), tokens, mask).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_hidden_and_weight(device: str) -> None:
    b, t, h, v = 3, 5, 8, 70
    hidden = torch.randn(t, b, 2 * h, dtype=torch.float64, device=device).transpose(0, 1)[..., ::2]
    weight = torch.randn(h, v, dtype=torch.float64, device=device).t()  # an nn.Linear weight read transposed
    tokens = torch.randint(0, v, (t, b), device=device).t()
    mask = (torch.rand(t, b, device=device) > 0.2).t()
    assert not hidden.is_contiguous() and not weight.is_contiguous()
    x, w = leaves(hidden, weight)
    ops.linear_categorical_logprob(x, w, tokens, mask, 1.5, chunk_size=4).sum().backward()
    xr, wr = leaves(hidden, weight)
    categorical_logprob_ref(linear_logits_ref(xr, wr), tokens, mask, 1.5).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(w.grad, wr.grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_accumulate_in_float(device: str, dtype: torch.dtype) -> None:
    """Half-precision head: float32 log-probs within the rounding of the logits to the input dtype (what the
    model's own head computes), gradients in the input dtype, the weight gradient summed over chunks in float32."""
    hidden, weight, bias, tokens, mask = make_head(4, 16, 32, 2000, device, dtype, "bool")
    x, w, bb = leaves(hidden, weight, bias)
    got = ops.linear_categorical_logprob(x, w, tokens, mask, 0.9, bb, chunk_size=7)
    assert got.dtype == torch.float32
    materialised = ops.categorical_logprob(
        torch.addmm(bias, hidden.reshape(-1, 32), weight.t()).view(4, 16, -1), tokens, mask, 0.9
    )
    torch.testing.assert_close(got, materialised, rtol=1e-5, atol=1e-4)
    xr, wr, br = leaves(hidden.double(), weight.double(), bias.double())
    expected = categorical_logprob_ref(linear_logits_ref(xr, wr, br), tokens, mask, 0.9)
    torch.testing.assert_close(got.double(), expected, rtol=2e-2, atol=0.3)  # bf16 logits: ~0.4% of |logit|
    got.sum().backward()
    expected.sum().backward()
    for ours, theirs in ((x, xr), (w, wr), (bb, br)):
        assert ours.grad is not None and ours.grad.dtype == dtype
        scale = theirs.grad.abs().max()
        torch.testing.assert_close(ours.grad.double() / scale, theirs.grad / scale, rtol=0, atol=3e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_extreme_values(device: str) -> None:
    """Large logits (1e4 from a large hidden), a low and a high temperature, and -inf bias entries (vocab
    entries masked out) give finite log-probs and gradients equal to the reference."""
    hidden, weight, bias, _, _ = make_head(2, 3, 4, 300, device, torch.float64)
    hidden = hidden * 1e3
    bias[:100] = float("-inf")
    tokens = torch.randint(100, 300, (2, 3), device=device)
    for temperature in (0.05, 1.0, 50.0):
        x, w = leaves(hidden, weight)
        got = ops.linear_categorical_logprob(x, w, tokens, None, temperature, bias, "none", chunk_size=4)
        assert torch.isfinite(got).all()
        got.sum().backward()
        xr, wr = leaves(hidden, weight)
        expected = categorical_logprob_ref(linear_logits_ref(xr, wr, bias), tokens, None, temperature, "none")
        expected.sum().backward()
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-8)
        torch.testing.assert_close(x.grad, xr.grad, rtol=1e-8, atol=1e-8)
        assert w.grad is not None and (w.grad[:100] == 0).all() and torch.isfinite(w.grad).all()


@pytest.mark.parametrize("device", DEVICES)
def test_masked_positions_are_never_read_and_empty_batch(device: str) -> None:
    hidden, weight, _, tokens, _ = make_head(2, 4, 5, 20, device)
    mask = torch.ones(2, 4, dtype=torch.bool, device=device)
    mask[1, 2:] = False
    tokens[1, 2:] = -100  # padding
    got = ops.linear_categorical_logprob(hidden, weight, tokens, mask, reduction="none", chunk_size=3)
    assert (got[1, 2:] == 0).all()
    empty = ops.linear_categorical_logprob(hidden[:0], weight, tokens[:0])
    assert empty.shape == (0,)


@pytest.mark.parametrize("device", DEVICES)
def test_out_of_range_token_names_its_position(device: str) -> None:
    hidden, weight, _, tokens, _ = make_head(3, 4, 5, 20, device)
    tokens[2, 1] = 20
    with pytest.raises(IndexError, match=r"tokens: value 20 at \(b=2, t=1\) is outside \[0, V=20\)"):
        ops.linear_categorical_logprob(hidden, weight, tokens, chunk_size=2)


H, V = 4, 6


def _args(**over: object) -> dict:
    base: dict = {
        "hidden": torch.randn(2, 3, H),
        "weight": torch.randn(V, H),
        "tokens": torch.zeros(2, 3, dtype=torch.long),
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (_args(hidden=[1.0]), TypeError, "hidden must be a torch.Tensor"),
        (_args(hidden=torch.randn(6, H)), ValueError, r"hidden must have shape \(B, T, H\)"),
        (_args(hidden=torch.ones(2, 3, H, dtype=torch.long)), TypeError, "hidden must be float32"),
        (_args(weight=torch.randn(V, H, 1)), ValueError, r"weight must have shape \(V, H\)"),
        (_args(weight=torch.randn(V, H + 1)), ValueError, r"weight must have shape \(V, H\) with H = hidden's H"),
        (_args(weight=torch.randn(0, H)), ValueError, "weight must have a vocabulary of V >= 1"),
        (_args(weight=torch.ones(V, H, dtype=torch.int32)), TypeError, "weight must be float32"),
        (_args(bias=torch.randn(V + 1)), ValueError, r"bias must have shape \(V,\)"),
        (_args(bias=torch.ones(V, dtype=torch.long)), TypeError, "bias must be float32"),
        (_args(bias=2.0), TypeError, "bias must be a torch.Tensor"),
        (_args(tokens=torch.zeros(2, 3)), TypeError, "tokens must be int64 or int32"),
        (_args(tokens=torch.zeros(3, 2, dtype=torch.long)), ValueError, r"tokens must have shape \(B, T\)"),
        (_args(mask=torch.ones(2, 4, dtype=torch.bool)), ValueError, "mask must have shape"),
        (_args(mask=torch.ones(2, 3, dtype=torch.long)), TypeError, "mask must be bool or floating"),
        (_args(mask=torch.full((2, 3), -1.0)), ValueError, "mask must hold finite weights >= 0"),
        (_args(temperature=0.0), ValueError, "temperature must be finite and > 0"),
        (_args(temperature=True), TypeError, "temperature must be a float"),
        (_args(reduction="mean"), ValueError, "reduction must be 'sum' or 'none'"),
        (_args(chunk_size=0), ValueError, "chunk_size must be >= 1"),
        (_args(chunk_size=2.0), TypeError, "chunk_size must be an int or None"),
        (_args(tokens=torch.full((2, 3), 6, dtype=torch.long)), IndexError, r"tokens: value 6 at \(b=0, t=0\)"),
    ],
)
def test_bad_input(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ops.linear_categorical_logprob(**kwargs)


def test_mixed_devices_raise() -> None:
    with pytest.raises(ValueError, match="all tensors must be on one device"):
        ops.linear_categorical_logprob(**_args(weight=torch.randn(V, H, device="meta")))


@pytest.mark.parametrize(
    ("over", "error", "match"),
    [
        ({"logp_old": torch.zeros(3)}, ValueError, r"logp_old must have shape \(B,\)"),
        ({"logp_old": torch.zeros(2, 4)}, ValueError, r"logp_old must have shape \(B, T\)"),
        ({"advantages": torch.zeros(3)}, ValueError, r"advantages must have shape \(B,\)"),
        ({"advantages": torch.tensor([0.0, float("nan")])}, ValueError, "advantages must be finite"),
        ({"clip_eps": -0.1}, ValueError, "clip_eps must be finite and > 0"),
        ({"clip_eps_high": 0.0}, ValueError, "clip_eps_high must be finite and > 0"),
        ({"bias": torch.randn(V - 1)}, ValueError, r"bias must have shape \(V,\)"),
    ],
)
def test_ppo_bad_input(over: dict, error: type[Exception], match: str) -> None:
    kwargs = {**_args(), "logp_old": torch.zeros(2), "advantages": torch.zeros(2), **over}
    with pytest.raises(error, match=match):
        ops.linear_categorical_ppo_loss(**kwargs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("level", ["sequence", "token"])
@pytest.mark.parametrize("mask", ["none", "float"])
def test_ppo_loss_matches_reference(device: str, level: str, mask: str) -> None:
    b, t, h, v = 4, 5, 6, 41
    hidden, weight, bias, tokens, m = make_head(b, t, h, v, device, torch.float64, mask)
    if m is not None:
        m[0] = 0  # a rollout with no valid token: left out of the sequence-level mean
    logits = linear_logits_ref(hidden, weight, bias)
    per_token = categorical_logprob_ref(logits, tokens, None, 0.8, "none")
    noise = 0.3 * torch.randn(b, t, dtype=torch.float64, device=device)
    logp_old = (per_token + noise).sum(dim=1) if level == "sequence" else per_token + noise
    adv = torch.randn(b, dtype=torch.float64, device=device)
    x, w, bb = leaves(hidden, weight, bias)
    got = ops.linear_categorical_ppo_loss(
        x, w, tokens, logp_old, adv, m, 0.2, 0.8, bias=bb, clip_eps_high=0.28, return_stats=True, chunk_size=3
    )
    got.loss.backward()
    xr, wr, br = leaves(hidden, weight, bias)
    expected, stats = categorical_ppo_loss_ref(linear_logits_ref(xr, wr, br), tokens, logp_old, adv, m, 0.2, 0.28, 0.8)
    expected.backward()
    torch.testing.assert_close(got.loss, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.stack(got[1:]), torch.stack(stats), rtol=1e-10, atol=1e-12)
    for ours, theirs in ((x, xr), (w, wr), (bb, br)):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("level", ["sequence", "token"])
def test_ppo_gradcheck(level: str) -> None:
    hidden, weight, bias, tokens, mask = make_head(2, 3, 4, 9, "cpu", torch.float64, "float")
    logp_old = torch.randn(2, dtype=torch.float64) * 0.1 - 6 if level == "sequence" else torch.randn(2, 3) * 0.1 - 2
    adv = torch.tensor([1.0, -0.5], dtype=torch.float64)

    def fn(x: torch.Tensor, w: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
        return ops.linear_categorical_ppo_loss(x, w, tokens, logp_old.double(), adv, mask, bias=bb, chunk_size=4)

    assert torch.autograd.gradcheck(fn, tuple(leaves(hidden, weight, bias)))


# Peak memory: measured as the rise of the process's peak resident set (VmHWM, reset through /proc/self/clear_refs)
# over the forward + backward of a fresh subprocess, with MALLOC_MMAP_THRESHOLD_ so every large buffer is its own
# mapping and goes back to the OS when freed (the method of bench/bench_ops.py). H is small so that what must grow
# with the rows (hidden and its gradient, B T x H) is small next to one (rows, V) chunk.
_PEAK_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    from ript_fast import ops
    rows, chunk, vocab, fused = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "fused"
    torch.manual_seed(0)
    hidden = torch.randn(1, rows, 8, requires_grad=True)
    weight = torch.randn(vocab, 8, requires_grad=True)
    tokens = torch.randint(0, vocab, (1, rows))
    def hwm():
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
    def rss():
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) * 1024
    def step():
        if fused:
            return ops.linear_categorical_logprob(hidden, weight, tokens, chunk_size=chunk).sum()
        return torch.log_softmax(hidden @ weight.t(), -1).gather(-1, tokens[..., None]).sum()
    step().backward()  # warm-up: gradient buffers and allocator state in place
    hidden.grad = weight.grad = None
    base = rss()
    open("/proc/self/clear_refs", "w").write("5")
    step().backward()
    print(json.dumps(hwm() - base))
    """
)


def _peak_rise(rows: int, chunk: int, vocab: int, impl: str) -> int:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(rows), str(chunk), str(vocab), impl],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),  # `python -c` puts the cwd first on sys.path: not the source tree (no _C there)
        check=True,
        timeout=300,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc/self/clear_refs")
def test_peak_memory_is_flat_in_rows() -> None:
    """Forward + backward at 512 and 4096 rows (V = 32000, chunks of 128 rows: 16 MiB of float32 logits): the peak
    rise stays within a few chunks and grows by less than one chunk, where eager's grows with every row
    (4096 x 32000 float32 logits are 500 MiB, and eager holds about three such tensors)."""
    vocab, chunk = 32000, 128
    chunk_bytes = chunk * vocab * 4
    small, large = _peak_rise(512, chunk, vocab, "fused"), _peak_rise(4096, chunk, vocab, "fused")
    assert large <= 3 * chunk_bytes, (small, large)
    assert large - small < chunk_bytes, (small, large)
    eager = _peak_rise(4096, chunk, vocab, "eager")
    assert eager > 2 * 4096 * vocab * 4, eager  # the method sees (B T, V) buffers when they exist


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("level", ["sequence", "token"])
def test_ppo_loss_without_gradients_and_with_a_frozen_head(device: str, level: str) -> None:
    """Under no_grad no gradient is computed (the same loss); with the head frozen only hidden gets one."""
    hidden, weight, _, tokens, mask = make_head(3, 4, 5, 30, device, torch.float32, "bool")
    logp_old = torch.full((3,) if level == "sequence" else (3, 4), -3.0, device=device)
    adv = torch.tensor([1.0, -1.0, 0.5], device=device)
    x = hidden.clone().requires_grad_()
    loss = ops.linear_categorical_ppo_loss(x, weight, tokens, logp_old, adv, mask, chunk_size=2)
    with torch.no_grad():
        evaluated = ops.linear_categorical_ppo_loss(x, weight, tokens, logp_old, adv, mask, chunk_size=2)
    assert not evaluated.requires_grad
    torch.testing.assert_close(evaluated, loss.detach())
    (2 * loss).backward()
    assert weight.grad is None and x.grad is not None
    xr = hidden.clone().requires_grad_()
    expected = ops.categorical_ppo_loss(linear_logits_ref(xr, weight).float(), tokens, logp_old, adv, mask)
    (2 * expected).backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(x.grad, xr.grad)
