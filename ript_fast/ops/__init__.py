"""Fused RL ops for RIPT-style policy optimisation, usable from any PyTorch RL code.

Every op is a `torch.library` custom op with a fake kernel (so it traces under `torch.compile(fullgraph=True)`)
and autograd, runs on CPU and CUDA tensors of any strides, and validates its arguments with errors that name
the argument.
"""

from ript_fast.ops.rloo_advantage import informative_groups, rloo_advantage

__all__ = ["informative_groups", "rloo_advantage"]
