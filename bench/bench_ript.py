"""RIPT-VLA experiments on MetaWorld: the headline runs and the paper's App. A.3/A.4 sweeps.

Each experiment is a set of `ript-fast train` runs (one process each, so a run measures exactly what a user
gets); this script starts them one after another, then reads their run folders and prints a Markdown table
(SFT success, held-out success per iteration, best, iterations to 80%, wall time) and draws one PNG of the
held-out success curves per experiment.

  python bench/bench_ript.py headline  --tasks reach-v3 coffee-push-v3 drawer-open-v3@demos.num_demos=1 \
                                       --out runs/headline
  python bench/bench_ript.py contexts  --task reach-v3 --sizes 1 4 16 64 --out runs/ctx_size     (App. A.3)
  python bench/bench_ript.py noise     --task reach-v3 --stds 0 0.025 0.05 0.1 --out runs/ctx_noise (App. A.4)
  python bench/bench_ript.py multitask --tasks door-open-v3 reach-v3 push-v3 --target-demos 1 --out runs/multitask \
      --few-shot coffee-push-v3 door-open-v3 drawer-open-v3 pick-place-v3 push-v3 reach-v3 sweep-v3 window-open-v3
                                       (the paper's MetaWorld protocol, below)
  python bench/bench_ript.py ml45      --out runs/ml45 --target-demos 5 --seeds 0 1 \
      --set contexts.eval_size=10 eval.every=5        (the paper's Table 2 ML45 5-shot column, below)
  python bench/bench_ript.py report    --out runs/headline       (table + plot of finished runs only)
  python bench/bench_ript.py report    --out runs/all --runs runs/a/x__dynamic runs/b/y__dynamic   (chosen runs)

`headline` runs every task twice, with dynamic sampling (the method) and without (the paper's Table 3
ablation), from the same SFT policy (made once per task by the first run and reused by the second).
`task@key=value,key=value` gives one task its own overrides (e.g. its number of demos).
`--tag _B128 --set ript.batch_rollouts=128 ript.contexts_per_round=16` runs a variant of finished multitask
runs into new folders (`<task>_B128__dynamic`), reusing their pretraining and stage 2.

`multitask --pretrain-env metaworld/ML45 --tasks <ML45-test tasks>` is the cross-task few-shot protocol (Sec. 5.4's
analogue): the prior sees ML45's 45 training tasks only (MT50's task table kept, so the held-out tasks have ids),
then each held-out task gets --target-demos demos, a stage 2 and RIPT:
  python bench/bench_ript.py multitask --pretrain-env metaworld/ML45 --target-demos 1 --out runs/ml45_transfer \
      --tasks bin-picking-v3 box-close-v3 hand-insert-v3 door-lock-v3 door-unlock-v3
`--pretrain-env held-out` pretrains on MT50's tasks other than the targets, e.g. QueST's ML45 split:
  python bench/bench_ript.py multitask --pretrain-env held-out --target-demos 1 --out runs/quest_split_transfer \
      --tasks box-close-v3 disassemble-v3 hand-insert-v3 pick-place-wall-v3 stick-pull-v3

`ml45` is Table 2's ML45 5-shot column (and Table 3's ablation) at CPU scale: `--target-demos` demos of each of
ML45's 45 training tasks, one QueST policy SFT-trained on all of them (configs/sft_quest_mt50_cpu.yaml), then
multi-task RIPT over the 45 tasks (`env=metaworld/ML45`, held-out contexts per task) from that one SFT policy,
with and without dynamic sampling, once per `--seeds` seed.

`multitask` is the paper's MetaWorld protocol at CPU scale: a QueST policy pretrained on scripted demos of
every other MT50 task (`--pretrain-demos` each) plus the few-shot tasks' `--target-demos` demos
(configs/prior_quest_mt50_cpu.yaml, the recipe of the default run's packaged prior), then for each target a
stage-2 fine-tune on its few demos alone (QueST's stage 2, configs/sft_quest_stage2_cpu.yaml), then RIPT on that
target with and without dynamic sampling.
Each step is a `ript-fast` command, printed as it runs.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

TARGET = 0.8
HELD_OUT = "held-out"  # --pretrain-env: MT50's tasks other than the targets
# The installed console script: `python -m ript_fast.cli` from the checkout would import the source folder's
# ript_fast, which has no compiled _C.
RIPT_FAST = shutil.which("ript-fast", path=str(Path(sys.executable).parent)) or "ript-fast"


def run_train(out: Path, config: str, overrides: list[str], init: Path | None) -> float:
    """One `ript-fast train` run into `out` (skipped when it already finished, resumed when it was stopped);
    returns its wall time."""
    if (out / "policy.safetensors").exists():
        return float("nan")
    cmd = [RIPT_FAST, "train", "--config", config, "--out", str(out), *overrides]
    if init is not None:
        cmd += ["--init", str(init)]
    if (out / "config.yaml").exists():  # a stopped run continues under its own config
        cmd = [RIPT_FAST, "train", "--resume", str(out)]
    start = time.perf_counter()
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - start
    (out / "wall_seconds.txt").write_text(f"{seconds:.1f}\n")
    return seconds


def task_overrides(args: argparse.Namespace, spec: str) -> tuple[str, list[str]]:
    """`task@key=value,...` (that task's own overrides, e.g. drawer-open-v3@demos.num_demos=1) -> the task and
    the overrides of its runs."""
    task, _, extra = spec.partition("@")
    return task, [f"env=metaworld/{task}", *args.set, *(extra.split(",") if extra else [])]


def headline(args: argparse.Namespace) -> list[Path]:
    runs = []
    for spec in args.tasks:
        task, base = task_overrides(args, spec)
        dyn = args.out / f"{task}__dynamic"
        run_train(dyn, args.config, base, None)
        sft = args.out / f"{task}__sft.safetensors"
        if not sft.exists():
            shutil.copy(dyn / "sft" / "policy.safetensors", sft)
        nodyn = args.out / f"{task}__no-dynamic"
        run_train(nodyn, args.config, [*base, "ript.dynamic_sampling=false"], sft)
        runs += [dyn, nodyn]
    return runs


def run_sft(out: Path, config: str, overrides: list[str]) -> Path:
    """One `ript-fast sft` run into `out` (skipped when it already finished); returns its policy."""
    policy = out / "policy.safetensors"
    if not policy.exists():
        cmd = [RIPT_FAST, "sft", "--config", config, "--out", str(out), *overrides]
        cmd += ["--resume"] if (out / "config.yaml").exists() else []
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return policy


def pretrain(args: argparse.Namespace) -> Path:
    """The prior (`ript-fast sft --config prior_quest_mt50_cpu.yaml`): with no --pretrain-env, it collects
    --target-demos demos of each few-shot task and --pretrain-demos of every other MT50 task into
    `<out>/pretrain/demos/`, then trains one QueST policy on all of them; with --pretrain-env (metaworld/ML45), the
    demos of that env's tasks alone, MT50's task table kept (the targets, held out, get their ids)."""
    targets = args.few_shot or [task_overrides(args, spec)[0] for spec in args.tasks]
    collect = [f"collect.num_demos={args.pretrain_demos}", f"collect.few_shot_demos={args.target_demos}"]
    if args.pretrain_env == HELD_OUT:  # MT50 without the targets (e.g. QueST's ML45 split)
        from ript_fast.envs.registry import resolve_tasks

        rest = [f"metaworld/{t}" for t in resolve_tasks("metaworld/MT50") if t not in targets]
        collect += [f"collect.env=[{','.join(rest)}]", "collect.few_shot=[]", "task_table=metaworld/MT50"]
    elif args.pretrain_env:
        collect += [f"collect.env={args.pretrain_env}", "collect.few_shot=[]", "task_table=metaworld/MT50"]
    else:
        collect += [f"collect.few_shot=[{','.join(targets)}]"]
    return run_sft(args.out / "pretrain", "configs/prior_quest_mt50_cpu.yaml", collect)


def multitask(args: argparse.Namespace) -> list[Path]:
    """Every task's stage 2 and dynamic-sampling run first, then the ablation's runs: a stopped experiment has the
    default RIPT's result on each task before any ablation."""
    demos = args.out / "pretrain" / "demos"
    pretrained = pretrain(args)
    runs: dict[str, list[Path]] = {}
    for label, extra in (("dynamic", []), ("no-dynamic", ["ript.dynamic_sampling=false"])):
        for spec in args.tasks:
            task, base = task_overrides(args, spec)
            source = [f"demos=[{demos / f'{task}.hdf5'}]"]  # the few demos the prior saw
            if args.pretrain_env:  # a held-out task: the stage 2 collects its few demos (seed 1000, noise 0.2)
                source = [f"collect.env=metaworld/{task}", f"collect.num_demos={args.target_demos}"]
            overrides = [*source, f"init_checkpoint={pretrained}"]
            stage2 = run_sft(args.out / f"{task}__stage2", "configs/sft_quest_stage2_cpu.yaml", overrides)
            out = args.out / f"{task}{args.tag}__{label}"
            run_train(out, args.config, [*base, *extra], stage2)
            runs.setdefault(task, []).append(out)
    return [run for task_runs in runs.values() for run in task_runs]


def ml45(args: argparse.Namespace) -> list[Path]:
    # --target-demos scripted demos of each training task, collected by the SFT run itself (seed 1000, noise 0.2);
    # one torch thread: the RIPT runs of another experiment often share the cores (OpenMP workers then spin)
    collect = ["collect.env=metaworld/ML45", f"collect.num_demos={args.target_demos}", "threads=1"]
    sft = run_sft(args.out / "sft", "configs/sft_quest_mt50_cpu.yaml", collect)
    runs = []
    for seed in args.seeds:
        base = ["env=metaworld/ML45", f"seed={seed}", *args.set]
        for label, extra in (("dynamic", []), ("no-dynamic", ["ript.dynamic_sampling=false"])):
            out = args.out / f"ML45{args.tag}_seed{seed}__{label}"
            run_train(out, args.config, [*base, *extra], sft)
            runs.append(out)
    return runs


def sweep(args: argparse.Namespace, key: str, values: list[str], label: str) -> list[Path]:
    """Runs `key=value` for each value from one shared SFT policy (made by the first run)."""
    runs = []
    init = None
    for value in values:
        out = args.out / f"{args.task}__{label}={value}"
        run_train(out, args.config, [f"env=metaworld/{args.task}", f"{key}={value}", *args.set], init)
        if init is None:
            init = args.out / f"{args.task}__sft.safetensors"
            if not init.exists():
                shutil.copy(out / "sft" / "policy.safetensors", init)
        runs.append(out)
    return runs


def is_ript_run(folder: Path) -> bool:
    """A RIPT run folder (its records have iterations), not a pretraining or stage-2 SFT folder beside it."""
    metrics = folder / "metrics.jsonl"
    if not metrics.exists():
        return False
    with metrics.open() as f:
        return "iteration" in json.loads(f.readline() or "{}")


def summarize(run: Path) -> dict:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [(r["iteration"], r["eval_success"]) for r in records if r.get("eval_success") is not None]
    reached = next((it for it, s in evals if it > 0 and s >= TARGET), None)
    wall = run / "wall_seconds.txt"
    return {
        "run": run.name,
        "sft": evals[0][1] if evals else float("nan"),
        "final": evals[-1][1] if evals else float("nan"),
        "best": max(s for _, s in evals) if evals else float("nan"),
        "iterations": records[-1]["iteration"],
        "reached_80": reached,
        "minutes": float(wall.read_text()) / 60 if wall.exists() else float("nan"),
        "curve": evals,
        "episodes": [r.get("eval_episodes", 0) for r in records if r.get("eval_success") is not None],
        "rejected": sum(r.get("rejected_groups", 0) for r in records),
    }


def report(runs: list[Path], out: Path, title: str) -> None:
    rows = [summarize(r) for r in runs if (r / "metrics.jsonl").exists()]
    print(f"\n### {title}\n")
    print("| run | SFT (iter 0) | final | best | first iter >= 80% | iterations | rejected groups | wall min |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        reached = r["reached_80"] if r["reached_80"] is not None else "-"
        print(
            f"| {r['run']} | {r['sft']:.2f} | {r['final']:.2f} | {r['best']:.2f} | {reached} | {r['iterations']} | "
            f"{r['rejected']} | {r['minutes']:.1f} |"
        )
    plot(rows, out / f"{title.replace(' ', '_')}.png", title)


def ml45_report(runs: list[Path]) -> None:
    """Table 2's form for multi-task runs: mean held-out success over the tasks at the first and last evaluation,
    with episode counts and 95% Wilson intervals, then success per task (the runs side by side)."""
    from ript_fast.train.binomial import wilson_interval

    evals = {}
    for run in runs:
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        evals[run.name] = [r for r in records if r.get("eval_success") is not None]
    print("\n| run | iteration | held-out success (95% CI) | episodes | gain over iteration 0 |")
    print("|---|---:|---|---:|---:|")
    for name, rows in evals.items():
        for r in (rows[0], rows[-1]) if len(rows) > 1 else rows:
            n = r["eval_episodes"]
            low, high = wilson_interval(round(r["eval_success"] * n), n)
            gain = 100 * (r["eval_success"] - rows[0]["eval_success"])
            print(f"| {name} | {r['iteration']} | {r['eval_success']:.3f} ({low:.3f}-{high:.3f}) | {n} | {gain:+.1f} |")
    tasks = sorted(k.split("/", 1)[1] for k in next(iter(evals.values()))[0] if k.startswith("eval_success/"))
    names = list(evals)
    print("\n| task | iteration 0 | " + " | ".join(f"{n}: last" for n in names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for task in tasks:
        first = next(iter(evals.values()))[0][f"eval_success/{task}"]
        last = [f"{evals[n][-1].get(f'eval_success/{task}', float('nan')):.1f}" for n in names]
        print(f"| {task} | {first:.1f} | " + " | ".join(last) + " |")


def task_of(run_name: str) -> str:
    """The MetaWorld task a run folder is named after (`<task><tag>__<variant>`); '' for a multi-task run."""
    match = re.match(r"[a-z0-9-]+-v\d+", run_name)
    return match.group(0) if match else ""


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Held-out success against iteration with 95% Wilson bands: one panel per task when the runs span several
    (ten curves on one axis hide which run is which), the same colour for the same variant in every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ript_fast.train.binomial import wilson_interval

    panels: dict[str, list[dict]] = {}
    for r in rows:
        panels.setdefault(task_of(r["run"]), []).append(r)
    if len(panels) == 1:  # one task: one axis, the runs named in full
        panels = {"": rows}
    cols = min(len(panels), 3)
    grid = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(
        grid,
        cols,
        figsize=(7 if cols == 1 else 4.6 * cols, 4.5 if grid == 1 else 3.6 * grid),
        dpi=100,
        squeeze=False,
        sharey=True,
    )
    variants: list[str] = []
    for ax, (task, runs) in zip(axes.flat, panels.items(), strict=False):
        for r in runs:
            label = r["run"][len(task) :].strip("_").replace("__", " ") if task else r["run"]
            if label not in variants:
                variants.append(label)
            xs, ys = zip(*r["curve"], strict=True) if r["curve"] else ((), ())
            style = "--" if "no-dynamic" in r["run"] else "-"
            line = ax.plot(
                xs, ys, marker="o", markersize=3, label=label, linestyle=style, color=f"C{variants.index(label) % 10}"
            )[0]
            if all(r["episodes"]):  # 95% Wilson band of each evaluation
                bands = [wilson_interval(round(y * n), n) for y, n in zip(ys, r["episodes"], strict=True)]
                ax.fill_between(xs, *zip(*bands, strict=True), color=line.get_color(), alpha=0.12, linewidth=0)
        ax.axhline(TARGET, color="gray", linewidth=0.8)
        ax.set_xlabel("RIPT iteration")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(task or title, fontsize=10 if task else None)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("held-out success rate")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if len(panels) > 1:
        fig.suptitle(f"{title} (bands: 95% Wilson intervals)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    print(f"\nplot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=["headline", "multitask", "ml45", "contexts", "noise", "report"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--config", default="ript_metaworld_scratch_cpu", help="run config (the from-scratch preset: demos + SFT)"
    )
    parser.add_argument(
        "--tasks", nargs="+", default=["reach-v3", "coffee-push-v3", "drawer-open-v3@demos.num_demos=1"]
    )
    parser.add_argument("--task", default="reach-v3")
    parser.add_argument("--sizes", nargs="+", default=["1", "4", "16", "64"])
    parser.add_argument("--stds", nargs="+", default=["0", "0.025", "0.05", "0.1"])
    parser.add_argument("--pretrain-demos", type=int, default=40, help="multitask: demos of each other task")
    parser.add_argument("--target-demos", type=int, default=1, help="multitask: demos of each few-shot task")
    parser.add_argument(
        "--few-shot", nargs="*", default=[], help="multitask: the tasks given only --target-demos (default: --tasks)"
    )
    parser.add_argument(
        "--pretrain-env",
        default="",
        help=f"multitask: pretrain on this env's tasks alone (targets held out); '{HELD_OUT}': MT50 minus the targets",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="ml45: the RIPT runs' seeds")
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    parser.add_argument(
        "--runs", nargs="*", type=Path, default=[], help="report: these run folders (default: all in --out)"
    )
    parser.add_argument(
        "--tag", default="", help="multitask: suffix of the RIPT run folders (a variant beside finished runs)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.experiment == "headline":
        runs = headline(args)
    elif args.experiment == "multitask":
        runs = multitask(args)
    elif args.experiment == "ml45":
        runs = ml45(args)
    elif args.experiment == "contexts":
        runs = sweep(args, "contexts.size", args.sizes, "contexts")
    elif args.experiment == "noise":
        runs = sweep(args, "contexts.noise_std", args.stds, "noise")
    else:
        runs = args.runs or sorted(p for p in args.out.iterdir() if is_ript_run(p))
    report(runs, args.out, f"RIPT {args.experiment}")
    multi = [r for r in runs if r.name.startswith("ML45") and (r / "metrics.jsonl").exists()]
    if multi:
        ml45_report(multi)


if __name__ == "__main__":
    main()
