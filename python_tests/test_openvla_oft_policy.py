"""The `openvla_oft` policy family on a tiny official-layout folder: acting (mean = the official evaluation's chunk,
samples with the log-probs they were drawn with), re-scoring with gradients into LoRA, RIPT's param groups (LoRA and
heads apart, scale head frozen unless switched on), the `scale` SFT stage, and checkpoints without the base weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ript_fast.policies.base import Observation, PolicySpec, SupervisedBatch
from ript_fast.policies.config import PolicyConfig
from ript_fast.policies.factory import build_policy
from ript_fast.policies.obs_encoder import ObsConfig
from ript_fast.policies.openvla_oft.libero_batch import actions_for_env, mean_chunk, prepare_libero_batch
from ript_fast.policies.openvla_oft.loader import load_openvla_oft
from ript_fast.policies.openvla_oft.policy_config import OpenVLAOFTPolicyConfig
from ript_fast.policies.openvla_oft.scale_head import save_released_layout
from ript_fast.train.checkpoint import load_policy, save_policy

CAMERAS = ["agentview_rgb", "eye_in_hand_rgb"]
TEXTS = ["put the bowl on the plate", "open the drawer", "open it"]


@pytest.fixture(scope="module")
def folder(oft_folder: Path) -> Path:
    """The session's tiny random folder (conftest); tests that damage one work on a copy."""
    return oft_folder


def make_policy(folder: Path, **settings) -> torch.nn.Module:
    cfg = PolicyConfig(
        family="openvla_oft",
        obs=ObsConfig(state_keys=["state"], image_keys=list(CAMERAS)),
        openvla_oft=OpenVLAOFTPolicyConfig(checkpoint=str(folder), **settings),
    )
    spec = PolicySpec(action_dim=7, state_dim=16, task_names=["goal"], instructions=["open the drawer"])
    torch.manual_seed(0)
    return build_policy(cfg, spec).eval()


def observation(n: int = 3, seed: int = 0, size: int = 64) -> Observation:
    rng = np.random.default_rng(seed)
    state = rng.uniform(-0.5, 0.5, (n, 16))
    quat = rng.normal(size=(n, 4))
    state[:, 10:14] = quat / np.linalg.norm(quat, axis=1, keepdims=True)
    images = {k: torch.from_numpy(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)) for k in CAMERAS}
    return Observation(
        state=torch.as_tensor(state, dtype=torch.float32),
        instructions=[TEXTS[i % len(TEXTS)] for i in range(n)],
        task_ids=torch.zeros(n, dtype=torch.long),
        images=images,
    )


def test_eval_acts_with_the_official_evaluation_chunk(folder: Path) -> None:
    """sample=False: the executed chunk is what the official LIBERO path (prepare -> mean -> process) gives."""
    policy = make_policy(folder)
    obs = observation()
    out = policy.act(obs, sample=False)
    ckpt = load_openvla_oft(folder)
    inputs = prepare_libero_batch(ckpt, [obs.images[k].numpy() for k in CAMERAS], obs.state.double().numpy(), TEXTS)
    official = mean_chunk(ckpt, inputs)
    torch.testing.assert_close(out.decision, official, atol=1e-5, rtol=0)  # LoRA starts as the identity (B = 0)
    expected = torch.as_tensor(actions_for_env(ckpt, official), dtype=torch.float32).clamp(-1, 1)
    torch.testing.assert_close(out.actions, expected, atol=1e-4, rtol=0)
    assert out.actions.shape == (3, 8, 7) and out.logprob.shape == (3, 8)


def test_samples_are_laplace_with_the_sampling_factor_and_their_logprobs_rescore(folder: Path) -> None:
    policy = make_policy(folder)
    obs = observation()
    torch.manual_seed(1)
    out = policy.act(obs, sample=True)
    mean, log_scale = policy._heads(out.cond)
    assert (log_scale >= -2.0).all() and (log_scale <= 0.5).all()  # clipped (a fresh head sits at -3 -> -2)
    # the draw's spread: E|a - mean| = scale * factor per element (Laplace), within sampling noise of 168 draws
    spread = (out.decision - mean).abs().mean() / (log_scale.exp() * 5.0).mean()
    assert 0.8 < spread.item() < 1.2
    b = log_scale.exp() * 5.0
    closed_form = (-(out.decision - mean).abs() / b - b.log() - math.log(2)).sum(-1)
    torch.testing.assert_close(out.logprob, closed_form, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(policy.sequence_logprob(out.cond, out.decision), out.logprob, atol=1e-5, rtol=0)
    # conds of two queries (other prompts) concatenate and re-score as one batch
    other = policy.act(observation(2, seed=5), sample=True)
    cond = {k: torch.cat([out.cond[k], other.cond[k]]) for k in out.cond}
    both = policy.sequence_logprob(cond, torch.cat([out.decision, other.decision]))
    torch.testing.assert_close(both, torch.cat([out.logprob, other.logprob]), atol=1e-4, rtol=0)


def test_the_released_scoring_uses_the_unscaled_scale(folder: Path) -> None:
    policy = make_policy(folder, score_with_sampling_scale=False)
    out = policy.act(observation(), sample=True)
    mean, log_scale = policy._heads(out.cond)
    b = log_scale.exp()
    torch.testing.assert_close(
        out.logprob, (-(out.decision - mean).abs() / b - log_scale - math.log(2)).sum(-1), atol=1e-3, rtol=1e-5
    )


def test_rl_groups_lora_and_heads_apart_scale_head_frozen_by_default(folder: Path) -> None:
    policy = make_policy(folder)
    groups = policy.freeze_for_rl()
    names = {g["name"]: g for g in groups}
    assert {g["lr"] for g in groups if g["name"].startswith("lora")} == {1e-4}
    assert {g["lr"] for g in groups if g["name"].startswith("heads")} == {1e-5}
    lora = [n for n, p in policy.named_parameters() if "lora_" in n]
    assert lora and all(p.requires_grad for n, p in policy.named_parameters() if "lora_" in n)
    targets = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in lora}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}  # all linear
    a = dict(policy.named_parameters())[next(n for n in lora if "lora_A" in n)]
    assert a.shape[0] == 32  # rank 32
    assert not any(p.requires_grad for p in policy.scale_head.parameters())
    assert all(p.requires_grad for p in policy.model.action_head.parameters())
    base = [p for n, p in policy.named_parameters() if "lora_" not in n and "head" not in n]
    assert base and not any(p.requires_grad for p in base)
    assert sum(len(g["params"]) for g in names.values()) == len([p for p in policy.parameters() if p.requires_grad])
    # gradients of the re-scored log-prob reach LoRA (its B factor: A's gradient is 0 while B = 0)
    out = policy.act(observation(2), sample=True)
    policy.sequence_logprob(out.cond, out.decision).sum().backward()
    grads = [p.grad for n, p in policy.named_parameters() if "lora_B" in n]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    switched = make_policy(folder, rl_train_scale_head=True)
    switched.freeze_for_rl()
    assert all(p.requires_grad for p in switched.scale_head.parameters())


def test_the_scale_stage_trains_only_the_scale_head(folder: Path) -> None:
    policy = make_policy(folder)
    obs = observation(4)
    with torch.no_grad():
        mean = policy._heads(policy._cond(obs))[0]
    chunk = policy.env_actions(mean)  # demo chunks near the mean (env units), so the NLL has somewhere to go
    chunk[..., :6] += 0.02 * torch.randn_like(chunk[..., :6])
    batch = SupervisedBatch(obs=obs, actions=chunk, action_mask=torch.ones(4, 8, dtype=torch.bool))
    params = policy.sft_parameters("scale")
    assert {id(p) for p in params} == {id(p) for p in policy.scale_head.parameters()}
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    opt = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(15):
        loss, metrics = policy.sft_loss("scale", batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(metrics["loss"])
    assert losses[-1] < losses[0] - 0.5
    changed = {n for n, p in policy.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("scale_head.") for n in changed)
    with pytest.raises(ValueError, match="stages are"):
        policy.sft_loss("action", batch)


def test_normalize_actions_inverts_env_actions(folder: Path) -> None:
    policy = make_policy(folder)
    decision = torch.rand(2, 8, 7) * 2 - 1
    decision[..., -1] = (torch.rand(2, 8) > 0.5).float()  # the gripper the model emits: 1 open, 0 closed
    env = policy.env_actions(decision)
    back = policy.normalize_actions(env)
    torch.testing.assert_close(back[..., -1], decision[..., -1])
    inside = env[..., :6].abs() < 1  # the env's box clips the rest (the tiny statistics reach +-7)
    assert inside.sum() > 20
    torch.testing.assert_close(back[..., :6][inside], decision[..., :6][inside], atol=1e-6, rtol=0)


def test_a_checkpoint_holds_lora_and_heads_and_reloads_equal(folder: Path, tmp_path: Path) -> None:
    scale_file = tmp_path / "LIBERO_GOAL_scale_header.pth"
    torch.manual_seed(4)
    from ript_fast.policies.openvla_oft.scale_head import LaplaceScaleHead

    save_released_layout(LaplaceScaleHead(16, 7), scale_file)
    policy = make_policy(folder, scale_head_file=str(scale_file))
    with torch.no_grad():
        for n, p in policy.named_parameters():
            if "lora_B" in n or n.startswith("scale_head.") or n.startswith("model.action_head."):
                p.add_(torch.randn_like(p) * 0.01)
    state = policy.checkpoint_state()
    assert not any(k.startswith("model.vlm.") and "lora_" not in k for k in state)
    assert any("lora_" in k for k in state) and any(k.startswith("scale_head.") for k in state)
    path = save_policy(policy, tmp_path / "policy.safetensors")
    again = load_policy(path).eval()
    assert again.family == "openvla_oft"
    obs = observation(2)
    torch.testing.assert_close(again.act(obs, sample=False).decision, policy.act(obs, sample=False).decision)
    for k, v in state.items():
        assert torch.equal(again.state_dict()[k], v), k


def test_a_prompt_too_long_for_the_fixed_length_is_refused(folder: Path) -> None:
    policy = make_policy(folder, max_prompt_tokens=8)
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        policy.act(observation(1), sample=False)


def test_one_ppo_step_of_the_trainer_moves_lora_and_action_head_only(folder: Path) -> None:
    """The trainer's `ppo_loss` (per chunk-step ratios, clip 0.1) on a RolloutBatch of this policy's samples: ratio 1
    before the update, an AdamW step on `freeze_for_rl`'s groups changes the re-scored log-probs through LoRA and the
    action head, and the frozen scale head and base weights stay as they were."""
    from ript_fast.train.ppo import PPOSettings, ppo_loss
    from ript_fast.train.rollout import RolloutBatch

    policy = make_policy(folder)
    groups = policy.freeze_for_rl()
    torch.manual_seed(2)
    queries = [policy.act(observation(4, seed=s), sample=True) for s in range(2)]  # 4 rollouts x 2 queries
    batch = RolloutBatch(
        success=torch.tensor([True, False, True, False]),
        rewards=torch.tensor([1.0, 0.0, 1.0, 0.0]),
        context_ids=torch.zeros(4, dtype=torch.long),
        episode_steps=torch.full((4,), 16),
        query_mask=torch.tensor([[True, True], [True, True], [True, False], [True, True]]),
        decisions=torch.stack([q.decision for q in queries], dim=1),
        logprob_old=torch.stack([q.logprob for q in queries], dim=1),
        cond={k: torch.stack([q.cond[k] for q in queries], dim=1) for k in queries[0].cond},
    )
    advantages = torch.tensor([0.5, -0.5, 0.5, -0.5])
    settings = PPOSettings(epochs=1, minibatch_rollouts=4, clip_eps=0.1, clip_eps_high=0.1, ratio_level="token",
                           max_grad_norm=1.0)  # fmt: skip
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    loss, stats = ppo_loss(policy, batch, advantages, settings)
    torch.testing.assert_close(stats["ratio"], torch.tensor(1.0), atol=1e-4, rtol=0)
    opt = torch.optim.AdamW(groups)
    loss.backward()
    opt.step()
    changed = {n for n, p in policy.named_parameters() if not torch.equal(p, before[n])}
    assert any("lora_B" in n for n in changed) and any(n.startswith("model.action_head.") for n in changed)
    assert all("lora_" in n or n.startswith("model.action_head.") for n in changed), changed
    _, after = ppo_loss(policy, batch, advantages, settings)
    assert abs(after["ratio"].item() - 1.0) > 1e-6
