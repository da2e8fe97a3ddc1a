"""Fused RL ops for RIPT-style policy optimisation, usable from any PyTorch RL code.

Every op is a `torch.library` custom op with a fake kernel (so it traces under `torch.compile(fullgraph=True)`)
and autograd, runs on CPU and CUDA tensors of any strides, and validates its arguments with errors that name
the argument.
"""

from ript_fast.ops.categorical_logprob import categorical_logprob
from ript_fast.ops.categorical_ppo_loss import categorical_ppo_loss
from ript_fast.ops.continuous_logprob import gaussian_logprob, laplace_logprob
from ript_fast.ops.linear_categorical import linear_categorical_logprob, linear_categorical_ppo_loss
from ript_fast.ops.ppo_clip_loss import PPOLoss, ppo_clip_loss
from ript_fast.ops.rloo_advantage import informative_groups, rloo_advantage

__all__ = [
    "PPOLoss",
    "categorical_logprob",
    "categorical_ppo_loss",
    "gaussian_logprob",
    "informative_groups",
    "laplace_logprob",
    "linear_categorical_logprob",
    "linear_categorical_ppo_loss",
    "ppo_clip_loss",
    "rloo_advantage",
]
