"""Benchmark of the fused RL ops against eager PyTorch and torch.compile'd eager PyTorch.

Each case is one forward + backward of a loss at a realistic scale, timed (median over repetitions, after
warm-up, compile time excluded) and measured for peak memory above what existed before the step:
  - CPU: the process's peak resident set (VmHWM, reset through /proc/self/clear_refs before each step). The
    script re-executes itself with MALLOC_MMAP_THRESHOLD_=65536 so that every large buffer is its own mapping
    and is returned to the OS when freed; the peak is then the high-water mark of live memory, whatever
    allocates it (torch, our core, inductor's generated code).
  - CUDA: torch.cuda.max_memory_allocated above the allocated baseline. Our kernels' stream-ordered scratch
    (O(B T) floats) is outside torch's allocator and not counted.
The numbers are measurements only: nothing here asserts a timing.

    python bench/bench_ops.py [--device cpu|cuda] [--reps N] [--only SUBSTRING] [--markdown FILE]
                              [--torch-threads N]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ript_fast import ops
from ript_fast._core import _C

LOG_2PI = math.log(2 * math.pi)
Step = Callable[[], torch.Tensor]


@dataclass
class Case:
    name: str
    # make(device) -> leaves (tensors that get gradients) and the three loss builders over them
    make: Callable[[str], tuple[list[torch.Tensor], dict[str, Callable[..., torch.Tensor]], tuple]]


# ----------------------------------------------------------------------------------------------------------
# Eager references: the code a user would write without the fused ops.


def eager_token_logp(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens[..., None])[..., 0]


def eager_ppo(
    logp_new: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor | None, eps: float
) -> torch.Tensor:
    ratio = torch.exp((logp_new - logp_old).clamp(-20, 20))
    adv = adv[:, None] if logp_new.dim() == 2 else adv
    loss = -torch.min(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv)
    if mask is None:
        return loss.mean()
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def eager_categorical_ppo_token(logits, tokens, logp_old, adv, mask):  # type: ignore[no-untyped-def]
    return eager_ppo(eager_token_logp(logits, tokens), logp_old, adv, mask, 0.2)


def eager_categorical_ppo_seq(logits, tokens, logp_old, adv, mask):  # type: ignore[no-untyped-def]
    return eager_ppo((eager_token_logp(logits, tokens) * mask).sum(1), logp_old, adv, None, 0.2)


def eager_categorical_logprob(logits, tokens, mask):  # type: ignore[no-untyped-def]
    return (eager_token_logp(logits, tokens) * mask).sum(1).sum()


def eager_gaussian_ppo(mean, log_std, actions, logp_old, adv):  # type: ignore[no-untyped-def]
    logp = (-((actions - mean) ** 2) / (2 * torch.exp(2 * log_std)) - log_std - 0.5 * LOG_2PI).sum(-1)
    return eager_ppo(logp, logp_old, adv, None, 0.1)


def eager_laplace_ppo(loc, log_scale, actions, logp_old, adv):  # type: ignore[no-untyped-def]
    logp = (-torch.abs(actions - loc) / torch.exp(log_scale) - log_scale - math.log(2.0)).sum(-1)
    return eager_ppo(logp, logp_old, adv, None, 0.1)


# The same losses through ript_fast.ops.


def ours_categorical_ppo(logits, tokens, logp_old, adv, mask):  # type: ignore[no-untyped-def]
    return ops.categorical_ppo_loss(logits, tokens, logp_old, adv, mask, clip_eps=0.2)


def ours_categorical_logprob(logits, tokens, mask):  # type: ignore[no-untyped-def]
    return ops.categorical_logprob(logits, tokens, mask).sum()


def ours_gaussian_ppo(mean, log_std, actions, logp_old, adv):  # type: ignore[no-untyped-def]
    return ops.ppo_clip_loss(ops.gaussian_logprob(mean, log_std, actions, reduction="none"), logp_old, adv, 0.1)


def ours_laplace_ppo(loc, log_scale, actions, logp_old, adv):  # type: ignore[no-untyped-def]
    return ops.ppo_clip_loss(ops.laplace_logprob(loc, log_scale, actions, reduction="none"), logp_old, adv, 0.1)


# ----------------------------------------------------------------------------------------------------------
# Cases


def token_case(name: str, b: int, t: int, v: int, level: str) -> Case:
    def make(device: str) -> tuple[list[torch.Tensor], dict, tuple]:
        logits = torch.randn(b, t, v, device=device)
        tokens = torch.randint(0, v, (b, t), device=device)
        mask = (torch.rand(b, t, device=device) > 0.1).float()
        with torch.no_grad():
            per_token = eager_token_logp(logits, tokens) + 0.05 * torch.randn(b, t, device=device)
        adv = torch.randn(b, device=device)
        if level == "logprob":
            impls = {"ours": ours_categorical_logprob, "eager": eager_categorical_logprob}
            return [logits], impls, (tokens, mask)
        logp_old = (per_token * mask).sum(1) if level == "sequence" else per_token
        eager = eager_categorical_ppo_seq if level == "sequence" else eager_categorical_ppo_token
        return [logits], {"ours": ours_categorical_ppo, "eager": eager}, (tokens, logp_old, adv, mask)

    return Case(name, make)


def continuous_case(name: str, b: int, t: int, d: int, family: str) -> Case:
    def make(device: str) -> tuple[list[torch.Tensor], dict, tuple]:
        mean = torch.randn(b, t, d, device=device)
        log_scale = torch.randn(b, t, d, device=device) * 0.3 - 1
        actions = mean + torch.randn(b, t, d, device=device) * 0.3
        logp_old = torch.randn(b, t, device=device) - 5
        adv = torch.randn(b, device=device)
        impls = (
            {"ours": ours_gaussian_ppo, "eager": eager_gaussian_ppo}
            if family == "gaussian"
            else {"ours": ours_laplace_ppo, "eager": eager_laplace_ppo}
        )
        return [mean, log_scale], impls, (actions, logp_old, adv)

    return Case(name, make)


CASES = [
    token_case("categorical_ppo_loss token  robot B160 T60 V1024", 160, 60, 1024, "token"),
    token_case("categorical_ppo_loss seq    robot B160 T60 V1024", 160, 60, 1024, "sequence"),
    token_case("categorical_logprob         robot B160 T60 V1024", 160, 60, 1024, "logprob"),
    token_case("categorical_ppo_loss token  LLM B4 T256 V32000", 4, 256, 32000, "token"),
    token_case("categorical_ppo_loss seq    LLM B4 T256 V32000", 4, 256, 32000, "sequence"),
    token_case("categorical_logprob         LLM B4 T256 V32000", 4, 256, 32000, "logprob"),
    continuous_case("gaussian_logprob+ppo_clip  B192 T8 D7", 192, 8, 7, "gaussian"),
    continuous_case("laplace_logprob+ppo_clip   B192 T8 D7", 192, 8, 7, "laplace"),
]


# ----------------------------------------------------------------------------------------------------------
# Measurement


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_bytes(step: Step, clear: Callable[[], None], device: str) -> int:
    """Peak memory of one step above what was allocated before it (the previous gradients dropped first)."""
    clear()
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    base = rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    step()
    return (rss_kib("VmHWM") - base) * 1024


def median_seconds(step: Step, clear: Callable[[], None], device: str, reps: int) -> float:
    times = []
    for _ in range(reps):
        clear()
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reps_for(step: Step, clear: Callable[[], None], device: str, at_least: int) -> int:
    """Enough repetitions to fill about half a second (at most 200), so that fast cases get a stable median."""
    once = median_seconds(step, clear, device, 1)
    return max(at_least, min(200, math.ceil(0.5 / max(once, 1e-6))))


def make_step(
    fn: Callable[..., torch.Tensor], leaves: list[torch.Tensor], rest: tuple
) -> tuple[Step, Callable[[], None]]:
    """One forward + backward into fresh .grad buffers, and the function dropping the previous ones."""

    def step() -> torch.Tensor:
        loss = fn(*leaves, *rest)
        loss.backward()
        return loss

    def clear() -> None:
        for leaf in leaves:
            leaf.grad = None

    return step, clear


def run_case(case: Case, device: str, reps: int) -> dict[str, tuple[float, int]]:
    base_leaves, impls, rest = case.make(device)
    impls = {**impls, "compiled": torch.compile(impls["eager"], fullgraph=True)}
    results = {}
    for impl, fn in impls.items():
        leaves = [leaf.detach().clone().requires_grad_() for leaf in base_leaves]
        step, clear = make_step(fn, leaves, rest)
        for _ in range(2):  # warm-up (and compilation)
            clear()
            step()
        seconds = median_seconds(step, clear, device, reps_for(step, clear, device, reps))
        peak = peak_bytes(step, clear, device)
        del leaves, step, clear
        results[impl] = (seconds, peak)
    return results


def table(rows: list[tuple[str, dict[str, tuple[float, int]]]]) -> str:
    mib = 1 << 20
    lines = [
        "| case (fwd+bwd) | ours ms | eager ms | compiled ms | eager/ours | compiled/ours "
        "| ours MiB | eager MiB | compiled MiB | ours/eager mem |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        (t_o, m_o), (t_e, m_e), (t_c, m_c) = r["ours"], r["eager"], r["compiled"]
        mem_ratio = f"{m_o / m_e:.2f}" if m_e > 0 else "n/a"
        lines.append(
            f"| {name} | {1e3 * t_o:.2f} | {1e3 * t_e:.2f} | {1e3 * t_c:.2f} | {t_e / t_o:.2f}x | {t_c / t_o:.2f}x "
            f"| {m_o / mib:.1f} | {m_e / mib:.1f} | {m_c / mib:.1f} | {mem_ratio} |"
        )
    return "\n".join(lines)


def write_report(device: str, settings: str, load_before: tuple[float, ...], body: str, markdown: str) -> None:
    """Prints the machine, the run's settings, the load around it and the table (what RESULTS.md quotes), and
    writes the same text to `markdown` when given."""
    load_after = os.getloadavg()
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {os.cpu_count()} cores"
    header = (
        f"device: {name}; torch {torch.__version__}; torch threads {torch.get_num_threads()}, "
        f"ript_fast threads {_C.num_threads()}; {settings}; "
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}"
    )
    out = f"{header}\n\n{body}\n"
    print(out)
    if markdown:
        with open(markdown, "w") as f:
            f.write(out)


def reexec_with_mmap_threshold() -> None:
    """Large buffers must be separate mappings for RSS to track live memory (see the module docstring)."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--reps", type=int, default=5, help="least timed repetitions per implementation (median)")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--markdown", default="", help="also write the table to this file")
    parser.add_argument("--torch-threads", type=int, default=0, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    if args.device == "cpu":
        reexec_with_mmap_threshold()
    torch.manual_seed(0)
    load_before = os.getloadavg()
    rows = []
    for case in CASES:
        if args.only in case.name:
            rows.append((case.name, run_case(case, args.device, args.reps)))
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)  # progress, row by row
    settings = f"median of >= {args.reps} repetitions (about 0.5 s each)"
    write_report(args.device, settings, load_before, table(rows), args.markdown)


if __name__ == "__main__":
    main()
