"""What one RIPT iteration reports: sampling counts, the rollout time split, the PPO statistics.

Counts are summed over ranks and times averaged over them, so a DDP run's record reads like one process's.
The progress bar shows a short digest of it.
"""

from __future__ import annotations

from typing import Any

from ript_fast.train.distributed import Dist
from ript_fast.train.dynamic_sampling import SamplingStats
from ript_fast.train.rollout import RolloutTiming


def iteration_record(
    stats: SamplingStats,
    timing: RolloutTiming,
    update: dict[str, float],
    update_seconds: float,
    kept_rollouts: int,
    informative_groups: int,
    group_size: int,
    dist: Dist,
) -> dict[str, Any]:
    """The iteration's metrics (everything but its number, step totals and learning rate, which the trainer
    adds). Train success counts every rollout run, rejected groups included; `train_reward` is the mean reward
    the update saw the rollouts as (the success rate under the default reward); `informative_groups` counts the
    trained groups whose K rewards differ (all of the kept ones with dynamic sampling; without it, the groups
    that carried a gradient)."""
    totals = dist.sum(
        {
            "rollouts_run": stats.rollouts_run,
            "successes": stats.successes,
            "reward_sum": stats.reward_sum,
            "groups_tried": stats.groups_tried,
            "groups_rejected": stats.groups_rejected,
            "groups_kept": kept_rollouts // group_size,
            "groups_informative": informative_groups,
            "rounds": stats.rounds,
            "cap_hit": float(stats.cap_hit),
            "env_steps": timing.env_steps,
            "env_step": timing.env_step,
            "env_reset": timing.env_reset,
            "env_render": timing.env_render,
            "policy_act": timing.policy_act,
            "update": update_seconds,
        }
    )
    world = dist.world
    rollout_seconds = sum(totals[k] for k in ("env_step", "env_reset", "env_render", "policy_act")) / world
    run = max(totals["rollouts_run"], 1)
    return {
        "train_success": totals["successes"] / run,
        "train_reward": totals["reward_sum"] / run,
        "train_rollouts": int(totals["rollouts_run"]),
        "rejected_groups": int(totals["groups_rejected"]),
        "kept_groups": int(totals["groups_kept"]),
        "informative_groups": int(totals["groups_informative"]),
        "reject_rate": totals["groups_rejected"] / max(totals["groups_tried"], 1),
        "rounds": totals["rounds"] / world,
        "sampling_cap_hit": totals["cap_hit"] > 0,
        "rollouts": int(totals["groups_kept"]) * group_size,
        "env_steps": int(totals["env_steps"]),
        "env_steps_per_s": totals["env_steps"] / max(rollout_seconds, 1e-9),
        "time_env_step": totals["env_step"] / world,
        "time_env_reset": totals["env_reset"] / world,
        "time_env_render": totals["env_render"] / world,
        "time_policy_act": totals["policy_act"] / world,
        "time_update": totals["update"] / world,
        "world_size": world,
        **update,
    }


def progress_postfix(record: dict[str, Any]) -> str:
    parts = [f"train {record['train_success']:.2f}"]
    if "eval_success" in record:
        parts.append(f"eval {record['eval_success']:.2f}")
    parts.append(f"kept {record['kept_groups']} rej {record['rejected_groups']}")
    parts.append(f"{record['env_steps_per_s']:.0f} steps/s")
    return " | ".join(parts)
