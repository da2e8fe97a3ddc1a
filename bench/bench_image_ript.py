"""One RIPT iteration of an image QueST, as image rollouts ran before issue #14 and as they run now (measures;
never asserts).

    python bench/bench_image_ript.py           # MetaWorld pick-place-v3 (corner2 128) and LIBERO goal/0 (2 x 128)
    python bench/bench_image_ript.py --quick   # shorter episodes, MetaWorld only

Each batch runs (after a small untimed one) `RiptTrainer.step()` (collect K rollouts of each context, RLOO, PPO)
twice from the same policy, contexts and seeds:
  * before: the env renders every env after every step and reset, drawing one frame at a time from Python on
    one GL context (`render_every_step=True`, `RIPT_FAST_RENDER=python`; the policy reads its images from the
    step's observation, as a gymnasium vector env returns them);
  * now: the trainer's default: a step draws nothing, each query draws the frames of the envs it queries
    (one step in 8), in the engine's pool (`_C.render`, GIL released);
  * overlapped: now, with `ript.overlap_acting`: two halves of the batch take turns, the policy acting for one
    on a thread of its own while the engine steps and draws the other (other samples than the one-batch loop,
    so its record is not compared).
`--state` runs the same iterations without cameras (the policy reads the state alone; before = now there).
The policy is the CPU QueST preset (configs/sft_quest_metaworld_cpu.yaml) reading its camera(s) through a small
CNN at 64 px; it is untrained, and no group is rejected (`dynamic_sampling=false`), so both runs collect exactly
one round of `--contexts` x K rollouts of `--steps` steps each. Prints, per batch, the iteration's time split
(render, step, reset, act, update; from its metrics record), the ratio, and whether the two iterations'
records (successes, PPO statistics) are equal: the same rollouts, so the same update.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
import warnings
from typing import Any

import torch

from ript_fast._core import _C
from ript_fast.config import find_config, load_config
from ript_fast.data.contexts import ContextDataset
from ript_fast.envs import make_vec_env
from ript_fast.policies.base import PolicySpec
from ript_fast.policies.factory import build_policy
from ript_fast.train.ript import RiptTrainer
from ript_fast.train.run_config import RiptConfig
from ript_fast.train.sft import SftConfig

warnings.filterwarnings("ignore")
PARTS = ("time_env_render", "time_env_step", "time_env_reset", "time_policy_act", "time_update")
# obs keys the policy reads, and its state size, per benchmark
OBS = {
    "metaworld": (["state"], ["rgb"], 39),
    "libero": (["joint_states", "ee_pos", "gripper_states"], ["agentview_rgb", "eye_in_hand_rgb"], 12),
}


class EveryStepEnv:
    """The env as image rollouts used it before #14: it offers no on-demand rendering, so the trainer reads every
    query's images from the step's observation (which the env, made with render_every_step=True, always holds)."""

    def __init__(self, env: Any) -> None:
        self._env = env

    def __getattr__(self, name: str) -> Any:
        if name == "rendering_mode":
            raise AttributeError(name)
        return getattr(self._env, name)


def image_policy(name: str, env: Any, images: bool) -> Any:
    state_keys, image_keys, state_dim = OBS[name.split("/")[0]]
    overrides = [
        f"policy.obs.state_keys=[{','.join(state_keys)}]",
        f"policy.obs.image_keys=[{','.join(image_keys if images else [])}]",
        "policy.obs.image_size=64",
        "policy.obs.image_embed_dim=32",
    ]
    cfg = load_config(SftConfig, find_config("sft_quest_metaworld_cpu"), overrides)
    torch.manual_seed(0)
    action_dim = env.single_action_space.shape[0]
    spec = PolicySpec(action_dim, state_dim, list(env.task_names[:1]), list(env.instructions[:1]))
    return build_policy(cfg.policy, spec).eval()


def one_iteration(name: str, args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """The metrics record of one RIPT iteration with image rollouts run the `mode` way (before, now, overlapped)."""
    os.environ["RIPT_FAST_RENDER"] = "python" if mode == "before" else "engine"
    n = args.contexts * args.group_size
    options = {"autoreset": False, "max_episode_steps": args.steps, "render_size": (128, 128)}
    obs_mode = "state" if args.state else "state+rgb"
    env = make_vec_env(name, n, seed=0, obs_mode=obs_mode, render_every_step=mode == "before", **options)
    contexts = ContextDataset.from_env(name, args.contexts, seed=1000)
    config = RiptConfig(
        iterations=1,
        group_size=args.group_size,
        batch_rollouts=n,
        contexts_per_round=args.contexts,
        max_rounds=1,
        dynamic_sampling=False,
        overlap_acting=mode == "overlapped",
    )
    try:
        env.reset(seed=0)
        if not args.state:
            env.render_observations()  # shaders compile on a GL context's first frame (a run's envs live long)
        policy = image_policy(name, env, not args.state)
        trainer = RiptTrainer(policy, EveryStepEnv(env) if mode == "before" else env, contexts, config, progress=False)
        start = time.perf_counter()
        record = trainer.step()
        record["wall"] = time.perf_counter() - start
    finally:
        env.close()
    return record


def same_update(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The two records agree on everything but time: the same rollouts went into the same update."""
    keys = [k for k in a if not k.startswith("time_") and k not in ("wall", "seconds", "env_steps_per_s")]
    return all(a[k] == b[k] for k in keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="32-step episodes, MetaWorld only")
    parser.add_argument("--steps", type=int, default=96, help="env steps per episode")
    parser.add_argument("--contexts", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=8, help="K")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--state", action="store_true", help="no cameras: the overlap on state rollouts")
    args = parser.parse_args()
    if args.quick:
        args.steps = 32
    _C.set_num_threads(args.threads)
    torch.set_num_threads(1)  # as `ript-fast train` runs small policies
    batches = ["metaworld/pick-place-v3"] + ([] if args.quick or args.state else ["libero/goal/0"])
    print(
        f"load average before: {os.getloadavg()}, {args.contexts} contexts x K={args.group_size}, {args.steps} steps, "
        f"{args.threads} engine threads, MUJOCO_GL={os.environ.get('MUJOCO_GL')}"
    )
    rows = [
        "| batch | run | render | step | reset | act | update | iteration (wall) | env steps | same update |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    warm = argparse.Namespace(contexts=1, group_size=2, steps=8, state=args.state)
    modes = ("now", "overlapped") if args.state else ("before", "now", "overlapped")
    for name in batches:
        for mode in modes:  # torch's and the renderers' first-use costs, paid outside the timed runs
            one_iteration(name, warm, mode)
        records = {mode: one_iteration(name, args, mode) for mode in modes}
        for mode, r in records.items():
            parts = " | ".join(f"{r[p]:.1f}" for p in PARTS)
            rows.append(f"| {name} | {mode} | {parts} | {r['wall']:.1f} s | {r['env_steps']:,} | |")
        for slow, fast in itertools.pairwise(modes):
            a, b = records[slow], records[fast]
            same = same_update(a, b) if fast == "now" else "other samples"
            ratios = " | ".join(f"{a[p] / max(b[p], 1e-9):.1f}x" for p in PARTS)
            rows.append(f"| {name} | {slow} / {fast} | {ratios} | **{a['wall'] / b['wall']:.2f}x** | | {same} |")
        print("\n".join(rows[-(2 * len(modes) - 1) :]), flush=True)
    print(f"\nload average after: {os.getloadavg()}\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
