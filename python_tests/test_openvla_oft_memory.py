"""OpenVLA-OFT re-scoring memory: the prefix cached without gradients, gradient checkpointing, re-scoring in passes of a
few queries, and PPO steps with each.

The cached pass (`OpenVLAOFT.prefix_cached_pass`) must give the plain pass's values and the gradients of the plain pass
with the prefix's keys and values detached at every layer (the path it drops, as the released RIPT code does); the
reference for the latter hooks the plain pass's k_proj / v_proj outputs. Checkpointing must change nothing but memory.
Float32 on the CPU. Values: within 1e-6 (bitwise equal at this tiny size; at hidden 1024 the GEMMs over 58 rows
instead of the whole sequence round differently, up to 1.3e-6 relative: bench/RESULTS.md "OpenVLA-OFT memory").
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from python_tests.test_openvla_oft_policy import make_policy, observation
from ript_fast.policies.openvla_oft.images import pixel_values
from ript_fast.policies.openvla_oft.model import OpenVLAOFT
from ript_fast.policies.openvla_oft.pass_memory import queries_per_pass, saved_bytes
from ript_fast.train.ppo import PPOSettings, ppo_loss
from ript_fast.train.rollout import RolloutBatch

TEXTS = ["put the bowl on the plate and open the drawer", "open it", "put the bowl"]  # 3 prompt lengths: padded
VALUE_TOL = {"atol": 1e-6, "rtol": 1e-6}
GRAD_TOL = {"atol": 1e-6, "rtol": 1e-5}  # float32 sums of the same terms in another order


@pytest.fixture(scope="module")
def folder(oft_folder: Path) -> Path:
    """The session's tiny random folder (conftest); tests that damage one work on a copy."""
    return oft_folder


def trained_policy(folder: Path, **settings) -> torch.nn.Module:
    """The policy after `freeze_for_rl`, its LoRA B factors moved off 0 (so LoRA changes every position's values)."""
    policy = make_policy(folder, **settings)
    policy.freeze_for_rl()
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.add_(torch.randn_like(p) * 0.05)
    return policy


def model_inputs(policy: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    """A padded batch of three prompts of different lengths, as the policy feeds the model."""
    obs = observation(3)
    obs.instructions = list(TEXTS)
    cond = policy._cond(obs)
    assert (cond["attention_mask"] == 0).any(dim=1).all()
    cams = [cond["image/" + k].numpy() for k in policy.image_keys]
    return pixel_values(cams, policy.image_normalization), cond["input_ids"], cond["attention_mask"], cond["proprio"]


@contextmanager
def prefix_kv_detached(model: OpenVLAOFT, prefix_len: int) -> Iterator[None]:
    """Every layer's k_proj / v_proj output detached at the first `prefix_len` positions (RoPE, applied after, is a
    fixed function of the position, so this detaches the keys and values the attention reads)."""
    handles = []

    def hook(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        return torch.cat([out[:, :prefix_len].detach(), out[:, prefix_len:]], dim=1)

    for layer in model.vlm.language_model.model.layers:
        for proj in (layer.self_attn.k_proj, layer.self_attn.v_proj):
            handles.append(proj.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def values_and_grads(
    policy: torch.nn.Module, inputs: tuple, **switches
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The action head's chunk and the gradients of a fixed random projection of it w.r.t. every trainable weight."""
    policy.zero_grad(set_to_none=True)
    chunk = policy.model.action_head(policy.model.action_hidden_states(*inputs, **switches))
    weights = torch.randn(chunk.shape, generator=torch.Generator().manual_seed(0))
    (chunk * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in grads) and any(n.startswith("model.action_head.") for n in grads)
    assert all(g.abs().sum() > 0 for g in grads.values())
    return chunk.detach(), grads


def assert_grads_close(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for name in got:
        torch.testing.assert_close(got[name], expected[name], **GRAD_TOL, msg=name)


def test_the_cached_action_pass_gives_the_plain_pass_values(folder: Path) -> None:
    """A padded batch (three prompt lengths), LoRA active: the hidden states the heads read are the plain pass's."""
    policy = trained_policy(folder)
    inputs = model_inputs(policy)
    with torch.no_grad():
        plain = policy.model.action_hidden_states(*inputs)
    cached = policy.model.action_hidden_states(*inputs, prefix_grad=False)
    assert cached.requires_grad and cached.shape == plain.shape == (3, 56, 16)
    torch.testing.assert_close(cached.detach(), plain, **VALUE_TOL)


def test_cached_gradients_are_the_plain_pass_with_the_prefix_kv_detached(folder: Path) -> None:
    """The one path dropped is through the prefix's keys and values; every other gradient is the plain pass's."""
    policy = trained_policy(folder)
    inputs = model_inputs(policy)
    model = policy.model
    prefix_len = model.lm_sequence(*inputs).embeds.shape[1] - model.action_pass_len
    chunk, cached = values_and_grads(policy, inputs, prefix_grad=False)
    with prefix_kv_detached(model, prefix_len):
        reference_chunk, reference = values_and_grads(policy, inputs, prefix_grad=True)
    torch.testing.assert_close(chunk, reference_chunk, **VALUE_TOL)
    assert_grads_close(cached, reference)
    # the dropped path is real: through the whole sequence, LoRA's gradients differ (the heads' do not: they read
    # the same hidden states)
    _, whole = values_and_grads(policy, inputs, prefix_grad=True)
    lora = [n for n in whole if "lora_" in n]
    assert max((whole[n] - cached[n]).abs().max().item() for n in lora) > 1e-4
    heads = [n for n in whole if "lora_" not in n]
    assert_grads_close({n: cached[n] for n in heads}, {n: whole[n] for n in heads})


@pytest.mark.parametrize("prefix_grad", [False, True])
def test_gradient_checkpointing_changes_neither_values_nor_gradients(folder: Path, prefix_grad: bool) -> None:
    policy = trained_policy(folder)
    inputs = model_inputs(policy)
    chunk, grads = values_and_grads(policy, inputs, prefix_grad=prefix_grad)
    again, checkpointed = values_and_grads(policy, inputs, prefix_grad=prefix_grad, checkpoint=True)
    torch.testing.assert_close(again, chunk, **VALUE_TOL)
    assert_grads_close(checkpointed, grads)


def rollout_batch(policy: torch.nn.Module) -> RolloutBatch:
    """3 rollouts x 2 queries of the policy's own samples (one query of the last rollout invalid)."""
    torch.manual_seed(2)
    queries = [policy.act(observation(3, seed=s), sample=True) for s in range(2)]
    return RolloutBatch(
        success=torch.tensor([True, False, True]),
        rewards=torch.tensor([1.0, 0.0, 1.0]),
        context_ids=torch.zeros(3, dtype=torch.long),
        episode_steps=torch.full((3,), 16),
        query_mask=torch.tensor([[True, True], [True, True], [True, False]]),
        decisions=torch.stack([q.decision for q in queries], dim=1),
        logprob_old=torch.stack([q.logprob for q in queries], dim=1),
        cond={k: torch.stack([q.cond[k] for q in queries], dim=1) for k in queries[0].cond},
    )


def ppo_step_grads(folder: Path, **settings) -> dict[str, torch.Tensor]:
    """One PPO step of the trainer's loss through `policy.score` under `settings`: ratio 1 before, the trainable
    weights (and only they) move, the ratio leaves 1 after. Returns the step's gradients."""
    policy = make_policy(folder, **settings)
    groups = policy.freeze_for_rl()
    batch = rollout_batch(policy)
    advantages = torch.tensor([0.5, -1.0, 0.5])
    ppo = PPOSettings(epochs=1, minibatch_rollouts=3, clip_eps=0.1, clip_eps_high=0.1, ratio_level="token",
                      max_grad_norm=1.0)  # fmt: skip
    loss, stats = ppo_loss(policy, batch, advantages, ppo)
    torch.testing.assert_close(stats["ratio"], torch.tensor(1.0), atol=1e-5, rtol=0)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    loss.backward()
    grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
    torch.optim.AdamW(groups).step()
    changed = {n for n, p in policy.named_parameters() if not torch.equal(p, before[n])}
    assert any("lora_B" in n for n in changed) and any(n.startswith("model.action_head.") for n in changed)
    assert all("lora_" in n or n.startswith("model.action_head.") for n in changed), changed
    _, after = ppo_loss(policy, batch, advantages, ppo)
    assert abs(after["ratio"].item() - 1.0) > 1e-6
    return grads


def test_a_ppo_step_works_with_each_setting_and_the_switches_do_what_they_say(folder: Path) -> None:
    """prefix_grad changes LoRA's gradients (the prefix path), checkpointing and scoring in passes of 2 queries
    (5 valid queries: passes of 2, 2, 1) change none; the default is cached."""
    cached = ppo_step_grads(folder)
    assert_grads_close(ppo_step_grads(folder, prefix_grad=False, gradient_checkpointing=True), cached)
    assert_grads_close(ppo_step_grads(folder, score_queries_per_pass=2), cached)
    whole = ppo_step_grads(folder, prefix_grad=True)
    assert_grads_close(ppo_step_grads(folder, prefix_grad=True, gradient_checkpointing=True), whole)
    lora = [n for n in whole if "lora_B" in n]
    assert max((whole[n] - cached[n]).abs().max().item() for n in lora) > 1e-6


def test_a_memory_budget_sizes_the_passes_from_measured_activations(folder: Path) -> None:
    """`score_pass_memory_gb`: the saved activations of a pass grow linearly in its queries (the memory model of
    pass_memory.py, checked on passes of 1-4 queries); the budget picks the largest pass with 2 x saved <= budget, so
    a budget just above a 3-query pass's gives 3, just below gives 2; tiny budgets still make progress (1 query);
    the PPO step with the sized passes has the one-pass gradients; a budget with a fixed pass size is refused."""
    policy = trained_policy(folder)
    cond = policy._cond(observation(4))
    frozen = [*policy.parameters(), *policy.buffers()]
    saved = [saved_bytes(policy._heads, {k: v[:q] for k, v in cond.items()}, frozen) for q in (1, 2, 3, 4)]
    steps = {b - a for a, b in itertools.pairwise(saved)}
    assert saved[0] > 0 and max(steps) - min(steps) <= 0.01 * min(steps), saved  # linear in the queries
    one = {k: v[:1] for k, v in cond.items()}
    assert saved_bytes(policy._heads, one) > saved[0]  # autograd saves frozen weights too: excluded, as resident
    for budget, expected in ((2 * saved[2] * 1.001, 3), (2 * saved[2] * 0.999, 2), (1.0, 1)):
        assert queries_per_pass(policy._heads, cond, budget, frozen) == expected
    gib = 2 * saved[1] * 1.001 / 2**30  # room for passes of 2: 5 valid queries score in passes of 2, 2, 1
    sized = make_policy(folder, score_pass_memory_gb=gib)
    assert_grads_close(ppo_step_grads(folder, score_pass_memory_gb=gib), ppo_step_grads(folder))
    sized.freeze_for_rl()
    with torch.enable_grad():
        sized.score(cond, torch.zeros(4, 8, 7))
    assert sized._sized_pass == 2
    with pytest.raises(ValueError, match="score_pass_memory_gb: sizes the passes itself"):
        make_policy(folder, score_pass_memory_gb=1.0, score_queries_per_pass=2)
