"""Builds a policy of the configured family for a data spec; the one place that knows every family."""

from __future__ import annotations

from ript_fast.policies.base import Policy, PolicySpec
from ript_fast.policies.config import PolicyConfig


def build_policy(cfg: PolicyConfig, spec: PolicySpec) -> Policy:
    """A fresh policy; it remembers `cfg` and `spec` (`policy.policy_config`, `policy.spec`) for its checkpoint."""
    if not cfg.obs.state_keys:
        raise ValueError("policy.obs.state_keys must name at least one observation key")
    if cfg.family == "quest":
        from ript_fast.policies.quest.policy import QuestPolicy

        policy: Policy = QuestPolicy(cfg.quest, cfg.obs, spec)
    elif cfg.family == "openvla_oft":
        from ript_fast.policies.openvla_oft.policy import OpenVLAOFTPolicy

        policy = OpenVLAOFTPolicy(cfg.openvla_oft, cfg.obs, spec)
    else:
        from ript_fast.policies.oft.policy import OftPolicy

        policy = OftPolicy(cfg.oft, cfg.obs, spec)
    policy.policy_config = cfg
    policy.spec = spec
    return policy
