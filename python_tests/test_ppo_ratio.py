"""Before any update the PPO ratio is exactly 1 for every rollout and token, whatever the policy family, ratio
level and token averaging: the loss weights must never leak into the log-probs the ratio compares."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from python_tests.ppo_fixtures import frozen_batch, oft_policy, smoke_policy
from ript_fast.policies.base import Policy
from ript_fast.train.ppo import PPOSettings, ppo_loss

SETTINGS = [("sequence", "tokens"), ("token", "tokens"), ("token", "rollouts")]


def settings(level: str, average: str) -> PPOSettings:
    return PPOSettings(
        epochs=1,
        minibatch_rollouts=8,
        clip_eps=0.2,
        clip_eps_high=None,
        ratio_level=level,  # type: ignore[arg-type]
        token_average=average,  # type: ignore[arg-type]
        max_grad_norm=1.0,
    )


def assert_ratio_one(policy: Policy, level: str, average: str) -> None:
    batch = frozen_batch(policy, 8)
    with torch.no_grad():
        _, stats = ppo_loss(policy, batch, torch.linspace(-1, 1, 8), settings(level, average))
    assert stats["ratio"].item() == pytest.approx(1.0, abs=1e-5)
    assert abs(stats["approx_kl"].item()) < 1e-5 and stats["clip_fraction"].item() == 0.0


@pytest.mark.parametrize(("level", "average"), SETTINGS)
def test_token_policy_ratio_is_one_before_an_update(level: str, average: str) -> None:
    assert_ratio_one(smoke_policy(), level, average)


@pytest.mark.parametrize("distribution", ["laplace", "gaussian"])
@pytest.mark.parametrize(("level", "average"), SETTINGS)
def test_continuous_policy_ratio_is_one_before_an_update(
    oft_folder: Path, distribution: str, level: str, average: str
) -> None:
    assert_ratio_one(oft_policy(oft_folder, distribution), level, average)
