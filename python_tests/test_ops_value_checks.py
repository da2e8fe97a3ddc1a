"""Values the kernels cannot use raise ValueError naming the argument (issue #12), eagerly and inside compiled
graphs: mask weights that are negative, NaN or inf; NaN or inf rewards; NaN or inf advantages and NaN or +inf
logp_old where the mask lets the kernel read them. What the kernels never read (masked padding) stays allowed, and
so do fractional weights (the trainer's per-rollout token average) and -inf log-probs (the log-ratio clamp)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from python_tests.conftest import DEVICES
from ript_fast import ops

NAN, INF = float("nan"), float("inf")
B, T, V, D = 3, 4, 5, 2


def mask_ops(device: str) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Every op taking a (B, T) mask, as a function of the mask alone."""
    logits = torch.randn(B, T, V, device=device)
    tokens = torch.randint(0, V, (B, T), device=device)
    mean, actions = torch.randn(B, T, D, device=device), torch.randn(B, T, D, device=device)
    log_std = torch.zeros(D, device=device)
    hidden, weight = torch.randn(B, T, D, device=device), torch.randn(V, D, device=device)
    new, old, adv = torch.randn(B, T, device=device), torch.randn(B, T, device=device), torch.randn(B, device=device)
    return {
        "categorical_logprob": lambda m: ops.categorical_logprob(logits, tokens, m),
        "categorical_ppo_loss": lambda m: ops.categorical_ppo_loss(logits, tokens, old, adv, m),
        "gaussian_logprob": lambda m: ops.gaussian_logprob(mean, log_std, actions, m),
        "laplace_logprob": lambda m: ops.laplace_logprob(mean, log_std, actions, m),
        "ppo_clip_loss": lambda m: ops.ppo_clip_loss(new, old, adv, mask=m),
        "linear_categorical_logprob": lambda m: ops.linear_categorical_logprob(hidden, weight, tokens, m),
        "linear_categorical_ppo_loss": lambda m: ops.linear_categorical_ppo_loss(hidden, weight, tokens, old, adv, m),
    }


MASK_OPS = list(mask_ops("cpu"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", MASK_OPS)
@pytest.mark.parametrize(("bad", "shown"), [(-1.0, "-1"), (-1e-3, "-0.001"), (NAN, "NaN"), (INF, "inf")])
def test_mask_weights_must_be_finite_and_non_negative(device: str, op: str, bad: float, shown: str) -> None:
    mask = torch.ones(B, T, device=device)
    mask[1, 2] = bad
    with pytest.raises(ValueError, match=rf"^mask must hold finite weights >= 0 \(e.g. 0/1\), got {shown}$"):
        mask_ops(device)[op](mask)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", MASK_OPS)
def test_fractional_and_bool_masks_are_weights(device: str, op: str) -> None:
    """Scaling the weights scales the summed log-probs and leaves the PPO losses (weighted means) unchanged."""
    call = mask_ops(device)[op]
    binary = torch.rand(B, T, device=device) > 0.3
    binary[:, 0] = True
    scale = 1.0 if "ppo" in op else 0.25
    torch.testing.assert_close(call(binary.float() * 0.25), scale * call(binary))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", [ops.rloo_advantage, ops.informative_groups])
@pytest.mark.parametrize(("bad", "shown"), [(NAN, "NaN"), (INF, "inf"), (-INF, "-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rewards_must_be_finite(device: str, op: Callable, bad: float, shown: str, dtype: torch.dtype) -> None:
    rewards = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], device=device)
    rewards[0, 1] = bad
    with pytest.raises(ValueError, match=f"^rewards must be finite, got {shown}$"):
        op(rewards.to(dtype))


@pytest.mark.parametrize("device", DEVICES)
def test_rloo_backward_passes_nan_gradients_through(device: str) -> None:
    """The backward runs the same kernel on the incoming gradient; a NaN there is no bad reward."""
    rewards = torch.rand(2, 3, device=device, requires_grad=True)
    (ops.rloo_advantage(rewards) * NAN).sum().backward()
    assert rewards.grad is not None and rewards.grad.isnan().all()


# PPO targets: row 0 is masked out entirely and position (1, 3) too, so the kernels never read advantages[0],
# logp_old[0] (sequence level) or logp_old[0, :] and logp_old[1, 3] (token level).
MASK = torch.tensor([[0.0, 0, 0, 0], [1, 1, 1, 0], [1, 0.5, 1, 1]])
UNREAD = {"sequence": (0,), "token": (1, 3)}
READ = {"sequence": (2,), "token": (2, 1)}


def ppo(op: str, level: str, device: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss as a function of (logp_old, advantages), at sequence or token ratios, fused or not."""
    g = torch.Generator().manual_seed(1)
    logits, tokens = torch.randn(B, T, V, generator=g), torch.randint(0, V, (B, T), generator=g)
    logits, tokens, mask = logits.to(device), tokens.to(device), MASK.to(device)
    if op == "categorical_ppo_loss":
        return lambda old, adv: ops.categorical_ppo_loss(logits, tokens, old, adv, mask)
    if op == "linear_categorical_ppo_loss":
        hidden, weight = torch.randn(B, T, D, generator=g).to(device), torch.randn(V, D, generator=g).to(device)
        return lambda old, adv: ops.linear_categorical_ppo_loss(hidden, weight, tokens, old, adv, mask)
    new = ops.categorical_logprob(logits, tokens, mask, reduction="sum" if level == "sequence" else "none")
    weights = mask.any(dim=1).float() if level == "sequence" else mask
    return lambda old, adv: ops.ppo_clip_loss(new, old, adv, mask=weights)


def targets(level: str, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    old = -torch.rand((B,) if level == "sequence" else (B, T), generator=g) * 3
    return old.to(device), torch.randn(B, generator=g).to(device)


PPO_OPS = ("ppo_clip_loss", "categorical_ppo_loss", "linear_categorical_ppo_loss")
PPO_CASES = [(op, level) for op in PPO_OPS for level in ("sequence", "token")]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("op", "level"), PPO_CASES)
@pytest.mark.parametrize(("bad", "shown"), [(NAN, "NaN"), (INF, "inf"), (-INF, "-inf")])
def test_advantages_must_be_finite_where_read(device: str, op: str, level: str, bad: float, shown: str) -> None:
    loss, (old, adv) = ppo(op, level, device), targets(level, device)
    adv[2] = bad
    with pytest.raises(ValueError, match=f"^advantages must be finite where the mask is non-zero, got {shown}$"):
        loss(old, adv)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("op", "level"), PPO_CASES)
@pytest.mark.parametrize(("bad", "shown"), [(NAN, "NaN"), (INF, "inf")])
def test_logp_old_must_be_a_log_prob_where_read(device: str, op: str, level: str, bad: float, shown: str) -> None:
    loss, (old, adv) = ppo(op, level, device), targets(level, device)
    old[READ[level]] = bad
    match = f"^logp_old must be finite or -inf log-probabilities where the mask is non-zero, got {shown}$"
    with pytest.raises(ValueError, match=match):
        loss(old, adv)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("op", "level"), PPO_CASES)
@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_unread_targets_may_hold_anything(device: str, op: str, level: str, bad: float) -> None:
    """Masked padding is never read: the loss is the one with zeros there."""
    loss, (old, adv) = ppo(op, level, device), targets(level, device)
    expected = loss(old, adv)
    old[UNREAD[level]], adv[0] = bad, bad
    torch.testing.assert_close(loss(old, adv), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("op", "level"), PPO_CASES)
def test_minus_inf_logp_old_is_clamped_not_rejected(device: str, op: str, level: str) -> None:
    loss, (old, adv) = ppo(op, level, device), targets(level, device)
    old[READ[level]] = -INF
    assert loss(old, adv).isfinite()


def expected_error(mask: list, adv: list[float], old: list) -> str | None:
    """The argument a PPO op must name for these values (checked in this order), or None: the rules in words.
    `mask` is (B,) or (B, T); `old` is (B,) (read where its row has a weight) or shaped like the mask."""
    rows = [row if isinstance(row, list) else [row] for row in mask]
    if any(not (w >= 0 and math.isfinite(w)) for row in rows for w in row):
        return "mask"
    read_rows = [any(w != 0 for w in row) for row in rows]
    if any(read and not math.isfinite(a) for read, a in zip(read_rows, adv, strict=True)):
        return "advantages"
    if isinstance(old[0], list) and isinstance(mask[0], list):
        read_old = [o for m_row, o_row in zip(mask, old, strict=True) for w, o in zip(m_row, o_row, strict=True) if w]
    else:
        read_old = [o for read, o in zip(read_rows, old, strict=True) if read]
    return "logp_old" if any(math.isnan(o) or o == INF for o in read_old) else None


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    b=st.integers(1, 3),
    t=st.integers(1, 3),
    op=st.sampled_from(PPO_OPS),
    level=st.sampled_from(["sequence", "token"]),
)
def test_ppo_ops_raise_exactly_for_bad_values_they_read(
    data: st.DataObject, b: int, t: int, op: str, level: str
) -> None:
    def values(options: list[float], shape: tuple[int, ...]) -> list:
        n = math.prod(shape)
        return (
            torch.tensor(data.draw(st.lists(st.sampled_from(options), min_size=n, max_size=n))).reshape(shape).tolist()
        )

    per_rollout = level == "sequence" and op == "ppo_clip_loss"  # ppo_clip_loss's mask is shaped like logp_new
    mask = values([0.0, 0.0, 0.5, 1.0, 1.0, -1.0, NAN, INF], (b,) if per_rollout else (b, t))
    adv = values([1.0, -2.0, 0.0, NAN, INF, -INF], (b,))
    old = values([-1.0, 0.0, -INF, INF, NAN], (b,) if level == "sequence" else (b, t))
    weights, advantages, logp_old = torch.tensor(mask), torch.tensor(adv), torch.tensor(old)
    if op == "categorical_ppo_loss":
        logits, tokens = torch.zeros(b, t, 2), torch.zeros(b, t, dtype=torch.long)
        loss = lambda: ops.categorical_ppo_loss(logits, tokens, logp_old, advantages, weights)  # noqa: E731
    elif op == "linear_categorical_ppo_loss":
        hidden, head, tokens = torch.zeros(b, t, 3), torch.zeros(2, 3), torch.zeros(b, t, dtype=torch.long)
        loss = lambda: ops.linear_categorical_ppo_loss(hidden, head, tokens, logp_old, advantages, weights)  # noqa: E731
    else:
        loss = lambda: ops.ppo_clip_loss(torch.zeros(logp_old.shape), logp_old, advantages, mask=weights)  # noqa: E731
    expected = expected_error(mask, adv, old)
    if expected is None:
        assert loss().isfinite()
    else:
        with pytest.raises(ValueError, match=f"^{expected} must"):
            loss()


def test_no_mask_means_every_value_is_read() -> None:
    new, old, adv = torch.zeros(3), torch.zeros(3), torch.ones(3)
    adv[0] = NAN
    with pytest.raises(ValueError, match=r"^advantages must be finite, got NaN$"):
        ops.ppo_clip_loss(new, old, adv)


def checked_step(
    rewards: torch.Tensor, logp_new: torch.Tensor, logp_old: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    return ops.ppo_clip_loss(logp_new, logp_old, ops.rloo_advantage(rewards).flatten(), mask=mask)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_checks_run_inside_compiled_graphs(backend: str) -> None:
    """The checks live in the ops' real kernels, not in the fake kernels that tracing runs: a fullgraph compile
    still traces, and the compiled code still raises."""
    rewards, new, old, mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.zeros(4), torch.zeros(4), torch.ones(4)
    torch._dynamo.reset()
    step = torch.compile(checked_step, fullgraph=True, backend=backend)
    torch.testing.assert_close(step(rewards, new, old, mask), checked_step(rewards, new, old, mask))
    bad_cases = [
        ("rewards", (torch.tensor([[1.0, NAN], [0.0, 1.0]]), new, old, mask)),
        ("mask", (rewards, new, old, torch.tensor([1.0, -1.0, 1.0, 1.0]))),
        ("logp_old", (rewards, new, torch.tensor([0.0, NAN, 0.0, 0.0]), mask)),
    ]
    for name, args in bad_cases:
        with pytest.raises(ValueError, match=f"^{name} must"):
            step(*args)


@pytest.mark.cuda
def test_checks_are_skipped_while_capturing_a_cuda_graph() -> None:
    """Reading a value back would break a CUDA graph capture; there the checks are skipped (and replays run)."""
    logits = torch.randn(B, T, V, device="cuda")
    tokens = torch.randint(0, V, (B, T), device="cuda")
    mask = MASK.cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        ops.categorical_logprob(logits, tokens, mask)  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = ops.categorical_logprob(logits, tokens, mask)
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(out, ops.categorical_logprob(logits, tokens, mask))
