"""QueST-style tokenized policy (Mete et al. 2024): FSQ skill tokens and an autoregressive prior."""

from ript_fast.policies.quest.config import QuestConfig
from ript_fast.policies.quest.policy import QuestPolicy

__all__ = ["QuestConfig", "QuestPolicy"]
