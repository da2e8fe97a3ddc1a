"""Benchmark of the policies (measures; never asserts).

    python bench/bench_policies.py                    # CPU QueST preset, batches of 16 and 64
    python bench/bench_policies.py --device cuda --paper   # also the paper-scale QueST presets
    python bench/bench_policies.py --sft-success --out runs/sft_figures   # SFT success table (CPU: ~30 min)

Prints a markdown table per preset: `act` (one rollout query: context + autoregressive top-k sampling +
decoding, no grad) and `score fwd+bwd` (teacher-forced re-scoring with gradients, what a PPO minibatch
costs per query), per batch of queried envs, median of several runs after a warm-up, and one SFT step of
each stage at the preset's batch size.

`--sft-success`: for each task, 5 expert demos (noise 0.2, seed 0) are collected, the CPU preset is
trained on the first 1 and on all 5, and each checkpoint is evaluated on 50 held-out contexts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ript_fast.config import load_config
from ript_fast.policies.base import Observation, PolicySpec, SupervisedBatch
from ript_fast.policies.factory import build_policy
from ript_fast.train.sft import SftConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def median_ms(fn: Callable[[], object], device: str, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def observation(cfg: SftConfig, n: int, state_dim: int, device: str) -> Observation:
    size = cfg.policy.obs.image_size
    images = {k: torch.randint(0, 255, (n, size, size, 3), dtype=torch.uint8) for k in cfg.policy.obs.image_keys}
    obs = Observation(torch.randn(n, state_dim), ["do the task"] * n, torch.zeros(n, dtype=torch.long), images)
    return Observation(obs.state.to(device), obs.instructions, obs.task_ids.to(device), obs.images)


def bench_preset(name: str, device: str, batches: list[int], repeats: int, overrides: list[str]) -> list[str]:
    cfg = load_config(SftConfig, CONFIGS / name, overrides)
    state_dim = 12 if "libero" in name else 39
    policy = build_policy(cfg.policy, PolicySpec(4, state_dim, ["task"], ["do the task"])).to(device).eval()
    params = sum(p.numel() for p in policy.parameters())
    rows = [
        f"### {name} ({params / 1e6:.2f}M parameters, {device}, torch threads {torch.get_num_threads()})",
        "",
        "| batch (envs) | act ms | act us/env | score fwd+bwd ms |",
        "|---|---|---|---|",
    ]
    for n in batches:
        obs = observation(cfg, n, state_dim, device)
        act_ms = median_ms(lambda obs=obs: policy.act(obs), device, repeats)
        sample = policy.act(obs)

        def score(sample=sample) -> None:  # type: ignore[no-untyped-def]
            policy.zero_grad(set_to_none=True)
            policy.sequence_logprob(sample.cond, sample.decision).sum().backward()

        rows.append(f"| {n} | {act_ms:.1f} | {1000 * act_ms / n:.0f} | {median_ms(score, device, repeats):.1f} |")
        print(rows[-1], flush=True)
    policy.train()
    for stage in cfg.stages:
        b = stage.batch_size
        batch = SupervisedBatch(
            observation(cfg, b, state_dim, device),
            torch.rand(b, policy.chunk_size, 4) * 2 - 1,
            torch.ones(b, policy.chunk_size, dtype=torch.bool),
        )

        def step(stage=stage.name, batch=batch) -> None:  # type: ignore[no-untyped-def]
            policy.zero_grad(set_to_none=True)
            policy.sft_loss(stage, batch)[0].backward()

        rows.append(f"\nSFT step, stage {stage.name}, batch {b}: {median_ms(step, device, repeats):.1f} ms")
        print(rows[-1], flush=True)
    return rows


def sft_success(out: Path, tasks: list[str], demo_counts: list[int], episodes: int) -> list[str]:
    from ript_fast.data.collect import collect_demos
    from ript_fast.train.checkpoint import load_policy
    from ript_fast.train.evaluate import evaluate
    from ript_fast.train.sft import run_sft

    rows = ["| task | demos | SFT s | held-out success |", "|---|---|---|---|"]
    for task in tasks:
        env = f"metaworld/{task}"
        demos = collect_demos(env, max(demo_counts), out / f"{task}.hdf5", noise=0.2, seed=0, progress=False)
        for n in demo_counts:
            cfg = load_config(
                SftConfig,
                CONFIGS / "sft_quest_metaworld_cpu.yaml",
                [f"demos=[{demos}]", f"num_demos={n}", "progress=false"],
            )
            start = time.perf_counter()
            ckpt = run_sft(cfg, out / f"{task}_{n}demo")
            seconds = time.perf_counter() - start
            result = evaluate(load_policy(ckpt), env, episodes, progress=False)
            rows.append(f"| {task} | {n} | {seconds:.0f} | {result.successes}/{episodes} = {result.success_rate:.2f} |")
            print(rows[-1], f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--paper", action="store_true", help="also the paper-scale QueST presets")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--set", nargs="*", default=[], metavar="key=value", help="config overrides for every preset")
    parser.add_argument("--sft-success", action="store_true", help="the SFT success table instead of timings")
    parser.add_argument("--out", default="runs/sft_figures", help="with --sft-success: where demos and runs go")
    parser.add_argument("--demos", nargs="+", type=int, default=[1, 5], help="with --sft-success: demo counts")
    parser.add_argument(
        "--tasks", nargs="+", default=["reach-v3", "button-press-v3", "drawer-open-v3", "pick-place-v3"]
    )
    args = parser.parse_args()
    if args.sft_success:
        print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
        print("\n".join(sft_success(Path(args.out), args.tasks, args.demos, 50)))
        return
    presets = ["sft_quest_metaworld_cpu.yaml"] + (
        ["quest_ml45_paper.yaml", "quest_libero_paper.yaml"] if args.paper else []
    )
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
    tables = [bench_preset(p, args.device, [16, 64], args.repeats, args.set) for p in presets]
    print(f"\nload average after: {os.getloadavg()}\n")
    for table in tables:
        print("\n".join(table), end="\n\n")


if __name__ == "__main__":
    main()
