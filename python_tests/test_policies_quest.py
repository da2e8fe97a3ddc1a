"""QueST-style policy: FSQ, causality of encoder/decoder/prior, act/score shapes, log-prob agreement, grads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ript_fast.config import load_config
from ript_fast.policies.base import Observation, PolicySpec
from ript_fast.policies.factory import build_policy
from ript_fast.policies.quest.fsq import FSQ, levels_for_codebook
from ript_fast.policies.quest.policy import QuestPolicy
from ript_fast.policies.quest.temporal_conv import CausalTemporalConv
from ript_fast.train.sft import SftConfig

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "sft_quest_smoke.yaml"
SPEC = PolicySpec(action_dim=4, state_dim=39, task_names=["reach-v3", "push-v3"], instructions=["reach", "push"])


def make_policy(*overrides: str) -> QuestPolicy:
    cfg = load_config(SftConfig, SMOKE, list(overrides))
    policy = build_policy(cfg.policy, SPEC)
    assert isinstance(policy, QuestPolicy)
    return policy.eval()


def make_obs(n: int, seed: int = 0) -> Observation:
    g = torch.Generator().manual_seed(seed)
    tasks = torch.randint(2, (n,), generator=g)
    return Observation(torch.randn(n, 39, generator=g), [SPEC.instructions[t] for t in tasks], tasks)


# ---- FSQ ---------------------------------------------------------------------------------------------
def test_fsq_levels_match_quest() -> None:
    assert levels_for_codebook(1024) == [8, 5, 5, 5]
    with pytest.raises(ValueError, match="codebook_size 1000"):
        levels_for_codebook(1000)


def test_fsq_indices_cover_codebook_and_round_trip() -> None:
    fsq = FSQ([8, 5, 5, 5], dim=4)
    codes_raw = fsq.quantize(torch.rand(50000, 4) * 6 - 3)
    indices = fsq.codes_to_indices(codes_raw)
    assert indices.min() >= 0 and indices.max() <= 999
    assert [codes_raw[:, d].unique().numel() for d in range(4)] == [8, 5, 5, 5]  # every level of every digit
    all_idx = torch.arange(1000)  # indices -> grid codes -> indices is the identity over the whole codebook
    assert torch.equal(fsq.codes_to_indices(fsq.grid_codes(all_idx)), all_idx)
    assert torch.equal(fsq.grid_codes(indices), codes_raw)


def test_fsq_straight_through_gradient() -> None:
    fsq = FSQ([5, 3], dim=8)
    z = torch.randn(3, 2, 8, requires_grad=True)
    codes, _ = fsq(z)
    codes.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


# ---- causality ---------------------------------------------------------------------------------------
def test_temporal_conv_is_causal_and_downsamples() -> None:
    conv = CausalTemporalConv(16, downsample=4).eval()
    x = torch.randn(2, 32, 16)
    y = conv(x)
    assert y.shape == (2, 8, 16)
    x2 = x.clone()
    x2[:, 20:] += 5.0  # change actions from step 20 on
    y2 = conv(x2)
    # output step i sees inputs up to 4i+... : outputs before step 20/4 - 1 are unchanged
    assert torch.allclose(y[:, :4], y2[:, :4], atol=1e-6)
    assert not torch.allclose(y[:, 5:], y2[:, 5:])


def test_skill_tokens_do_not_depend_on_later_actions() -> None:
    policy = make_policy()
    actions = torch.rand(3, 16, 4) * 2 - 1
    later = actions.clone()
    later[:, 12:] = -later[:, 12:]
    with torch.no_grad():
        a, b = policy.autoencoder.encode(actions), policy.autoencoder.encode(later)
    assert torch.allclose(a[:, :2], b[:, :2], atol=1e-5)


def test_prior_is_causal_over_tokens() -> None:
    policy = make_policy()
    ctx = torch.randn(2, 2, 32)
    tokens = torch.randint(64, (2, 4))
    changed = tokens.clone()
    changed[:, 3] = (changed[:, 3] + 1) % 64
    with torch.no_grad():
        la = policy.prior(policy.prior.teacher_forcing_inputs(tokens), ctx)
        lb = policy.prior(policy.prior.teacher_forcing_inputs(changed), ctx)
    assert torch.equal(la, lb)  # the last target never feeds any prediction
    changed[:, 1] = (changed[:, 1] + 1) % 64
    with torch.no_grad():
        lc = policy.prior(policy.prior.teacher_forcing_inputs(changed), ctx)
    assert torch.allclose(la[:, :2], lc[:, :2], atol=1e-6) and not torch.allclose(la[:, 2:], lc[:, 2:])


# ---- act / score -------------------------------------------------------------------------------------
def test_act_shapes_and_support() -> None:
    policy = make_policy()
    out = policy.act(make_obs(7))
    assert out.actions.shape == (7, 4, 4) and out.actions.abs().max() <= 1.0
    assert out.decision.shape == (7, 4) and out.decision.dtype == torch.int64
    assert out.logprob.shape == (7, 4) and torch.all(out.logprob <= 0)
    assert set(out.cond) == {"context", "support"}
    assert out.cond["context"].shape == (7, 2, 32) and out.cond["support"].shape == (7, 4, 5)
    assert torch.all((out.cond["support"] == out.decision.unsqueeze(-1)).any(-1))  # every token in its top-k


@pytest.mark.parametrize("support", ["sampled_topk", "full"])
def test_sampled_logprob_equals_recomputed(support: str) -> None:
    policy = make_policy(f"policy.quest.score_support={support}", "policy.quest.top_k=3")
    out = policy.act(make_obs(9))
    recomputed = policy.sequence_logprob(out.cond, out.decision)
    assert torch.allclose(out.logprob, recomputed, atol=1e-5)
    if support == "sampled_topk":  # the scored distribution is the sampled one: exactly k candidates per step
        scores = policy.score(out.cond, out.decision)
        assert torch.all(torch.isfinite(scores.logits).sum(-1) == 3)
        probs = torch.softmax(scores.logits, -1).sum(-1)
        assert torch.allclose(probs, torch.ones_like(probs))


def test_conds_of_different_queries_concatenate() -> None:
    policy = make_policy()
    a, b = policy.act(make_obs(3, seed=1)), policy.act(make_obs(5, seed=2))
    cond = {k: torch.cat([a.cond[k], b.cond[k]]) for k in a.cond}
    tokens = torch.cat([a.decision, b.decision])
    assert torch.allclose(policy.sequence_logprob(cond, tokens), torch.cat([a.logprob, b.logprob]), atol=1e-5)


def test_greedy_is_deterministic_and_in_support() -> None:
    policy = make_policy()
    obs = make_obs(4)
    a, b = policy.act(obs, sample=False), policy.act(obs, sample=False)
    assert torch.equal(a.decision, b.decision) and torch.equal(a.actions, b.actions)


def test_temperature_is_in_the_scores() -> None:
    policy = make_policy("policy.quest.temperature=2.0", "policy.quest.score_support=full")
    out = policy.act(make_obs(3))
    cold = make_policy("policy.quest.score_support=full")
    cold.load_state_dict(policy.state_dict())
    assert torch.allclose(policy.score(out.cond, out.decision).logits * 2, cold.score(out.cond, out.decision).logits)


def test_gradients_reach_only_the_prior_with_cached_context() -> None:
    policy = make_policy()
    out = policy.act(make_obs(4))
    groups = policy.freeze_for_rl()
    assert {g["name"] for g in groups} == {"prior", "prior/no_decay"}
    policy.sequence_logprob(out.cond, out.decision).sum().backward()
    assert all(p.grad is not None for p in policy.prior.parameters() if p.requires_grad)
    assert all(p.grad is None for p in policy.obs_encoder.parameters())
    assert all(not p.requires_grad for p in policy.autoencoder.parameters())


def test_trainable_obs_encoder_gets_gradients_through_raw_cond() -> None:
    policy = make_policy("policy.quest.rl_trainable=[prior, obs_encoder, goal_encoder]")
    out = policy.act(make_obs(4))
    assert {"state", "goal_features", "support"} <= set(out.cond) and "context" not in out.cond
    policy.freeze_for_rl()
    recomputed = policy.sequence_logprob(out.cond, out.decision)
    assert torch.allclose(recomputed, out.logprob, atol=1e-5)
    recomputed.sum().backward()
    assert policy.obs_encoder.state_mlp.weight.grad is not None
    assert policy.goal_encoder.proj.weight.grad is not None


def test_sft_losses_backprop_into_their_stage_only() -> None:
    from ript_fast.policies.base import SupervisedBatch

    policy = make_policy().train()
    batch = SupervisedBatch(make_obs(6), torch.rand(6, 16, 4) * 2 - 1, torch.ones(6, 16, dtype=torch.bool))
    loss, metrics = policy.sft_loss("autoencoder", batch)
    loss.backward()
    assert metrics["loss"] > 0 and policy.autoencoder.action_head.weight.grad is not None
    assert policy.prior.head.weight.grad is None
    policy.zero_grad(set_to_none=True)
    loss, metrics = policy.sft_loss("prior", batch)
    loss.backward()
    assert policy.prior.head.weight.grad is not None and policy.autoencoder.action_head.weight.grad is None
    assert {"prior_ce", "token_acc"} <= set(metrics)
    with pytest.raises(ValueError, match="stages"):
        policy.sft_loss("scale", batch)


def test_unknown_task_names_are_rejected() -> None:
    policy = make_policy()
    assert policy.task_ids_for(["push-v3", "reach-v3"]).tolist() == [1, 0]
    with pytest.raises(ValueError, match="drawer-open-v3"):
        policy.task_ids_for(["drawer-open-v3"])


def test_minilm_goal_embeddings_are_cached_and_distinct() -> None:
    policy = make_policy("policy.obs.language=minilm")
    obs = make_obs(4)
    feats = policy.goal_encoder.features(obs.instructions, obs.task_ids)
    assert feats.shape == (4, 384)
    reach, push = policy.goal_encoder.features(["reach", "push"], torch.zeros(2, dtype=torch.long))
    assert not torch.allclose(reach, push) and torch.allclose(reach.norm(), torch.tensor(1.0), atol=1e-4)
    out = policy.act(obs)
    assert torch.allclose(policy.sequence_logprob(out.cond, out.decision), out.logprob, atol=1e-5)


@pytest.mark.parametrize("trunk", ["small_cnn", "resnet18"])
def test_image_observations_are_resized_encoded_and_rescored(trunk: str) -> None:
    policy = make_policy(
        "policy.obs.image_keys=[rgb]",
        "policy.obs.image_size=32",
        f"policy.obs.image_trunk={trunk}",
        "policy.obs.image_embed_dim=16",
        "policy.quest.rl_trainable=[prior, obs_encoder]",
    )
    obs = make_obs(3)
    obs.images = {"rgb": torch.randint(0, 255, (3, 48, 48, 3), dtype=torch.uint8)}
    out = policy.act(obs)
    assert out.cond["image/rgb"].dtype == torch.uint8 and out.cond["image/rgb"].shape == (3, 48, 48, 3)
    policy.freeze_for_rl()
    recomputed = policy.sequence_logprob(out.cond, out.decision)
    assert torch.allclose(recomputed, out.logprob, atol=1e-5)
    recomputed.sum().backward()
    assert policy.obs_encoder.images["rgb"].proj.weight.grad is not None
    with pytest.raises(ValueError, match="lacks the image 'rgb'"):
        policy.act(make_obs(2))
