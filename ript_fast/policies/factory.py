"""Builds a policy of the configured family for a data spec; the one place that knows every family."""

from __future__ import annotations

from ript_fast.config import ConfigError
from ript_fast.policies.base import Policy, PolicySpec
from ript_fast.policies.config import PolicyConfig


def policy_class(family: str) -> type[Policy]:
    """The class of a family (imported on first use: a family's heavy dependencies load only when asked for)."""
    if family == "quest":
        from ript_fast.policies.quest.policy import QuestPolicy

        return QuestPolicy
    if family == "openvla_oft":
        from ript_fast.policies.openvla_oft.policy import OpenVLAOFTPolicy

        return OpenVLAOFTPolicy
    if family == "openvla":
        from ript_fast.policies.openvla.policy import OpenVLAPolicy

        return OpenVLAPolicy
    raise ValueError(f"unknown policy family {family!r}")


def build_policy(cfg: PolicyConfig, spec: PolicySpec) -> Policy:
    """A fresh policy; it remembers `cfg` and `spec` (`policy.policy_config`, `policy.spec`) for its checkpoint."""
    if not cfg.obs.state_keys:
        raise ValueError("policy.obs.state_keys must name at least one observation key")
    family = policy_class(cfg.family)
    settings = {"quest": cfg.quest, "openvla_oft": cfg.openvla_oft, "openvla": cfg.openvla}[cfg.family]
    policy = family(settings, cfg.obs, spec)  # type: ignore[call-arg]
    policy.policy_config = cfg
    policy.spec = spec
    return policy


def check_policy_files(cfg: PolicyConfig) -> None:
    """Refuses what building this policy would refuse about the files it reads (an OpenVLA folder, an OpenVLA-OFT
    folder and its scale-head file), reading no weights: runs check this before anything long starts."""
    if cfg.family == "openvla":
        check_openvla_files(cfg)
    if cfg.family != "openvla_oft":
        return
    from ript_fast.policies.openvla_oft.loader import check_openvla_oft_folder

    oft = cfg.openvla_oft
    if not oft.checkpoint:
        raise ConfigError("policy.openvla_oft.checkpoint must name an OpenVLA-OFT checkpoint folder")
    if len(cfg.obs.image_keys) != oft.num_images:
        raise ConfigError(
            f"policy.obs.image_keys names {len(cfg.obs.image_keys)} camera(s) but policy.openvla_oft.num_images is "
            f"{oft.num_images}: the model reads that many images"
        )
    check_openvla_oft_folder(
        oft.checkpoint,
        unnorm_key=oft.unnorm_key,
        num_images=oft.num_images,
        chunk_len=oft.chunk_len,
        scale_head=oft.scale_head_file or None,
    )


def check_openvla_files(cfg: PolicyConfig) -> None:
    """`check_policy_files` of the `openvla` family: the folder (headers only) and the one camera it reads."""
    from ript_fast.policies.openvla.loader import check_openvla_folder

    if not cfg.openvla.checkpoint:
        raise ConfigError("policy.openvla.checkpoint must name an OpenVLA checkpoint folder")
    if len(cfg.obs.image_keys) != 1:
        raise ConfigError(
            f"policy.obs.image_keys names {len(cfg.obs.image_keys)} camera(s); OpenVLA reads one (the third-person)"
        )
    check_openvla_folder(cfg.openvla.checkpoint, unnorm_key=cfg.openvla.unnorm_key)
