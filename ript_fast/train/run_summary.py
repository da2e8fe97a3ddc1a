"""What `ript-fast train` tells a person: one line saying what will run and where, and an end summary.

Why: a run takes minutes to hours; the first line says before any work starts which task, starting policy, budget
and folder the config resolved to (a mistyped preset shows here, not in the plots an hour later), and the summary
says what the run achieved as a reader of a paper would want it: held-out success before -> after with its episode
count and a 95% interval (a few dozen episodes leave wide intervals), the best iteration, and where the artifacts
are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ript_fast.train.pretrained import EvalScore, run_eval_scores
from ript_fast.train.run_config import TrainConfig
from ript_fast.train.run_logger import read_metrics


def start_line(cfg: TrainConfig, out: Path, resuming: bool) -> str:
    """`ript-fast train: <env>, <start>; M iterations of B rollouts (K per context) on <device>; <out>`. The start
    names the init checkpoint, the checkpoint the SFT stage fine-tunes (the default run's packaged prior), or the
    family the SFT stage will train (an init's family is in its header)."""
    env = cfg.env if isinstance(cfg.env, str) else f"{len(cfg.env)} tasks ({', '.join(cfg.env[:3])}, ...)"
    demos = "given" if cfg.demos.files else "scripted"
    if cfg.init:
        start = f"from {cfg.init}"
    elif cfg.sft.init_checkpoint:
        start = f"fine-tuning {Path(cfg.sft.init_checkpoint).name} on {cfg.demos.num_demos} {demos} demos first"
    else:
        start = f"SFT of a {cfg.sft.policy.family} policy on {demos} demos first"
    r = cfg.ript
    sampling = "dynamic sampling" if r.dynamic_sampling else "no dynamic sampling"
    verb = "resuming" if resuming else "run folder"
    return (
        f"ript-fast train: {env}, {start}; {r.iterations} iterations of {r.batch_rollouts} rollouts "
        f"(K={r.group_size}, {sampling}) on {cfg.device}; {verb} {out}"
    )


def held_out_episodes(cfg: TrainConfig, tasks: int) -> int:
    """Episodes of one held-out evaluation: `contexts.eval_size` per task."""
    return cfg.contexts.eval_size * tasks


def end_summary(out: Path, final: Path, env: str, episodes: int) -> str:
    """Held-out success before -> after (episodes, 95% interval), the best evaluation, and the artifacts."""
    history = read_metrics(out, "iteration")
    lines = []
    scores = run_eval_scores(history, env, episodes)
    if scores:
        lines.append("held-out success: " + " -> ".join(_describe(s) for s in scores))
        best = _best(history)
        if best is not None:
            lines.append(f"best evaluation: iteration {best['iteration']} ({best['eval_success']:.1%})")
    idle = _no_signal_line(history)
    if idle:
        lines.append(idle)
    lines.append(
        f"policy: {final} (folder with model card: {out / 'policy'}); best: "
        f"{out / 'best.safetensors'}; curves: {out / 'success.png'}; metrics: {out / 'metrics.jsonl'}"
    )
    return "\n".join(lines)


def _no_signal_line(history: list[dict[str, Any]]) -> str | None:
    """How many iterations changed nothing (no group with differing rewards): what a flat curve means."""
    done = [r for r in history if "informative_groups" in r]
    idle = [r for r in done if r["informative_groups"] == 0]
    if not idle:
        return None
    line = f"no learning signal in {len(idle)} of {len(done)} iterations (every group's K rewards equal: no change)"
    if len(idle) == len(done):
        line += "; the policy never changed: start from one that succeeds sometimes (more demos, a stronger prior)"
    return line


def _describe(score: EvalScore) -> str:
    low, high = score.interval()
    return f"{score.rate:.1%} ({score.successes}/{score.episodes}, 95% CI {low:.0%}-{high:.0%})"


def _best(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    evaluated = [r for r in history if isinstance(r.get("eval_success"), (int, float))]
    return max(evaluated, key=lambda r: r["eval_success"]) if evaluated else None
