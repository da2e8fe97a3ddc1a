"""The `openvla_oft` policy family: an official OpenVLA-OFT checkpoint + RIPT's scale head + LoRA on the LM.

The chunk is a factorized Laplace (or Gaussian) over the normalized actions: mean from the L1 action head, scale from
the scale head (log-scale clipped to `log_scale_clip`). Rollouts (`act(sample=True)`) draw from scale *
`sampling_factor` (released: 5.0); evaluation takes the mean. With `score_with_sampling_scale` (default) the stored
and recomputed log-probs are those of the distribution the samples were drawn from; False scores with the unscaled
scale as the released code does. `ChunkSample.logprob` is (n, chunk_len): one value per chunk step, summed over the
action dimensions (`sum_on_action_dim`).

Observations are LIBERO's: the cameras named by `policy.obs.image_keys` (third-person first, then wrist), rendered as
the env returns them; `Observation.state` is LIBERO's 16-d state (`libero.vec_env.PROPRIO_SLICES`) or an 8-d raw proprio
(eef position, axis-angle, gripper fingers). Executed actions are the official `process_action` of the un-normalized
chunk (gripper to -1/+1), clipped to [-1, 1].

`cond` (fixed per-row shapes): `image/<key>` the 224 px uint8 images after the official steps (JPEG round trip,
lanczos resize, center crop), `input_ids` / `attention_mask` padded after BOS to `max_prompt_tokens`, `proprio` (8,)
normalized. LoRA changes the whole LM pass, so re-scoring recomputes it from these.

Memory of re-scoring (`score` with gradients): by default the prefix (BOS, images, proprio, prompt) runs without
gradients and only the action pass carries them (`prefix_grad`; the released code's approximation, with the values of
the plain pass: `model.cached_prefix_pass`); `gradient_checkpointing` recomputes each LM layer in the backward;
`score_queries_per_pass` bounds how many queries' activations are alive at once (`_heads_in_passes`), or
`score_pass_memory_gb` picks that number from a memory budget (`pass_memory.py`).
Acting and the `scale` stage run without gradients through the LM, in one plain pass.

Trainable sets: LoRA (rank 32, alpha min(rank, 16), all linear layers of the LM, peft, gaussian init) at `lora_lr`;
the action head (and the scale head with `rl_train_scale_head`) at `head_lr`. Supervised stage `scale`: the scale
head alone by NLL of the demos' chunks (`distribution.scale_nll`), LM and action head frozen.

Checkpoints hold LoRA, the action head and the scale head; the frozen base (vision, projectors, LM) is re-read from
`openvla_oft.checkpoint`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.utils.checkpoint
from torch import nn

from ript_fast.envs.libero.vec_env import PROPRIO_SLICES
from ript_fast.policies.base import (
    ACTION_HIGH,
    ACTION_LOW,
    ChunkSample,
    Observation,
    Policy,
    PolicySpec,
    Scores,
    SupervisedBatch,
)
from ript_fast.policies.logprob import continuous_logprob
from ript_fast.policies.obs_encoder import ObsConfig
from ript_fast.policies.openvla_oft.distribution import scale_nll
from ript_fast.policies.openvla_oft.libero_inputs import env_actions, libero_proprio
from ript_fast.policies.openvla_oft.loader import load_openvla_oft
from ript_fast.policies.openvla_oft.lora import inject_lora, lora_parameters
from ript_fast.policies.openvla_oft.normalization import EPS, normalize_proprio, unnormalize_actions
from ript_fast.policies.openvla_oft.pass_memory import queries_per_pass
from ript_fast.policies.openvla_oft.policy_config import OpenVLAOFTPolicyConfig
from ript_fast.policies.openvla_oft.query_inputs import cond_pixels, prompt_image_cond
from ript_fast.policies.openvla_oft.scale_head import clip_log_scale
from ript_fast.policies.param_groups import decay_groups

LIBERO_STATE_DIM = 16


class OpenVLAOFTPolicy(Policy):
    family = "openvla_oft"
    sft_stages = ("scale",)
    samples_in_eval = False  # the OFT numbers use the mean
    task_conditioned = False  # one model for every task, told apart by the instruction text

    def __init__(self, cfg: OpenVLAOFTPolicyConfig, obs_cfg: ObsConfig, spec: PolicySpec) -> None:
        super().__init__()
        if not cfg.checkpoint:
            raise ValueError("policy.openvla_oft.checkpoint must name an OpenVLA-OFT checkpoint folder")
        if cfg.action_horizon > cfg.chunk_len:
            raise ValueError(f"action_horizon {cfg.action_horizon} exceeds chunk_len {cfg.chunk_len}")
        if len(obs_cfg.image_keys) != cfg.num_images:
            raise ValueError(
                f"policy.obs.image_keys names {len(obs_cfg.image_keys)} camera(s); the model takes {cfg.num_images}"
            )
        dtype = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
        ckpt = load_openvla_oft(
            cfg.checkpoint,
            unnorm_key=cfg.unnorm_key,
            num_images=cfg.num_images,
            chunk_len=cfg.chunk_len,
            dtype=dtype,
            scale_head=cfg.scale_head_file or None,
        )
        if spec.action_dim != ckpt.model.cfg.action_dim:
            raise ValueError(f"the data has {spec.action_dim}-d actions; the checkpoint's head gives "
                             f"{ckpt.model.cfg.action_dim}")  # fmt: skip
        self.cfg = cfg
        self.action_kind = cfg.distribution
        self.action_dim = spec.action_dim
        self._sized_pass: int | None = None  # queries per re-scoring pass, once a memory budget has sized it
        self.action_horizon = cfg.action_horizon
        self.chunk_size = cfg.chunk_len
        self.task_names = list(spec.task_names)
        self.image_keys = list(obs_cfg.image_keys)
        self.model = ckpt.model
        assert ckpt.scale_head is not None
        self.scale_head = ckpt.scale_head
        self.tokenizer = ckpt.tokenizer
        self.statistics = ckpt.statistics
        self.image_normalization = ckpt.image_normalization
        inject_lora(self.model.vlm.language_model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)

    # ---- inputs -------------------------------------------------------------------------------------------------
    def _proprio(self, state: torch.Tensor | None) -> torch.Tensor | None:
        if self.statistics.proprio is None:
            return None
        if state is None:
            raise ValueError("this checkpoint reads proprio: Observation.state must hold LIBERO's state")
        raw = state.detach().cpu().double().numpy()
        if raw.shape[1] == LIBERO_STATE_DIM:
            raw = libero_proprio(*(raw[:, PROPRIO_SLICES[k]] for k in ("ee_pos", "ee_quat", "gripper_states")))
        elif raw.shape[1] != self.statistics.proprio.dim:
            raise ValueError(
                f"Observation.state has {raw.shape[1]} values; expected LIBERO's {LIBERO_STATE_DIM}-d state or the "
                f"{self.statistics.proprio.dim}-d proprio"
            )
        return torch.as_tensor(normalize_proprio(raw, self.statistics.proprio), dtype=torch.float32)

    def _cond(self, obs: Observation) -> dict[str, torch.Tensor]:
        device = self.device
        cond = prompt_image_cond(
            obs, self.tokenizer, self.image_keys, self.cfg.max_prompt_tokens, self.cfg.center_crop, device
        )
        proprio = self._proprio(obs.state)
        if proprio is not None:
            cond["proprio"] = proprio.to(device)
        return cond

    # ---- forward ------------------------------------------------------------------------------------------------
    def _hidden(self, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        param = next(self.model.parameters())
        pixels = cond_pixels(cond, self.image_keys, self.image_normalization, param)
        proprio = cond.get("proprio")
        proprio = None if proprio is None else proprio.to(param.dtype)
        return self.model.action_hidden_states(
            pixels,
            cond["input_ids"],
            cond["attention_mask"],
            proprio,
            prefix_grad=self.cfg.prefix_grad,
            checkpoint=self.cfg.gradient_checkpointing,
        )

    def _heads(self, cond: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, clipped log-scale), float32 (n, chunk_len, action_dim), normalized action space."""
        hidden = self._hidden(cond)
        mean = self.model.action_head(hidden).float()
        log_scale = clip_log_scale(self.scale_head(hidden).float(), self._clip())
        return mean, log_scale

    def _clip(self) -> tuple[float, float] | None:
        clip = self.cfg.log_scale_clip
        return None if clip is None else (float(clip[0]), float(clip[1]))

    def _scored_log_scale(self, log_scale: torch.Tensor) -> torch.Tensor:
        if self.cfg.score_with_sampling_scale:
            return log_scale + math.log(self.cfg.sampling_factor)
        return log_scale

    def env_actions(self, decision: torch.Tensor) -> torch.Tensor:
        """Normalized chunk (n, L, D) -> LIBERO actions (un-normalized, gripper -1/+1), clipped to [-1, 1]."""
        raw = unnormalize_actions(decision.detach().cpu().double().numpy(), self.statistics.action)
        out = torch.as_tensor(env_actions(raw), dtype=torch.float32)
        return out.clamp(ACTION_LOW, ACTION_HIGH)

    def normalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Env actions (..., D) -> the model's normalized space: the inverse of `env_actions` before the clip
        (gripper -1 open / +1 close -> 1 / 0)."""
        bounds = self.statistics.action
        a = actions.detach().cpu().double().numpy()
        scaled = 2 * (a - bounds.low) / (bounds.high - bounds.low + EPS) - 1
        out = np.where(bounds.mask, scaled, a)
        out[..., -1] = (1.0 - a[..., -1]) / 2.0
        return torch.as_tensor(out, dtype=torch.float32)

    # ---- acting and scoring -------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Observation, sample: bool = True) -> ChunkSample:
        cond = self._cond(obs)
        mean, log_scale = self._heads(cond)
        decision = mean
        if sample:
            scale = torch.exp(log_scale) * self.cfg.sampling_factor
            decision = mean + scale * self._unit_noise(mean)
        logprob = continuous_logprob(self.action_kind, mean, self._scored_log_scale(log_scale), decision)
        actions = self.env_actions(decision[:, : self.action_horizon]).to(decision.device)
        return ChunkSample(actions, decision, logprob, cond)

    def _unit_noise(self, like: torch.Tensor) -> torch.Tensor:
        if self.action_kind == "gaussian":
            return torch.randn_like(like)
        return torch.distributions.Laplace(torch.zeros_like(like), torch.ones_like(like)).sample()

    def score(self, cond: dict[str, torch.Tensor], decision: torch.Tensor) -> Scores:
        mean, log_scale = self._heads_in_passes(cond)
        return Scores(loc=mean, log_scale=self._scored_log_scale(log_scale))

    def _heads_in_passes(self, cond: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """`_heads` over passes of `score_queries_per_pass` queries. With gradients each pass is a torch checkpoint:
        its activations are dropped after its forward and recomputed when the backward reaches it, so one pass's
        activations are alive at a time however many queries the trainer's minibatch scores (the released code
        runs one query per forward and accumulates gradients). Same values and gradients; one more forward."""
        per_pass = self._queries_per_pass(cond)
        total = cond["input_ids"].shape[0]
        if per_pass == 0 or per_pass >= total:
            return self._heads(cond)
        parts = []
        for start in range(0, total, per_pass):
            part = {k: v[start : start + per_pass] for k, v in cond.items()}
            if torch.is_grad_enabled():
                parts.append(torch.utils.checkpoint.checkpoint(self._heads, part, use_reentrant=False))
            else:
                parts.append(self._heads(part))
        return torch.cat([m for m, _ in parts]), torch.cat([s for _, s in parts])

    def _queries_per_pass(self, cond: dict[str, torch.Tensor]) -> int:
        """`score_queries_per_pass`, or with `score_pass_memory_gb` the most queries whose pass fits the budget,
        measured once on the first minibatch scored with gradients (`pass_memory.queries_per_pass`)."""
        budget = self.cfg.score_pass_memory_gb
        if budget is None or not torch.is_grad_enabled():
            return self.cfg.score_queries_per_pass
        if self._sized_pass is None:
            frozen = [*self.parameters(), *self.buffers()]
            self._sized_pass = queries_per_pass(self._heads, cond, budget * 2**30, frozen)
        return self._sized_pass

    def rl_param_groups(self) -> list[dict[str, Any]]:
        heads = list(self.model.action_head.parameters())
        if self.cfg.rl_train_scale_head:
            heads += list(self.scale_head.parameters())
        wd = self.cfg.rl_weight_decay
        return [
            *decay_groups(lora_parameters(self.model), self, self.cfg.lora_lr, wd, "lora"),
            *decay_groups(heads, self, self.cfg.head_lr, wd, "heads"),
        ]

    # ---- supervised stages --------------------------------------------------------------------------------------
    def sft_parameters(self, stage: str) -> list[nn.Parameter]:
        if stage != "scale":
            raise ValueError(f"openvla_oft has no supervised stage {stage!r}; its stages are {self.sft_stages}")
        return list(self.scale_head.parameters())

    def sft_loss(self, stage: str, batch: SupervisedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """`scale`: NLL of the demos' normalized chunks under (frozen action head's mean, scale head's raw scale)."""
        self.sft_parameters(stage)
        cond = self._cond(batch.obs)
        with torch.no_grad():
            hidden = self._hidden(cond)
            mean = self.model.action_head(hidden).float()
        log_scale = self.scale_head(hidden).float()
        target = self.normalize_actions(batch.actions).to(mean.device)
        mask = batch.action_mask.to(mean.device).float()
        loss = scale_nll(self.action_kind, mean, log_scale, target, mask)
        return loss, {"loss": loss.item(), "nll_per_dim": loss.item(), "mean_log_scale": log_scale.mean().item()}

    def fit_normalizers(self, states: torch.Tensor, actions: torch.Tensor) -> None:
        """Nothing to fit: the checkpoint's dataset_statistics.json fixes the normalization."""

    # ---- checkpoints: the frozen base is re-read from the folder ------------------------------------------------
    def is_base_weight(self, key: str) -> bool:
        return key.startswith("model.") and "lora_" not in key and not key.startswith("model.action_head.")
