"""The `openvla` policy family: an official OpenVLA checkpoint + LoRA on its LM, acting by its action tokens.

A query is one env step (OpenVLA predicts one action, re-queried every step as the official LIBERO evaluation does):
the 7 action tokens decoded one after the other (`OpenVLA.decode`, KV cache). The decision is the 7 bins (n, 7) int64,
`ChunkSample.logprob` their per-token log-probs at sampling time. Rollouts (`act(sample=True)`) draw each token from
softmax(action-bin logits / temperature) over the 256 bins only; evaluation takes the argmax (the official greedy
decoding, which argmaxes over the whole vocabulary: the same token whenever that is an action token, as it is for a
trained model). Executed actions: bin centers, un-normalized with the q01/q99 bounds as `predict_action` (no epsilon),
then the official LIBERO `process_action` (gripper to -1/+1), clipped to [-1, 1].

Scoring (RIPT's PPO): `action_hidden_states` re-runs the stored prompt, image and the first six tokens (teacher
forcing) and reads the 7 hidden states the tokens were drawn from. Their logits are only ever the LM head's 256 action
rows: `score` returns the hidden states, those rows and the temperature, which the log-probs and the trainer's PPO
loss take to the fused ops `linear_categorical_logprob` / `linear_categorical_ppo_loss`, so no (n, 7, 32064) logits
exist, nor even (n, 7, 256) ones. By default the image + prompt prefix runs once without gradients (`prefix_grad`,
as OpenVLA-OFT).

`cond` (fixed per-row shapes): `input_ids` / `attention_mask` padded after BOS to `max_prompt_tokens`, and
`image/<key>` the one camera as the 224 px uint8 image after the official LIBERO steps (rotation, JPEG round trip,
lanczos resize, center crop). Trainable: LoRA (rank 32, alpha min(rank, 16), all linear layers of the LM; the LM head
keeps its rows). Checkpoints hold LoRA; the base is re-read from `openvla.checkpoint`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

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
from ript_fast.policies.obs_encoder import ObsConfig
from ript_fast.policies.openvla.loader import load_openvla
from ript_fast.policies.openvla.policy_config import OpenVLAPolicyConfig
from ript_fast.policies.openvla_oft.libero_inputs import env_actions
from ript_fast.policies.openvla_oft.lora import inject_lora, lora_parameters
from ript_fast.policies.openvla_oft.normalization import unnormalize_actions
from ript_fast.policies.openvla_oft.query_inputs import cond_pixels, prompt_image_cond
from ript_fast.policies.param_groups import decay_groups


class OpenVLAPolicy(Policy):
    family = "openvla"
    action_kind = "categorical"
    action_horizon = 1  # one action per query, every step
    chunk_size = 1
    sft_stages = ()  # the LIBERO fine-tunes are RIPT's stage-2 policies as downloaded
    samples_in_eval = False  # the paper numbers are greedy
    task_conditioned = False  # one model for every task, told apart by the instruction text

    def __init__(self, cfg: OpenVLAPolicyConfig, obs_cfg: ObsConfig, spec: PolicySpec) -> None:
        super().__init__()
        if not cfg.checkpoint:
            raise ValueError("policy.openvla.checkpoint must name an OpenVLA checkpoint folder")
        if len(obs_cfg.image_keys) != 1:
            raise ValueError(f"policy.obs.image_keys names {len(obs_cfg.image_keys)} camera(s); OpenVLA reads one")
        dtype = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
        ckpt = load_openvla(cfg.checkpoint, unnorm_key=cfg.unnorm_key, dtype=dtype)
        if spec.action_dim != ckpt.model.cfg.action_dim:
            raise ValueError(
                f"the data has {spec.action_dim}-d actions; the checkpoint's statistics have "
                f"{ckpt.model.cfg.action_dim}"
            )
        self.cfg = cfg
        self.action_dim = spec.action_dim
        self.task_names = list(spec.task_names)
        self.image_keys = list(obs_cfg.image_keys)
        self.model = ckpt.model
        self.tokenizer = ckpt.tokenizer
        self.statistics = ckpt.statistics
        self.image_normalization = ckpt.image_normalization
        inject_lora(self.model.vlm.language_model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)

    # ---- inputs and outputs -------------------------------------------------------------------------------------
    def _cond(self, obs: Observation) -> dict[str, torch.Tensor]:
        return prompt_image_cond(
            obs, self.tokenizer, self.image_keys, self.cfg.max_prompt_tokens, self.cfg.center_crop, self.device
        )

    def _pixels(self, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        return cond_pixels(cond, self.image_keys, self.image_normalization, next(self.model.parameters()))

    def env_actions(self, bins: torch.Tensor) -> torch.Tensor:
        """Bins (n, action_dim) -> LIBERO actions (n, 1, action_dim): bin centers un-normalized as `predict_action`
        does (no epsilon), gripper -1/+1, clipped to [-1, 1]."""
        normalized = self.model.cfg.bins.to_normalized(bins.detach().cpu().numpy())
        raw = unnormalize_actions(normalized, self.statistics.action, eps=0.0)
        return torch.as_tensor(env_actions(raw), dtype=torch.float32)[:, None].clamp(ACTION_LOW, ACTION_HIGH)

    # ---- acting and scoring -------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Observation, sample: bool = True) -> ChunkSample:
        cond = self._cond(obs)
        temperature = self.cfg.temperature

        def choose(logits: torch.Tensor) -> torch.Tensor:
            if not sample:
                return logits.argmax(dim=-1)
            return torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1)[:, 0]

        bins, logits = self.model.decode(self._pixels(cond), cond["input_ids"], cond["attention_mask"], choose)
        logprob = torch.log_softmax(logits / temperature, dim=-1).gather(-1, bins[..., None])[..., 0]
        return ChunkSample(self.env_actions(bins).to(bins.device), bins, logprob, cond)

    def _hidden(self, cond: dict[str, torch.Tensor], decision: torch.Tensor) -> torch.Tensor:
        """(n, action_dim, D): the hidden states the stored bins were drawn from, with gradients (teacher forcing)."""
        return self.model.action_hidden_states(
            self._pixels(cond),
            cond["input_ids"],
            cond["attention_mask"],
            decision,
            prefix_grad=self.cfg.prefix_grad,
            checkpoint=self.cfg.gradient_checkpointing,
        )

    def score(self, cond: dict[str, torch.Tensor], decision: torch.Tensor) -> Scores:
        """The hidden states the stored bins were drawn from and the 256 action rows of the LM head, over the
        temperature: the distribution `act` draws from, which the trainer's log-probs and PPO loss take to the fused
        linear ops (`Scores.token_logits()` makes the (n, action_dim, 256) logits for a caller that wants them)."""
        return Scores(
            hidden=self._hidden(cond, decision), head_weight=self.model.bin_weight(), temperature=self.cfg.temperature
        )

    def rl_param_groups(self) -> list[dict[str, Any]]:
        return decay_groups(lora_parameters(self.model), self, self.cfg.lora_lr, self.cfg.rl_weight_decay, "lora")

    # ---- no supervised stage ------------------------------------------------------------------------------------
    def sft_parameters(self, stage: str) -> list[nn.Parameter]:
        raise ValueError(f"openvla has no supervised stage {stage!r}: its folders come fine-tuned")

    def sft_loss(self, stage: str, batch: SupervisedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        raise ValueError(f"openvla has no supervised stage {stage!r}: its folders come fine-tuned")

    def fit_normalizers(self, states: torch.Tensor, actions: torch.Tensor) -> None:
        """Nothing to fit: the checkpoint's statistics fix the normalization."""

    # ---- checkpoints: the frozen base is re-read from the folder ------------------------------------------------
    def is_base_weight(self, key: str) -> bool:
        return key.startswith("model.") and "lora_" not in key
