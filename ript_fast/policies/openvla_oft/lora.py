"""LoRA on an OpenVLA LM through peft, as the released RIPT code adds it (OpenVLA and OpenVLA-OFT alike).

peft's "all-linear" targets every `nn.Linear` of the module it is given but the output head; here that module is the
Llama LM alone (vision and projectors stay frozen and LoRA-free), so `lm_head` keeps its weights: OpenVLA's action
logits read its rows as they were trained.
"""

from __future__ import annotations

from torch import nn


def inject_lora(lm: nn.Module, rank: int, alpha: int | None, dropout: float, targets: list[str]) -> None:
    """peft LoRA injected in place into `lm` (its base weights frozen); gaussian init, B = 0: output unchanged.

    alpha None is min(rank, 16), the released code's choice.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else min(rank, 16),
        lora_dropout=dropout,
        target_modules=targets[0] if targets == ["all-linear"] else list(targets),
        init_lora_weights="gaussian",
    )
    get_peft_model(lm, config)  # mutates the LM; the wrapper is not kept


def lora_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The LoRA matrices peft injected below `module`."""
    return [p for name, p in module.named_parameters() if "lora_" in name]
