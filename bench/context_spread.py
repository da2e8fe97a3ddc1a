"""How a policy's success spreads over contexts: K sampled rollouts on each of C fresh contexts of a task.

RIPT learns only from contexts whose K rollouts disagree (dynamic sampling drops the rest), so this predicts
how much a policy can gain: many contexts strictly between 0 and 1 is good, a policy that fails most contexts
every time (deterministically) leaves little to learn from.

  python bench/context_spread.py runs/sft5/reach-v3/sft/policy.safetensors reach-v3 --contexts 24 --k 8
  python bench/context_spread.py CKPT drawer-open-v3 --set temperature=2.0     (a policy.quest override)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ript_fast.data.contexts import ContextDataset
from ript_fast.envs import make_vec_env
from ript_fast.train.checkpoint import load_policy
from ript_fast.train.rollout import collect_rollouts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt")
    parser.add_argument("task", help="a MetaWorld task, e.g. reach-v3")
    parser.add_argument("--contexts", type=int, default=24)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--context-seed", type=int, default=1000, help="the training contexts' first reset seed")
    parser.add_argument("--set", nargs="*", default=[], help="policy.quest overrides, e.g. temperature=2.0")
    args = parser.parse_args()
    quest = {k: float(v) if "." in v else int(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    torch.set_num_threads(1)
    policy = load_policy(args.ckpt, config_overrides={"quest": quest} if quest else None)
    policy.eval()
    name = f"metaworld/{args.task}"
    contexts = ContextDataset.from_env(name, args.contexts, args.context_seed)
    rows = np.repeat(np.arange(args.contexts), args.k)
    batch = contexts.gather(rows.tolist())
    env = make_vec_env([name] * len(rows), num_envs=len(rows), seed=0, autoreset=False)
    torch.manual_seed(0)
    task_ids = policy.task_ids_for(batch.task_names).numpy()
    rollouts, _ = collect_rollouts(env, policy, batch.states, rows, task_ids, seed=0)
    rate = rollouts.rewards.view(args.contexts, args.k).mean(dim=1).numpy()
    print(f"{args.task}: mean success {rate.mean():.3f} over {args.contexts} contexts x {args.k} rollouts")
    print("per context:", np.round(rate, 2).tolist())
    bins = [(rate == 0).sum(), ((rate > 0) & (rate <= 0.5)).sum(), ((rate > 0.5) & (rate < 1)).sum(), (rate == 1).sum()]
    print("contexts at 0 / (0, 0.5] / (0.5, 1) / 1:", " / ".join(str(int(b)) for b in bins))


if __name__ == "__main__":
    main()
