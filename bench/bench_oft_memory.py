"""Peak memory of one RIPT PPO step of the `openvla_oft` policy, measured on the CPU at scaled sizes (measures; never
asserts), and a memory model fitted to the points and extrapolated to OFT-7B at the paper's settings.

    python bench/bench_oft_memory.py                 # every point, each (size, mode) in its own fresh process
    python bench/bench_oft_memory.py --quick         # the two smallest sizes only
    python bench/bench_oft_memory.py --json rows.json   # also keep the measured rows; --report rows.json re-reports

The step: `policy.score` through the trainer's `ppo_loss` (per chunk-step ratios, clip 0.1) on one query (the
released code's `max_step_batch_size` = 1), the backward, the per-group gradient clip and an AdamW step over LoRA +
the action head, in bf16 weights (`openvla_oft.dtype: bfloat16`). Modes:
    whole        gradients through the whole sequence (`prefix_grad: true`)
    cached       the prefix cached without gradients, only the action pass carries them (the default)
    cached+ckpt  cached, plus gradient checkpointing of the LM layers (`gradient_checkpointing: true`)
    whole+ckpt   whole, plus gradient checkpointing

How peak memory is measured: each point runs in a fresh subprocess with `MALLOC_MMAP_THRESHOLD_=65536`, so that
every allocation of 64 KiB or more (every tensor that matters) is its own mmap, returned to the OS when freed: the
resident set then follows the live tensors instead of glibc's free lists. One warm-up step first allocates Adam's
state (a steady-state step has it); then `malloc_trim`, the kernel's peak-RSS mark is reset (`/proc/self/clear_refs`
= 5) and a second step runs; its forward + backward peak is VmHWM then minus the resident set just before the step;
the mark is reset again and the optimizer step's peak is read the same way (over the same starting point). So the
measured figures are what one step adds on top of the weights and the optimizer state (the gradients, the
activations kept for the backward, the prefix cache, temporaries); weights and optimizer state are counted from the
tensors. AdamW runs with foreach=True, its default on a GPU (its temporaries span every parameter at once). An RSS
mark rather than torch.profiler's memory events: it cannot miss an allocation that is not a tensor, and it costs
nothing while the step runs; a fresh process per point keeps one point's peak out of the next.

The LM is Llama-shaped at every point (head size 128 and MLP width 11008/4096 of the hidden size, as Llama-2-7B); the
vision towers are the tiny test ViTs (frozen and run without gradients in every mode, so they hold no activations
during the step) at image sizes that give 2 x 16 to 2 x 256 patches; prompts are padded to 40 tokens.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ript_fast.train.rollout import RolloutBatch

MODES = {
    "whole": {"prefix_grad": True},
    "cached": {"prefix_grad": False},
    "cached+ckpt": {"prefix_grad": False, "gradient_checkpointing": True},
    "whole+ckpt": {"prefix_grad": True, "gradient_checkpointing": True},
}
PROMPT_TOKENS = 40
LORA_RANK = 32
MLP_RATIO = 11008 / 4096
HEAD_DIM = 128
GB = 1e9  # decimal: the issue states its goal in GB (a "24 GB" card of 24 GiB holds 25.8 GB)
BUDGET_GB = 24  # the goal: one PPO step of OFT-7B under 24 GB


@dataclass(frozen=True)
class Point:
    """One scaled size: LM layers and hidden size, and the image size (patches per image = (image / 14)^2)."""

    layers: int
    hidden: int
    image: int

    @property
    def intermediate(self) -> int:
        return round(self.hidden * MLP_RATIO / 16) * 16

    @property
    def name(self) -> str:
        return f"L{self.layers}-H{self.hidden}-img{self.image}"


POINTS = [
    Point(2, 512, 56),
    Point(4, 512, 112),
    Point(4, 1024, 56),
    Point(4, 1024, 224),
    Point(8, 1024, 112),
    Point(4, 2048, 112),
    Point(8, 2048, 224),
]
QUICK = POINTS[:2]
# at this point also 4 queries in one pass and in passes of 1 (`score_queries_per_pass`)
PASSES_POINT, PASSES_QUERIES, PASSES_MODES = POINTS[3], 4, ("whole", "cached")


# ---------------------------------------------------------------------------------------------------- the folder
def write_folder(folder: Path, point: Point) -> None:
    """A random-weight official-layout folder at `point`: the tiny folder's files, its LM and images resized."""
    from ript_fast.policies.openvla_oft.random_folder import (
        TINY,
        FolderSize,
        config_json,
        random_model,
        write_random_folder,
        write_weights,
    )

    write_random_folder(folder, "tiny")
    text = dict(TINY.text_config, hidden_size=point.hidden, intermediate_size=point.intermediate,
                num_hidden_layers=point.layers, num_attention_heads=point.hidden // HEAD_DIM)  # fmt: skip
    size = FolderSize(TINY.timm_model_ids, point.image, text)
    (folder / "config.json").write_text(json.dumps(config_json(size)))
    write_weights(folder, random_model(size, seed=0, dtype=torch.bfloat16))


# ---------------------------------------------------------------------------------------------------- one point
def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def _reset_peak() -> int:
    """Returns freed heap to the OS, resets the peak-RSS mark; the resident bytes now."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def _bytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


CAMERAS = ["agentview_rgb", "eye_in_hand_rgb"]


def build_policy(folder: Path, mode: str, per_pass: int) -> torch.nn.Module:
    """The `openvla_oft` policy on `folder` in bf16, with `mode`'s switches, in eval mode as the trainer scores."""
    from ript_fast.policies.base import PolicySpec
    from ript_fast.policies.config import PolicyConfig
    from ript_fast.policies.factory import build_policy as build
    from ript_fast.policies.obs_encoder import ObsConfig
    from ript_fast.policies.openvla_oft.policy_config import OpenVLAOFTPolicyConfig

    settings = OpenVLAOFTPolicyConfig(checkpoint=str(folder), dtype="bfloat16", max_prompt_tokens=PROMPT_TOKENS,
                                      score_queries_per_pass=per_pass, **MODES[mode])  # fmt: skip
    cfg = PolicyConfig(family="openvla_oft", obs=ObsConfig(state_keys=["state"], image_keys=CAMERAS),
                       openvla_oft=settings)  # fmt: skip
    torch.manual_seed(0)
    return build(cfg, PolicySpec(7, 16, ["goal"], ["open the drawer"])).eval()


def rollout_batch(policy: torch.nn.Module, queries: int) -> RolloutBatch:
    """`queries` rollouts of one query each: the policy's own samples on random images."""
    from ript_fast.policies.base import Observation

    rng = np.random.default_rng(0)
    images = {k: torch.from_numpy(rng.integers(0, 256, (queries, 128, 128, 3), dtype=np.uint8)) for k in CAMERAS}
    state = torch.zeros(queries, 16)
    state[:, 13] = 1.0  # a unit quaternion
    texts = ["open the top drawer of the cabinet"] * queries
    sample = policy.act(Observation(state, texts, torch.zeros(queries, dtype=torch.long), images), sample=True)
    return RolloutBatch(success=torch.ones(queries, dtype=torch.bool), rewards=torch.ones(queries),
                        context_ids=torch.zeros(queries, dtype=torch.long),
                        episode_steps=torch.ones(queries, dtype=torch.long),
                        query_mask=torch.ones(queries, 1, dtype=torch.bool),
                        decisions=sample.decision[:, None], logprob_old=sample.logprob[:, None],
                        cond={k: v[:, None] for k, v in sample.cond.items()})  # fmt: skip


def measured_step(policy: torch.nn.Module, groups: list[dict], optimizer: torch.optim.Optimizer,
                  batch: RolloutBatch) -> tuple[int, int, float]:  # fmt: skip
    """One PPO step: (forward + backward peak, optimizer peak) over the resident set before it, and its seconds."""
    from ript_fast.train.ppo import PPOSettings, ppo_loss

    ppo = PPOSettings(epochs=1, minibatch_rollouts=len(batch), clip_eps=0.1, clip_eps_high=0.1, ratio_level="token",
                      max_grad_norm=1.0)  # fmt: skip
    before = _reset_peak()
    start = time.perf_counter()
    loss, _ = ppo_loss(policy, batch, torch.ones(len(batch)), ppo)
    loss.backward()
    for group in groups:
        torch.nn.utils.clip_grad_norm_(group["params"], 1.0)
    seconds = time.perf_counter() - start
    backward = _status_kib("VmHWM") * 1024 - before
    _reset_peak()
    start = time.perf_counter()
    optimizer.step()
    seconds += time.perf_counter() - start
    optimizer_peak = _status_kib("VmHWM") * 1024 - before
    optimizer.zero_grad(set_to_none=True)
    return backward, optimizer_peak, seconds


def measure(folder: Path, mode: str, queries: int, per_pass: int) -> dict:
    """One PPO step's peaks over the weights and optimizer state, in this (fresh) process: `queries` rollouts of one
    query each, re-scored in passes of `per_pass` queries (0: one pass). A first step allocates Adam's state."""
    policy = build_policy(folder, mode, per_pass)
    groups = policy.freeze_for_rl()
    optimizer = torch.optim.AdamW(groups, foreach=True)  # what it defaults to on a GPU
    batch = rollout_batch(policy, queries)
    measured_step(policy, groups, optimizer, batch)
    backward, optimizer_peak, seconds = measured_step(policy, groups, optimizer, batch)
    trainable = [p for g in groups for p in g["params"]]
    lora = [p for n, p in policy.named_parameters() if "lora_" in n]
    lm = policy.model.vlm.language_model.model
    sequence = 1 + 2 * policy.model.vlm.vision_backbone.num_patches + 1 + PROMPT_TOKENS + policy.model.action_pass_len
    return {
        "queries": queries,
        "per_pass": per_pass,
        "backward_peak": backward,
        "optimizer_peak": optimizer_peak,
        "step_peak": max(backward, optimizer_peak),
        "seconds": seconds,
        "weights": _bytes(list(policy.parameters())) - _bytes(trainable),
        "trainable": _bytes(trainable),
        "optimizer_state": _bytes([t for s in optimizer.state.values() for t in s.values() if t.dim() > 0]),
        "lora_params": sum(p.numel() for p in lora),
        "lora_bytes": _bytes(lora),
        "layers": len(lm.layers),
        "hidden": lm.config.hidden_size,
        "kv_dim": lm.config.num_key_value_heads * HEAD_DIM,
        "sequence": sequence,
        "action_pass": policy.model.action_pass_len,
    }


# ---------------------------------------------------------------------------------------------------- the model
def pass_queries(row: dict) -> int:
    """Queries whose activations (and prefix cache) are alive at once."""
    return row["per_pass"] or row["queries"]


def grad_tokens(row: dict) -> int:
    """Positions of one query that carry gradients in the LM: the whole sequence, or the action pass."""
    return row["sequence"] if MODES[row["mode"]]["prefix_grad"] else row["action_pass"]


def prefix_cache_bytes(row: dict) -> int:
    """Every layer's prefix K and V (bf16) held during the action pass; none when the whole sequence has gradients."""
    if MODES[row["mode"]]["prefix_grad"]:
        return 0
    return pass_queries(row) * row["layers"] * 2 * (row["sequence"] - row["action_pass"]) * row["kv_dim"] * 2


@dataclass(frozen=True)
class MemoryModel:
    """A step's peak over the weights and the optimizer state, as max(forward + backward, optimizer step):

    forward + backward = prefix cache + max(head gradients + activations, all gradients). The backward starts with
        every activation alive and the head's gradients made; going down the layers it frees each layer's activations
        and makes its (much smaller) LoRA gradients, so it ends with all gradients and no activations. Without
        checkpointing every layer keeps (per_hidden * hidden + per_token) bytes per gradient token; with it each layer
        keeps only its bf16 input (2 * hidden bytes per token) and one layer's full activations exist at a time (its
        recompute).
    optimizer step = all gradients + optimizer_temp x the trained weights' bytes (AdamW's foreach temporaries).

    Per-query terms scale with the queries of one pass. `fit` takes the activation coefficients from the one-query
    `whole` rows (least squares; activations dominate there) and the optimizer's from the median of every one-query
    row; every other row (cached, checkpointed, several queries) is predicted, not fitted."""

    per_hidden: float
    per_token: float
    optimizer_temp: float

    @classmethod
    def fit(cls, rows: list[dict]) -> MemoryModel:
        whole = [r for r in rows if r["mode"] == "whole" and r["queries"] == 1]
        x = np.array([[r["hidden"], 1.0] for r in whole])
        y = np.array([(r["backward_peak"] - head_grad_bytes(r)) / (r["layers"] * r["sequence"]) for r in whole])
        (per_hidden, per_token), *_ = np.linalg.lstsq(x, y, rcond=None)
        single = [r for r in rows if r["queries"] == 1]
        temp = float(np.median([(r["optimizer_peak"] - r["trainable"]) / r["trainable"] for r in single]))
        return cls(float(per_hidden), float(per_token), temp)

    def activations(self, row: dict) -> float:
        tokens, per_layer = pass_queries(row) * grad_tokens(row), self.per_hidden * row["hidden"] + self.per_token
        if MODES[row["mode"]].get("gradient_checkpointing"):
            return row["layers"] * tokens * 2 * row["hidden"] + tokens * per_layer
        return row["layers"] * tokens * per_layer

    def backward(self, row: dict) -> float:
        return prefix_cache_bytes(row) + max(head_grad_bytes(row) + self.activations(row), row["trainable"])

    def optimizer(self, row: dict) -> float:
        return row["trainable"] * (1 + self.optimizer_temp)

    def step(self, row: dict) -> float:
        return max(self.backward(row), self.optimizer(row))


def head_grad_bytes(row: dict) -> int:
    """The trained heads' gradients (the trained weights that are not LoRA)."""
    return row["trainable"] - row["lora_bytes"]


def oft7b_row(mode: str) -> dict:
    """OFT-7B at the paper's LIBERO settings: 2 images x 256 patches, proprio, ~40 prompt tokens, 56 action slots +
    `</s>`; bf16 weights; LoRA rank 32 on every linear layer of the LM (fp32, as peft keeps adapters over bf16);
    the action head (bf16) trained, the scale head frozen. Parameter counts from the modules on the meta device."""
    from ript_fast.policies.openvla_oft.config import read_model_config
    from ript_fast.policies.openvla_oft.model import OpenVLAOFT
    from ript_fast.policies.openvla_oft.random_folder import FULL, config_json
    from ript_fast.policies.openvla_oft.scale_head import LaplaceScaleHead

    with torch.device("meta"):
        model = OpenVLAOFT(read_model_config(config_json(FULL), Path("config.json")))
        scale_head = LaplaceScaleHead(model.cfg.llm_dim, model.cfg.action_dim)
    lm = model.vlm.language_model.model
    linears = [m for m in lm.layers.modules() if isinstance(m, torch.nn.Linear)]
    lora = sum(LORA_RANK * (m.in_features + m.out_features) for m in linears)
    head = sum(p.numel() for p in model.action_head.parameters())
    frozen = sum(p.numel() for p in model.parameters()) - head + sum(p.numel() for p in scale_head.parameters())
    trainable = 4 * lora + 2 * head  # bytes of the trained weights (= of their gradients)
    patches = model.vlm.vision_backbone.num_patches
    return {
        "mode": mode,
        "queries": 1,
        "per_pass": 0,
        "weights": 2 * frozen,
        "trainable": trainable,
        "optimizer_state": 2 * trainable,  # AdamW: two moments in each parameter's dtype
        "lora_params": lora,
        "lora_bytes": 4 * lora,
        "layers": len(lm.layers),
        "hidden": lm.config.hidden_size,
        "kv_dim": lm.config.num_key_value_heads * HEAD_DIM,
        "sequence": 1 + model.cfg.num_images * patches + 1 + PROMPT_TOKENS + model.action_pass_len,
        "action_pass": model.action_pass_len,
    }


# ---------------------------------------------------------------------------------------------------- driver
def run_point(folder: Path, point: Point, mode: str, queries: int = 1, per_pass: int = 0) -> dict:
    """One measured row, from a fresh process."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    command = [sys.executable, __file__, "--worker", str(folder), mode, str(queries), str(per_pass)]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    row = {"point": point.name, "mode": mode, **asdict(point), **json.loads(out.stdout.strip().splitlines()[-1])}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def gb(n: float) -> str:
    return f"{n / GB:.3f}"


def error(model: float, measured: float) -> str:
    return f"{100 * (model - measured) / measured:+.0f}%"


def report(rows: list[dict]) -> None:
    model = MemoryModel.fit(rows)
    print("Measured on the CPU (GB; peaks over the resident set before the step):\n")
    print(
        "| point | mode | queries / per pass | tokens: seq / grad | weights | trained + Adam | fwd+bwd peak | model "
        "| optimizer peak | model | step s |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        fb, opt = model.backward(r), model.optimizer(r)
        print(f"| {r['point']} | {r['mode']} | {r['queries']} / {r['per_pass'] or r['queries']} "
              f"| {r['sequence']} / {grad_tokens(r)} | {gb(r['weights'])} "
              f"| {gb(r['trainable'] + r['optimizer_state'])} | {gb(r['backward_peak'])} | {gb(fb)} "
              f"({error(fb, r['backward_peak'])}) | {gb(r['optimizer_peak'])} | {gb(opt)} "
              f"({error(opt, r['optimizer_peak'])}) | {r['seconds']:.1f} |")  # fmt: skip
    print(
        f"\nfitted: activations {model.per_hidden:.1f} x hidden + {model.per_token:.0f} bytes per layer per "
        f"gradient token; optimizer temporaries {model.optimizer_temp:.2f} x trained bytes"
    )
    print("\nOFT-7B, one query per step (GB):\n")
    print("| mode | weights | trained + Adam | fwd+bwd | optimizer | step peak | total peak |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode in MODES:
        r = oft7b_row(mode)
        state, step = r["trainable"] + r["optimizer_state"], model.step(r)
        print(f"| {mode} | {gb(r['weights'])} | {gb(state)} | {gb(model.backward(r))} | {gb(model.optimizer(r))} "
              f"| {gb(step)} | {gb(r['weights'] + state + step)} |")  # fmt: skip
    print(f"\nQueries per re-scoring pass (`score_queries_per_pass`) that fit OFT-7B in {BUDGET_GB} GB:\n")
    for mode in MODES:
        print(f"- {mode}: {queries_in_budget(model, oft7b_row(mode), BUDGET_GB * GB)}")


def queries_in_budget(model: MemoryModel, row: dict, budget: float) -> int:
    """The most queries per pass whose modelled step fits `budget` bytes with the weights and optimizer state."""
    persistent = row["weights"] + row["trainable"] + row["optimizer_state"]
    queries = 0
    while persistent + model.step({**row, "per_pass": queries + 1}) <= budget:
        queries += 1
    return queries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the two smallest sizes only")
    parser.add_argument("--worker", nargs=4, metavar=("FOLDER", "MODE", "QUERIES", "PER_PASS"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the measured rows here")
    parser.add_argument("--report", type=Path, help="measure nothing: report the rows a --json run wrote")
    args = parser.parse_args(argv)
    if args.worker:
        folder, mode, queries, per_pass = args.worker
        print(json.dumps(measure(Path(folder), mode, int(queries), int(per_pass))))
        return 0
    if args.report:
        report(json.loads(args.report.read_text()))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for point in QUICK if args.quick else POINTS:
            folder = Path(tmp) / point.name
            write_folder(folder, point)
            rows += [run_point(folder, point, mode) for mode in MODES]
            if point == PASSES_POINT:
                rows += [run_point(folder, point, mode, PASSES_QUERIES, n) for mode in PASSES_MODES for n in (0, 1)]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    report(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
