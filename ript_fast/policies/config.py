"""The `policy:` section of a run config: which family, how it reads observations, and its sizes.

Defaults are the paper-scale QueST / OFT settings (`../shared/REFERENCE_CODE.md`); the CPU presets in
`configs/` shrink them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ript_fast.policies.obs_encoder import ObsConfig
from ript_fast.policies.openvla.policy_config import OpenVLAPolicyConfig
from ript_fast.policies.openvla_oft.policy_config import OpenVLAOFTPolicyConfig
from ript_fast.policies.quest.config import QuestConfig


@dataclass
class PolicyConfig:
    family: Literal["quest", "openvla_oft", "openvla"] = "quest"
    obs: ObsConfig = field(default_factory=ObsConfig)
    quest: QuestConfig = field(default_factory=QuestConfig)
    openvla_oft: OpenVLAOFTPolicyConfig = field(default_factory=OpenVLAOFTPolicyConfig)
    openvla: OpenVLAPolicyConfig = field(default_factory=OpenVLAPolicyConfig)
    # The section of the ResNet + causal-LM stand-in family removed on 2026-11-30 (`config.RETIRED_KEYS`)
    retired_keys: ClassVar[tuple[str, ...]] = ("oft",)

    @property
    def chunk_size(self) -> int:
        """Actions per supervised sample of the configured family (what SFT cuts the demos into)."""
        return {
            "quest": self.quest.chunk_size,
            "openvla_oft": self.openvla_oft.chunk_len,
            "openvla": 1,  # one action per query
        }[self.family]
