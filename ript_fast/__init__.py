"""ript-fast: reinforcement interactive post-training (RIPT-VLA) for robot VLA policies.

`ript_fast.ops` holds the fused RL ops (usable on their own in any PyTorch RL code); `ript_fast.envs` the
batched simulators; `ript_fast.policies`, `ript_fast.data` and `ript_fast.train` the rest of the method.
"""

__version__ = "0.1.0"
