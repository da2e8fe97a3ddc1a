"""Writes a small LIBERO demo file by replaying smooth random actions in the engine (LIBERO's HDF5 layout).

    python scripts/libero_replay_demos.py libero/goal/0 runs/libero-demos/goal0_replay.hdf5 --demos 4 --steps 80

These are not expert demonstrations: they exercise the demo pipeline (reader, SFT, context datasets) where
LIBERO's official datasets are not at hand. Actions are an AR(1) walk (correlation 0.9) in [-1, 1] with the
gripper command flipping now and then; episode i starts from the task's shipped init state i.
"""

from __future__ import annotations

import argparse

import numpy as np

from ript_fast.envs.libero.demos import record_demos


def smooth_actions(steps: int, rng: np.random.Generator) -> np.ndarray:
    actions = np.zeros((steps, 7))
    level, grip = np.zeros(6), -1.0
    for t in range(steps):
        level = 0.9 * level + 0.1 * rng.uniform(-1.0, 1.0, 6) * 3.0
        if rng.random() < 0.05:
            grip = -grip
        actions[t, :6] = np.clip(level, -1.0, 1.0)
        actions[t, 6] = grip
    return actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env", help="a LIBERO task, e.g. libero/goal/0")
    parser.add_argument("out", help="the HDF5 file to write")
    parser.add_argument("--demos", type=int, default=4)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    path = record_demos(args.env, [smooth_actions(args.steps, rng) for _ in range(args.demos)], args.out)
    print(f"wrote {args.demos} demos x {args.steps} steps to {path}")


if __name__ == "__main__":
    main()
