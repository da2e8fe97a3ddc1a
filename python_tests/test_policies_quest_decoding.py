"""The QueST policy's fast paths equal the plain computations they replace."""

from __future__ import annotations

import torch

from python_tests.ppo_fixtures import smoke_policy
from ript_fast.config import from_dict, load_yaml
from ript_fast.policies.base import PolicySpec
from ript_fast.policies.config import PolicyConfig
from ript_fast.policies.factory import build_policy


def cpu_policy():
    cfg = from_dict(PolicyConfig, load_yaml("configs/sft_quest_metaworld_cpu.yaml")["policy"], "policy")
    torch.manual_seed(0)
    return build_policy(cfg, PolicySpec(4, 39, ["reach-v3"], ["reach"])).eval()


def full_recompute_greedy(prior, context: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = torch.full((context.shape[0], 1), prior.start_token, dtype=torch.long)
    all_logits = []
    for _ in range(steps):
        logits = prior(inputs, context)[:, -1]
        all_logits.append(logits)
        inputs = torch.cat([inputs, logits.argmax(-1, keepdim=True)], dim=1)
    return inputs[:, 1:], torch.stack(all_logits, dim=1)


class GreedyRecorder:
    """A `pick` that takes the argmax and keeps the logits it saw."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        self.seen.append(logits)
        return logits.argmax(-1)


def test_cached_decoding_equals_full_recompute() -> None:
    for policy in (smoke_policy(), cpu_policy()):
        context = torch.randn(7, 2, policy.prior.tok_emb.embedding_dim)
        pick = GreedyRecorder()
        with torch.no_grad():
            cached = policy.prior.generate(context, policy.num_tokens, pick)
            expected, expected_logits = full_recompute_greedy(policy.prior, context, policy.num_tokens)
        assert torch.equal(cached, expected)
        torch.testing.assert_close(torch.stack(pick.seen, dim=1), expected_logits, rtol=1e-4, atol=1e-5)


def test_decoding_the_chunk_head_equals_the_head_of_the_whole_chunk() -> None:
    policy = cpu_policy()
    tokens = torch.randint(0, policy.autoencoder.codebook_size, (5, policy.num_tokens))
    with torch.no_grad():
        head = policy.autoencoder.decode_tokens(tokens, steps=policy.action_horizon)
        whole = policy.autoencoder.decode_tokens(tokens)
    assert head.shape == (5, policy.action_horizon, 4)
    torch.testing.assert_close(head, whole[:, : policy.action_horizon], rtol=1e-4, atol=1e-5)
