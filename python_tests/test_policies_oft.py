"""OFT-style policy on a tiny Llama saved to a temp folder: LoRA, heads, log-probs, SFT stages, checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from python_tests.ppo_fixtures import tiny_llama
from ript_fast.config import from_dict
from ript_fast.data import Episode, write_demo_file
from ript_fast.policies.base import Observation, PolicySpec, SupervisedBatch
from ript_fast.policies.config import PolicyConfig
from ript_fast.policies.factory import build_policy
from ript_fast.policies.oft.policy import OftPolicy
from ript_fast.train.checkpoint import load_policy, save_policy
from ript_fast.train.sft import SftConfig, StageConfig, run_sft

SPEC = PolicySpec(action_dim=4, state_dim=39, task_names=["reach-v3", "push-v3"], instructions=["reach", "push it"])


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


def policy_config(backbone_dir: Path, **oft: object) -> PolicyConfig:
    oft = {
        "backbone_path": str(backbone_dir),
        "lora_rank": 4,
        "chunk_size": 4,
        "action_horizon": 2,
        "max_instruction_tokens": 12,
        **oft,
    }
    return from_dict(PolicyConfig, {"family": "oft", "obs": {"state_embed_dim": 16}, "oft": oft})


def make_policy(backbone_dir: Path, **oft: object) -> OftPolicy:
    policy = build_policy(policy_config(backbone_dir, **oft), SPEC)
    assert isinstance(policy, OftPolicy)
    return policy.eval()


def obs(n: int) -> Observation:
    tasks = torch.arange(n) % 2
    return Observation(torch.randn(n, 39), [SPEC.instructions[t] for t in tasks], tasks)


def test_lora_wraps_every_linear_and_only_lora_trains_in_the_backbone(backbone_dir: Path) -> None:
    policy = make_policy(backbone_dir)
    lora = [n for n, p in policy.backbone.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in n for n in lora)
    assert any("mlp.down_proj.lora_A" in n for n in lora) and any("self_attn.o_proj.lora_B" in n for n in lora)
    peft_cfg = policy.backbone.peft_config["default"]
    assert peft_cfg.r == 4 and peft_cfg.lora_alpha == 4 and peft_cfg.lora_dropout == 0.0
    assert policy.tokenizer.is_byte_fallback


def test_act_shapes_scale_and_clip(backbone_dir: Path) -> None:
    policy = make_policy(backbone_dir)
    out = policy.act(obs(5))
    assert out.actions.shape == (5, 2, 4) and out.actions.abs().max() <= 1
    assert out.decision.shape == (5, 4, 4) and out.logprob.shape == (5, 4)
    assert set(out.cond) == {"state", "input_ids", "attention_mask"}
    assert out.cond["input_ids"].shape == (5, 12) and out.cond["attention_mask"][1].sum() == len(b"push it")
    scores = policy.score(out.cond, out.decision)
    # fresh scale head: log-scale ~ its bias -3, clipped to -2, plus log(5) for the sampling factor
    assert torch.allclose(scores.log_scale, torch.full_like(scores.log_scale, -2.0 + math.log(5.0)), atol=1e-3)
    greedy = policy.act(obs(5), sample=False)
    assert torch.equal(greedy.decision, policy.score(greedy.cond, greedy.decision).loc)


@pytest.mark.parametrize(("distribution", "with_factor"), [("laplace", True), ("laplace", False), ("gaussian", True)])
def test_sampled_logprob_equals_recomputed(backbone_dir: Path, distribution: str, with_factor: bool) -> None:
    policy = make_policy(backbone_dir, distribution=distribution, score_with_sampling_scale=with_factor)
    out = policy.act(obs(6))
    assert torch.allclose(out.logprob, policy.sequence_logprob(out.cond, out.decision), atol=1e-5)
    scores = policy.score(out.cond, out.decision)
    dist = torch.distributions.Laplace if distribution == "laplace" else torch.distributions.Normal
    expected = dist(scores.loc, scores.log_scale.exp()).log_prob(out.decision).sum(-1)
    assert torch.allclose(out.logprob, expected, atol=1e-4)


def test_forward_backward_reaches_lora_and_heads(backbone_dir: Path) -> None:
    policy = make_policy(backbone_dir)
    out = policy.act(obs(3))
    groups = policy.freeze_for_rl()
    assert [g["name"] for g in groups] == ["lora", "heads", "heads/no_decay"]
    assert groups[0]["lr"] == 1e-4 and groups[1]["lr"] == 1e-5
    policy.sequence_logprob(out.cond, out.decision).sum().backward()
    lora_b = [p for n, p in policy.backbone.named_parameters() if "lora_B" in n]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)
    assert policy.action_head.net[1].weight.grad is not None
    assert all(p.grad is None for p in policy.scale_head.parameters())  # fixed in RIPT by default
    assert all(p.grad is None for n, p in policy.backbone.named_parameters() if "lora_" not in n)


def test_sft_stages_train_their_parts(backbone_dir: Path) -> None:
    policy = make_policy(backbone_dir).train()
    batch = SupervisedBatch(obs(4), torch.rand(4, 4, 4) * 2 - 1, torch.ones(4, 4, dtype=torch.bool))
    loss, _ = policy.sft_loss("action", batch)
    loss.backward()
    assert policy.scale_head.log_scale.weight.grad is None and policy.action_queries.grad is not None
    policy.zero_grad(set_to_none=True)
    nll, metrics = policy.sft_loss("scale", batch)
    nll.backward()
    assert policy.scale_head.log_scale.weight.grad is not None and policy.action_head.net[1].weight.grad is None
    assert "mean_log_scale" in metrics


def test_scale_nll_training_learns_the_spread_and_checkpoint_skips_base(backbone_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    episodes = [
        Episode(
            rng.uniform(-1, 1, (12, 4)).astype(np.float32),
            {"state": rng.normal(size=(12, 39)).astype(np.float32)},
            np.zeros((12, 3)),
            np.zeros(12),
            np.zeros(12),
        )
        for _ in range(2)
    ]
    demos = write_demo_file(tmp_path / "d.hdf5", episodes, "metaworld/reach-v3", "reach-v3", "reach")
    cfg = SftConfig(
        demos=[str(demos)],
        policy=policy_config(backbone_dir, log_scale_clip=None),
        progress=False,
        stages=[StageConfig("action", 3, lr=1e-3, batch_size=8), StageConfig("scale", 40, lr=1e-2, batch_size=16)],
    )
    ckpt = run_sft(cfg, tmp_path / "run")
    policy = load_policy(ckpt).eval()
    out = policy.act(Observation(torch.randn(8, 39), ["reach"] * 8, torch.zeros(8, dtype=torch.long)))
    raw = policy.score(out.cond, out.decision).log_scale - math.log(5.0)
    assert raw.mean() > -2.0  # widened from the -3 init toward the (uniform, wide) data spread
    from safetensors import safe_open

    with safe_open(str(ckpt), framework="pt") as f:
        keys = list(f.keys())
    assert any("lora_A" in k for k in keys) and not any(k.endswith("q_proj.base_layer.weight") for k in keys)
    again = load_policy(save_policy(policy, tmp_path / "copy.safetensors")).eval()
    torch.manual_seed(0)
    a = policy.act(Observation(torch.ones(2, 39), ["reach"] * 2, torch.zeros(2, dtype=torch.long)))
    torch.manual_seed(0)
    b = again.act(Observation(torch.ones(2, 39), ["reach"] * 2, torch.zeros(2, dtype=torch.long)))
    assert torch.equal(a.decision, b.decision) and torch.equal(a.logprob, b.logprob)


def test_missing_backbone_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="backbone_path"):
        build_policy(policy_config(tmp_path / "nowhere"), SPEC)
