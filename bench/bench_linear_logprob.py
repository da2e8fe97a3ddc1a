"""Benchmark of the LM head + PPO loss over a large vocabulary: eager PyTorch, `categorical_ppo_loss` on
materialised logits, and `linear_categorical_ppo_loss` (issue #15), side by side in one process.

One step is the forward + backward of the clipped PPO loss of sampled tokens from the last hidden states
(B x T rows of H = 4096) through the LM head (V = 32000, OpenVLA's), with the gradient of the hidden states
(the head frozen, as under LoRA; `--train-head` also trains it):
  - eager:        logits = hidden @ weight.T; log_softmax; gather; the PPO terms in torch ops;
  - materialised: logits = hidden @ weight.T; ops.categorical_ppo_loss(logits, ...);
  - fused:        ops.linear_categorical_ppo_loss(hidden, weight, ...) (one chunk of logits at a time).
Time: the median of --reps steps after one warm-up step at the smallest size, the implementations taking turns
step by step (a load change on the shared machine then hits all of them). Peak memory: the rise of the
process's peak resident set over the step (VmHWM reset through /proc/self/clear_refs; the script re-executes
itself with MALLOC_MMAP_THRESHOLD_=65536 so every large buffer is its own mapping, as bench_ops.py does), or on
CUDA torch.cuda.max_memory_allocated above the baseline. The numbers are measurements only: nothing here
asserts a timing.

    python bench/bench_linear_logprob.py [--rows 1024,4096,16384] [--level token|sequence] [--reps N]
                                         [--train-head] [--device cpu|cuda] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable

import torch
from bench_ops import (
    eager_categorical_ppo_seq,
    eager_categorical_ppo_token,
    median_seconds,
    peak_bytes,
    reexec_with_mmap_threshold,
    write_report,
)

from ript_fast import ops

HIDDEN, VOCAB, STEPS = 4096, 32000, 64
Loss = Callable[..., torch.Tensor]


def eager_loss(hidden, weight, tokens, logp_old, adv, mask):  # type: ignore[no-untyped-def]
    """bench_ops.py's eager loss (log_softmax, gather, PPO terms in torch ops) on the head's logits."""
    eager = eager_categorical_ppo_seq if logp_old.dim() == 1 else eager_categorical_ppo_token
    return eager(hidden @ weight.t(), tokens, logp_old, adv, mask)


def materialised_loss(hidden, weight, tokens, logp_old, adv, mask):  # type: ignore[no-untyped-def]
    return ops.categorical_ppo_loss(hidden @ weight.t(), tokens, logp_old, adv, mask)


def fused_loss(hidden, weight, tokens, logp_old, adv, mask):  # type: ignore[no-untyped-def]
    return ops.linear_categorical_ppo_loss(hidden, weight, tokens, logp_old, adv, mask)


IMPLS: dict[str, Loss] = {"eager": eager_loss, "materialised": materialised_loss, "fused": fused_loss}


def make_inputs(rows: int, level: str, device: str, train_head: bool) -> tuple[list[torch.Tensor], tuple]:
    """Leaves (hidden, and the head when trained) and the constants of one step at `rows` = B x T."""
    batch = max(1, rows // STEPS)
    hidden = torch.randn(batch, STEPS, HIDDEN, device=device)
    weight = (torch.randn(VOCAB, HIDDEN, device=device) / HIDDEN**0.5).requires_grad_(train_head)
    tokens = torch.randint(0, VOCAB, (batch, STEPS), device=device)
    mask = (torch.rand(batch, STEPS, device=device) > 0.1).float()
    with torch.no_grad():
        per_token = ops.linear_categorical_logprob(hidden, weight, tokens, reduction="none")
    per_token = per_token + 0.05 * torch.randn_like(per_token)
    logp_old = (per_token * mask).sum(1) if level == "sequence" else per_token
    adv = torch.randn(batch, device=device)
    return [hidden, weight], (tokens, logp_old, adv, mask)


def make_step(
    fn: Loss, leaves: list[torch.Tensor], rest: tuple
) -> tuple[Callable[[], torch.Tensor], Callable[[], None]]:
    """One forward + backward into fresh gradients, and the function dropping the previous ones."""
    hidden = leaves[0].detach().requires_grad_()
    weight = leaves[1]

    def clear() -> None:
        hidden.grad = None
        weight.grad = None

    def step() -> torch.Tensor:
        loss = fn(hidden, weight, *rest)
        loss.backward()
        return loss

    return step, clear


def measure_all(leaves: list[torch.Tensor], rest: tuple, device: str, reps: int) -> dict[str, tuple[float, int]]:
    """(median seconds, peak bytes) per implementation. The timed steps go round the implementations in turn, so
    that a change in the shared machine's load (other jobs) falls on all of them alike rather than on one."""
    steps = {name: make_step(fn, leaves, rest) for name, fn in IMPLS.items()}
    times: dict[str, list[float]] = {name: [] for name in IMPLS}
    for _ in range(reps):
        for name, (step, clear) in steps.items():
            times[name].append(median_seconds(step, clear, device, 1))
    return {
        name: (statistics.median(times[name]), peak_bytes(step, clear, device)) for name, (step, clear) in steps.items()
    }


def table(results: dict[int, dict[str, tuple[float, int]]]) -> str:
    mib = 1 << 20
    lines = [
        "| rows (B x T) | eager s | materialised s | fused s | eager/fused time | eager MiB | materialised MiB "
        "| fused MiB | fused/eager mem | materialised/eager mem |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows, r in results.items():
        (t_e, m_e), (t_m, m_m), (t_f, m_f) = r["eager"], r["materialised"], r["fused"]
        lines.append(
            f"| {rows} | {t_e:.2f} | {t_m:.2f} | {t_f:.2f} | {t_e / t_f:.2f}x | {m_e / mib:.0f} | {m_m / mib:.0f} "
            f"| {m_f / mib:.0f} | {m_f / m_e:.3f} | {m_m / m_e:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1024,4096,16384", help="comma-separated B x T sizes")
    parser.add_argument("--level", default="token", choices=["token", "sequence"])
    parser.add_argument("--reps", type=int, default=1, help="timed steps per implementation and size (median)")
    parser.add_argument("--train-head", action="store_true", help="the head's weight gets a gradient too")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--markdown", default="", help="also write the table to this file")
    args = parser.parse_args()
    if args.device == "cpu":
        reexec_with_mmap_threshold()
    torch.manual_seed(0)
    sizes = [int(r) for r in args.rows.split(",")]
    load_before = os.getloadavg()
    warm_leaves, warm_rest = make_inputs(STEPS, args.level, args.device, args.train_head)
    measure_all(warm_leaves, warm_rest, args.device, 1)  # warm-up: lazy initialisation out of measured steps
    results: dict[int, dict[str, tuple[float, int]]] = {}
    for rows in sizes:
        leaves, rest = make_inputs(rows, args.level, args.device, args.train_head)
        results[rows] = measure_all(leaves, rest, args.device, args.reps)
        del leaves, rest
        print(table({rows: results[rows]}).splitlines()[-1], file=sys.stderr, flush=True)
    settings = (
        f"H {HIDDEN}, V {VOCAB}, T {STEPS}, float32, {args.level}-level ratios, head "
        f"{'trained' if args.train_head else 'frozen'}; median of {args.reps} step(s)"
    )
    write_report(args.device, settings, load_before, table(results), args.markdown)


if __name__ == "__main__":
    main()
