"""The ops inside torch.compile(fullgraph=True): a small PPO step of each head, compiled with the default
inductor backend and with aot_eager, must equal eager (values and gradients)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from ript_fast import ops

BACKENDS = ["inductor", "aot_eager"]


def token_head_loss(
    logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor, logp_old: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """RLOO advantages -> per-token log-probs -> token-level PPO loss, plus the fused loss at sequence level."""
    advantages = ops.rloo_advantage(rewards).flatten()
    logp_new = ops.categorical_logprob(logits * 1.0, tokens, mask, temperature=0.9, reduction="none")
    loss, _, approx_kl, _ = ops.ppo_clip_loss(logp_new, logp_old, advantages, 0.2, 0.28, return_stats=True, mask=mask)
    seq_old = (logp_old * mask).sum(dim=1)
    fused = ops.categorical_ppo_loss(logits, tokens, seq_old, advantages, mask, temperature=0.9)
    return loss + fused, approx_kl


def continuous_head_loss(
    mean: torch.Tensor, log_scale: torch.Tensor, actions: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    gauss = ops.gaussian_logprob(mean, log_scale, actions, reduction="none")
    laplace = ops.laplace_logprob(mean, log_scale.clamp(-2.0, 0.5), actions)
    loss = ops.ppo_clip_loss(gauss, logp_old, adv, 0.1) + ops.ppo_clip_loss(laplace, logp_old.sum(1), adv, 0.1)
    return loss, laplace.detach().mean()


def run(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]], leaves: list[torch.Tensor], *rest: torch.Tensor) -> list:
    inputs = [leaf.detach().clone().requires_grad_() for leaf in leaves]
    loss, aux = fn(*inputs, *rest)
    loss.backward()
    return [loss.detach(), aux, *(x.grad for x in inputs)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_token_head_compiles_fullgraph(backend: str) -> None:
    b, t, v = 8, 6, 33
    logits = torch.randn(b, t, v)
    tokens = torch.randint(0, v, (b, t))
    mask = torch.rand(b, t) > 0.2
    rewards = torch.randint(0, 2, (2, 4)).float()
    logp_old = torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0] + 0.1 * torch.randn(b, t)
    torch._dynamo.reset()
    compiled = torch.compile(token_head_loss, fullgraph=True, backend=backend)
    eager = run(token_head_loss, [logits], tokens, mask, rewards, logp_old)
    got = run(compiled, [logits], tokens, mask, rewards, logp_old)
    for a, c in zip(got, eager, strict=True):
        torch.testing.assert_close(a, c)


@pytest.mark.parametrize("backend", BACKENDS)
def test_continuous_head_compiles_fullgraph(backend: str) -> None:
    b, t, d = 16, 8, 7
    mean, log_scale, actions = torch.randn(b, t, d), torch.randn(d) - 1, torch.randn(b, t, d)
    logp_old, adv = torch.randn(b, t) - 5, torch.randn(b)
    torch._dynamo.reset()
    compiled = torch.compile(continuous_head_loss, fullgraph=True, backend=backend)
    eager = run(continuous_head_loss, [mean, log_scale], actions, logp_old, adv)
    got = run(compiled, [mean, log_scale], actions, logp_old, adv)
    for a, c in zip(got, eager, strict=True):
        torch.testing.assert_close(a, c)


def test_make_fx_records_the_custom_ops() -> None:
    """Tracing outside torch.compile (a dispatch mode) must record the ops, not run their eager fast path."""
    from torch.fx.experimental.proxy_tensor import make_fx

    def loss(logits: torch.Tensor, tokens: torch.Tensor, old: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        return ops.ppo_clip_loss(ops.categorical_logprob(logits, tokens), old, adv)

    args = (torch.randn(3, 4, 5), torch.randint(0, 5, (3, 4)), torch.randn(3), torch.randn(3))
    graph = make_fx(loss)(*args)
    targets = {str(node.target) for node in graph.graph.nodes if node.op == "call_function"}
    assert any("ript_fast.categorical_logprob" in t for t in targets), targets
    assert any("ript_fast.ppo_clip_loss" in t for t in targets), targets
    torch.testing.assert_close(graph(*args), loss(*args))


def linear_head_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused LM-head ops (issue #15): per-token PPO from hidden states, plus the sequence log-probs' mean."""
    loss, _, approx_kl, _ = ops.linear_categorical_ppo_loss(
        hidden * 1.0, weight, tokens, logp_old, adv, mask, 0.2, 0.9, bias=bias, return_stats=True, chunk_size=5
    )
    seq = ops.linear_categorical_logprob(hidden, weight, tokens, mask, 0.9, bias, chunk_size=7)
    return loss + 0.01 * seq.mean(), approx_kl


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_head_compiles_fullgraph(backend: str) -> None:
    b, t, h, v = 4, 6, 8, 37
    hidden, weight, bias = torch.randn(b, t, h), torch.randn(v, h) / 3, torch.randn(v)
    tokens = torch.randint(0, v, (b, t))
    mask = torch.rand(b, t) > 0.2
    logp_old = torch.log_softmax(hidden @ weight.t() + bias, -1).gather(-1, tokens[..., None])[..., 0] - 0.1
    adv = torch.randn(b)
    torch._dynamo.reset()
    compiled = torch.compile(linear_head_loss, fullgraph=True, backend=backend)
    eager = run(linear_head_loss, [hidden, weight, bias], tokens, mask, logp_old, adv)
    got = run(compiled, [hidden, weight, bias], tokens, mask, logp_old, adv)
    for a, c in zip(got, eager, strict=True):
        torch.testing.assert_close(a, c)
