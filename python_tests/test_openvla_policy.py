"""The `openvla` policy family on a tiny official-layout folder: acting (greedy = the model's own decoding, samples
with the log-probs they were drawn with), re-scoring through the fused linear ops, a PPO step into LoRA only, the
executed actions, checkpoints without the base weights, the folder as an eval checkpoint, and the run checks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ript_fast import ops
from ript_fast.config import ConfigError
from ript_fast.policies.base import Observation, PolicySpec, Scores
from ript_fast.policies.config import PolicyConfig
from ript_fast.policies.factory import build_policy, check_policy_files
from ript_fast.policies.obs_encoder import ObsConfig
from ript_fast.policies.openvla.policy_config import OpenVLAPolicyConfig
from ript_fast.policies.openvla_oft import FolderError
from ript_fast.policies.openvla_oft.images import pixel_values
from ript_fast.policies.openvla_oft.libero_inputs import policy_image
from ript_fast.train.checkpoint import load_policy, read_checkpoint_meta, save_policy

CAMERA = "agentview_rgb"
TEXTS = ["put the bowl on the plate", "open the drawer", "open it"]


def policy_config(folder: Path, cameras: list[str] | None = None, **settings) -> PolicyConfig:
    return PolicyConfig(
        family="openvla",
        obs=ObsConfig(state_keys=["ee_pos"], image_keys=cameras or [CAMERA], render_size=256),
        openvla=OpenVLAPolicyConfig(checkpoint=str(folder), **settings),
    )


def make_policy(folder: Path, **settings) -> torch.nn.Module:
    spec = PolicySpec(action_dim=7, state_dim=3, task_names=[], instructions=[])
    torch.manual_seed(0)
    return build_policy(policy_config(folder, **settings), spec).eval()


def observation(n: int = 3, seed: int = 0, size: int = 64) -> Observation:
    rng = np.random.default_rng(seed)
    return Observation(
        state=torch.zeros(n, 3),
        instructions=[TEXTS[i % len(TEXTS)] for i in range(n)],
        task_ids=torch.zeros(n, dtype=torch.long),
        images={CAMERA: torch.from_numpy(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))},
    )


@pytest.fixture(scope="module")
def policy(openvla_folder: Path):
    return make_policy(openvla_folder)


def test_greedy_acting_is_the_models_decoding_of_the_official_inputs(policy, openvla_folder: Path) -> None:
    """sample=False: the prompt, the one camera after the official LIBERO steps, greedy decoding (LoRA starts as the
    identity), then the bin centers un-normalized without epsilon (predict_action) and the gripper mapped to -1/+1."""
    obs = observation()
    out = policy.act(obs, sample=False)
    assert out.decision.shape == (3, 7) and out.decision.dtype == torch.int64 and out.actions.shape == (3, 1, 7)
    images = np.stack([policy_image(img) for img in obs.images[CAMERA].numpy()])
    assert torch.equal(out.cond[f"image/{CAMERA}"], torch.from_numpy(images))
    px = pixel_values([images], policy.image_normalization)
    tokens, logits = policy.model.decode(px, out.cond["input_ids"], out.cond["attention_mask"], lambda x: x.argmax(-1))
    assert torch.equal(out.decision, tokens)
    stats = policy.statistics.action
    normalized = policy.model.cfg.bins.to_normalized(tokens.numpy())
    raw = np.where(stats.mask, 0.5 * (normalized + 1) * (stats.high - stats.low) + stats.low, normalized)
    raw[:, -1] = -np.sign(2 * raw[:, -1] - 1)
    torch.testing.assert_close(out.actions[:, 0], torch.as_tensor(raw, dtype=torch.float32).clamp(-1, 1))
    torch.testing.assert_close(out.logprob, torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0])


@pytest.mark.parametrize(("temperature", "dtype"), [(1.0, "float32"), (0.5, "float32"), (1.0, "bfloat16")])
def test_sampled_tokens_and_their_logprobs_rescore_through_the_fused_op(
    openvla_folder: Path, temperature: float, dtype: str
) -> None:
    """The stored log-probs are log softmax(bin logits / T) of the drawn tokens; `score`'s linear head gives those
    logits and `sequence_logprob` (linear_categorical_logprob on the hidden states and the 256 head rows) the same
    values, also in bfloat16 (the decoding's KV-cached passes and the teacher-forced one round alike: within 1e-5)."""
    policy = make_policy(openvla_folder, temperature=temperature, dtype=dtype)
    torch.manual_seed(3)
    out = policy.act(observation(), sample=True)
    assert out.decision.min() >= 0 and out.decision.max() < 256
    scores = policy.score(out.cond, out.decision)
    assert scores.logits is None and scores.token_logits().shape == (3, 7, 256)
    from_logits = torch.log_softmax(scores.token_logits(), -1).gather(-1, out.decision[..., None])[..., 0]
    torch.testing.assert_close(from_logits, out.logprob, atol=1e-5, rtol=0)
    torch.testing.assert_close(policy.sequence_logprob(out.cond, out.decision), out.logprob, atol=1e-5, rtol=0)
    other = policy.act(observation(2, seed=5), sample=True)  # conds of two queries concatenate
    cond = {k: torch.cat([out.cond[k], other.cond[k]]) for k in out.cond}
    both = policy.sequence_logprob(cond, torch.cat([out.decision, other.decision]))
    torch.testing.assert_close(both, torch.cat([out.logprob, other.logprob]), atol=1e-5, rtol=0)


def test_sampling_draws_from_the_tempered_bin_distribution(policy) -> None:
    """400 draws of one query's first token: their mean log-prob is minus the entropy of softmax(logits / T) (T = 1),
    within 4 standard errors, far from what always taking the argmax would give."""
    one = observation(1)
    many = Observation(
        None,
        one.instructions * 400,
        torch.zeros(400, dtype=torch.long),
        {CAMERA: one.images[CAMERA].expand(400, -1, -1, -1)},
    )
    greedy = policy.act(one, sample=False)
    logp = torch.log_softmax(policy.score(greedy.cond, greedy.decision).token_logits()[0, 0].detach(), -1)
    torch.manual_seed(7)
    drawn = logp[policy.act(many, sample=True).decision[:, 0]]
    entropy = -(logp.exp() * logp).sum()
    spread = ((logp.exp() * logp**2).sum() - entropy**2).sqrt() / 20
    assert abs(drawn.mean() + entropy) < 4 * spread
    assert abs(logp.max() + entropy) > 8 * spread


def test_rl_trains_lora_on_every_linear_layer_of_the_lm_only(openvla_folder: Path) -> None:
    policy = make_policy(openvla_folder)
    groups = policy.freeze_for_rl()
    assert {g["name"] for g in groups} == {"lora"} and {g["lr"] for g in groups} == {1e-4}
    lora = [n for n, p in policy.named_parameters() if "lora_" in n]
    targets = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in lora}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert dict(policy.named_parameters())[next(n for n in lora if "lora_A" in n)].shape[0] == 32
    scaling = next(m for m in policy.modules() if hasattr(m, "scaling") and isinstance(m.scaling, dict)).scaling
    assert set(scaling.values()) == {16 / 32}  # alpha 16
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable == set(lora) and not any("lm_head" in n or "vision" in n for n in trainable)


@pytest.mark.parametrize(
    ("ratio_level", "average"), [("token", "tokens"), ("token", "rollouts"), ("sequence", "tokens")]
)
def test_the_trainers_ppo_step_runs_the_fused_linear_loss_and_moves_lora_only(
    openvla_folder: Path, ratio_level: str, average: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer's `ppo_loss` on a RolloutBatch of this policy's samples (ragged: 3 rollouts of 2, 2 and 1 queries)
    goes through `linear_categorical_ppo_loss` (hidden states x the 256 head rows, never the logits) and equals
    `categorical_ppo_loss` on the materialized logits, loss and LoRA gradients; ratio 1 before the update; an AdamW
    step on `freeze_for_rl`'s groups changes LoRA alone and the log-probs."""
    from ript_fast.train import ppo
    from ript_fast.train.rollout import _pack

    policy = make_policy(openvla_folder)
    groups = policy.freeze_for_rl()
    torch.manual_seed(2)
    queries = [(np.arange(3), policy.act(observation(3), sample=True))]
    queries.append((np.arange(2), policy.act(observation(2, seed=4), sample=True)))
    queries.append((np.arange(1), policy.act(observation(1, seed=6), sample=True)))
    batch = _pack(queries, 3, np.array([True, False, True]), np.array([3, 2, 1]), np.arange(3))
    advantages = torch.tensor([0.5, -1.0, 0.5])
    settings = ppo.PPOSettings(1, 3, 0.1, None, ratio_level, 1.0, average)
    calls: list[str] = []
    fused_op = ops.linear_categorical_ppo_loss
    monkeypatch.setattr(ppo.ops, "categorical_ppo_loss", lambda *a, **k: calls.append("logits"))
    monkeypatch.setattr(
        ppo.ops, "linear_categorical_ppo_loss", lambda *a, **k: calls.append("fused") or fused_op(*a, **k)
    )
    loss, stats = ppo.ppo_loss(policy, batch, advantages, settings)
    assert calls == ["fused"]
    torch.testing.assert_close(stats["ratio"], torch.tensor(1.0), atol=1e-5, rtol=0)
    loss.backward()
    fused_grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
    policy.zero_grad()
    monkeypatch.undo()
    with monkeypatch.context() as patch:  # the same loss from the materialized logits
        linear = policy.score
        patch.setattr(policy, "score", lambda cond, decision: Scores(logits=linear(cond, decision).token_logits()))
        eager, _ = ppo.ppo_loss(policy, batch, advantages, settings)
    eager.backward()
    torch.testing.assert_close(loss, eager, atol=1e-6, rtol=1e-5)
    assert fused_grads and any(g.abs().sum() > 0 for g in fused_grads.values())
    for name, grad in fused_grads.items():
        torch.testing.assert_close(grad, dict(policy.named_parameters())[name].grad, atol=1e-6, rtol=1e-4)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    torch.optim.AdamW(groups).step()
    changed = {n for n, p in policy.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    _, after = ppo.ppo_loss(policy, batch, advantages, settings)
    assert abs(float(after["ratio"]) - 1.0) > 1e-6


def test_a_checkpoint_holds_lora_and_reloads_equal(policy, openvla_folder: Path, tmp_path: Path) -> None:
    with torch.no_grad():
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                p.add_(torch.randn_like(p) * 0.05)
    state = policy.checkpoint_state()
    assert state and all("lora_" in k for k in state)
    again = load_policy(save_policy(policy, tmp_path / "policy.safetensors")).eval()
    assert again.family == "openvla"
    obs = observation(2)
    torch.testing.assert_close(again.act(obs, sample=False).logprob, policy.act(obs, sample=False).logprob)


def test_the_official_folder_is_an_eval_checkpoint(openvla_folder: Path) -> None:
    """`eval --ckpt <folder>` reads it as the openvla family with the official LIBERO inputs (one camera, 256 px)."""
    meta = read_checkpoint_meta(openvla_folder)
    assert meta["family"] == "openvla" and meta["spec"]["action_dim"] == 7
    assert meta["policy"]["obs"]["image_keys"] == [CAMERA] and meta["policy"]["obs"]["render_size"] == 256
    loaded = load_policy(openvla_folder)
    assert loaded.family == "openvla" and not any("lora_B" in k and v.abs().sum() > 0 for k, v in
                                                  loaded.state_dict().items())  # fmt: skip


def test_an_oft_folder_without_its_action_head_is_not_taken_for_openvla(oft_folder: Path, tmp_path: Path) -> None:
    """The two kinds of folder are told apart by OFT's component files: an OFT folder that lost its action head is
    refused as an OFT folder, not evaluated as vanilla OpenVLA."""
    copy = Path(shutil.copytree(oft_folder, tmp_path / oft_folder.name))
    next(copy.glob("action_head--*")).unlink()
    with pytest.raises(FolderError, match=r"action_head--\*_checkpoint\.pt is missing"):
        read_checkpoint_meta(copy)


def test_run_checks_refuse_a_second_camera_and_a_bad_folder(openvla_folder: Path, tmp_path: Path) -> None:
    check_policy_files(policy_config(openvla_folder))
    with pytest.raises(ConfigError, match="OpenVLA reads one"):
        check_policy_files(policy_config(openvla_folder, cameras=[CAMERA, "eye_in_hand_rgb"]))
    with pytest.raises(FolderError, match="libero_10"):
        check_policy_files(policy_config(openvla_folder, unnorm_key="libero_10"))
    unset = policy_config(openvla_folder)
    unset.openvla.checkpoint = ""
    with pytest.raises(ConfigError, match=r"policy\.openvla\.checkpoint"):
        check_policy_files(unset)
    with pytest.raises(FolderError, match="is not a folder"):
        check_policy_files(policy_config(tmp_path / "gone"))
