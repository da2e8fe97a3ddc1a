"""The `policy:` section of a run config: which family, how it reads observations, and its sizes.

Defaults are the paper-scale QueST / OFT settings (`../shared/REFERENCE_CODE.md`); the CPU presets in
`configs/` shrink them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ript_fast.policies.obs_encoder import ObsConfig
from ript_fast.policies.oft.config import OftConfig
from ript_fast.policies.openvla_oft.policy_config import OpenVLAOFTPolicyConfig
from ript_fast.policies.quest.config import QuestConfig


@dataclass
class PolicyConfig:
    family: Literal["quest", "oft", "openvla_oft"] = "quest"
    obs: ObsConfig = field(default_factory=ObsConfig)
    quest: QuestConfig = field(default_factory=QuestConfig)
    oft: OftConfig = field(default_factory=OftConfig)
    openvla_oft: OpenVLAOFTPolicyConfig = field(default_factory=OpenVLAOFTPolicyConfig)

    def __post_init__(self) -> None:
        if self.family == "openvla_oft" and len(self.obs.image_keys) != self.openvla_oft.num_images:
            raise ValueError(
                f"obs.image_keys names {len(self.obs.image_keys)} camera(s) but openvla_oft.num_images is "
                f"{self.openvla_oft.num_images}: the model reads that many images"
            )

    @property
    def chunk_size(self) -> int:
        """Actions per supervised sample of the configured family (what SFT cuts the demos into)."""
        return {
            "quest": self.quest.chunk_size,
            "oft": self.oft.chunk_size,
            "openvla_oft": self.openvla_oft.chunk_len,
        }[self.family]
