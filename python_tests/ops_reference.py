"""Plain float64 PyTorch references for the fused ops, written from the paper's equations (Eq. 6, 7, Sec. 4.3)
and the released code's token-level averaging. Slow and memory-hungry on purpose: they are the specification."""

from __future__ import annotations

import math

import torch

MAX_LOG_RATIO = 20.0


def weights_of(mask: torch.Tensor | None, shape: tuple[int, ...], device: torch.device | str) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.float64, device=device)
    return mask.to(torch.float64)


def categorical_logprob_ref(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """Eq. 7: sum_t w_bt log softmax(logits_bt / tau)[token_bt]; positions with w == 0 contribute exactly 0."""
    w = weights_of(mask, tuple(tokens.shape), logits.device)
    valid = w != 0
    safe_tokens = torch.where(valid, tokens.long(), 0)
    logp = torch.log_softmax(logits.double() / temperature, dim=-1).gather(-1, safe_tokens[..., None])[..., 0]
    per_token = torch.where(valid, w * logp, torch.zeros_like(logp))
    return per_token.sum(dim=1) if reduction == "sum" else per_token


def _continuous_ref(per_element: torch.Tensor, mask: torch.Tensor | None, reduction: str) -> torch.Tensor:
    w = weights_of(mask, tuple(per_element.shape[:2]), per_element.device)
    per_step = torch.where(w != 0, w * per_element.sum(dim=-1), torch.zeros_like(w))
    return per_step.sum(dim=1) if reduction == "sum" else per_step


def gaussian_logprob_ref(
    mean: torch.Tensor,
    log_std: torch.Tensor,
    actions: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "sum",
) -> torch.Tensor:
    mu, ls, a = mean.double(), log_std.double(), actions.double()
    logp = -((a - mu) ** 2) / (2 * torch.exp(2 * ls)) - ls - 0.5 * math.log(2 * math.pi)
    return _continuous_ref(logp, mask, reduction)


def laplace_logprob_ref(
    loc: torch.Tensor,
    log_scale: torch.Tensor,
    actions: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "sum",
) -> torch.Tensor:
    mu, ls, a = loc.double(), log_scale.double(), actions.double()
    logp = -torch.abs(a - mu) / torch.exp(ls) - ls - math.log(2.0)
    return _continuous_ref(logp, mask, reduction)


def ppo_terms_ref(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
) -> dict[str, torch.Tensor]:
    """Eq. 6 per element: -min(r A, clip(r, 1 - eps, 1 + eps_high) A), r = exp(clamped log-ratio)."""
    high = clip_eps if clip_eps_high is None else clip_eps_high
    adv = advantages.double()
    if logp_new.dim() == 2:
        adv = adv[:, None]
    log_ratio = (logp_new.double() - logp_old.double()).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    ratio = torch.exp(log_ratio)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_eps, 1 + high) * adv
    return {
        "loss": -torch.min(unclipped, clipped),
        "clipped": (clipped < unclipped).double(),
        "kl": (ratio - 1) - log_ratio,
        "ratio": ratio,
    }


def weighted_mean(values: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    total = w.sum()
    summed = torch.where(w != 0, w * values, torch.zeros_like(values)).sum()
    return summed / total if total > 0 else summed * 0


def ppo_clip_loss_ref(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The weighted mean over elements (rollouts, or valid tokens for per-token ratios) and the statistics."""
    terms = ppo_terms_ref(logp_new, logp_old, advantages, clip_eps, clip_eps_high)
    w = weights_of(mask, tuple(logp_new.shape), logp_new.device)
    stats = tuple(weighted_mean(terms[k], w).detach() for k in ("clipped", "kl", "ratio"))
    return weighted_mean(terms["loss"], w), stats  # type: ignore[return-value]


def categorical_ppo_loss_ref(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor | None = None,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Sequence ratios for (B,) logp_old (rollouts without a valid token left out), per-token ratios for (B, T)."""
    if logp_old.dim() == 1:
        logp_new = categorical_logprob_ref(logits, tokens, mask, temperature)
        rollout_mask = None if mask is None else (mask != 0).any(dim=1)
        return ppo_clip_loss_ref(logp_new, logp_old, advantages, clip_eps, clip_eps_high, rollout_mask)
    w = weights_of(mask, tuple(tokens.shape), logits.device)
    per_token = categorical_logprob_ref(logits, tokens, (w != 0), temperature, reduction="none")
    return ppo_clip_loss_ref(per_token, logp_old, advantages, clip_eps, clip_eps_high, mask)


def linear_logits_ref(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The LM head in float64: hidden (B, T, H) @ weight (V, H).T + bias (V,) -> (B, T, V) logits. The fused linear
    ops are specified as the categorical references applied to these logits."""
    logits = hidden.double() @ weight.double().t()
    return logits if bias is None else logits + bias.double()
