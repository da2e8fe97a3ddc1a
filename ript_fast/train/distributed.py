"""Multi-process training through torch.distributed (launched by `torchrun`), and its one-process default.

Each rank owns its own batched engine and samples its own contexts; ranks meet only where Algorithm 1
needs them to: the per-iteration batch size (every rank contributes the same number of informative
rollouts), the gradient all-reduce (DDP), and the metrics. Rank 0 writes the run folder.
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import torch
import torch.distributed as tdist

# SFT on rank 0 (when a run makes its own stage-2 policy) can take a while; the other ranks wait for it.
INIT_TIMEOUT = datetime.timedelta(hours=4)


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; with world == 1 every collective is a no-op."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Element-wise sum over ranks of a dict of numbers (same keys on every rank)."""
        if not self.enabled:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self._device())
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return dict(zip(keys, t.tolist(), strict=True))

    def min(self, value: int) -> int:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=self._device())
        tdist.all_reduce(t, op=tdist.ReduceOp.MIN)
        return int(t.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def _device(self) -> torch.device:
        if tdist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def rank_share(count: int, dist: Dist) -> np.ndarray:
    """The items of `count` this rank takes when they are dealt round-robin: rank r holds r, r + world, ..."""
    return np.arange(dist.rank, count, dist.world)


def init_distributed(device: str) -> Dist:
    """Joins the torchrun job described by the environment (RANK, WORLD_SIZE, ...), or runs alone.

    The backend is NCCL for CUDA devices and gloo on the CPU; with CUDA each rank takes GPU LOCAL_RANK.
    """
    if not in_torchrun_job():
        return Dist()
    if not tdist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        tdist.init_process_group(backend, timeout=INIT_TIMEOUT)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
    return Dist(tdist.get_rank(), tdist.get_world_size(), local_rank)


def in_torchrun_job() -> bool:
    """Whether this process is one rank of a job of several (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank_device(device: str, dist: Dist) -> str:
    """The device string this rank trains on (`cuda` becomes `cuda:<local rank>`)."""
    return f"cuda:{dist.local_rank}" if device == "cuda" and dist.enabled else device


def shutdown(dist: Dist) -> None:
    """Leaves the process group (after a successful run, call `dist.barrier()` first so that no rank tears
    the group down while a peer is still in a collective; after an error torchrun stops the other ranks)."""
    if dist.enabled and tdist.is_initialized():
        tdist.destroy_process_group()


def exit_process(code: int) -> NoReturn:
    """Ends a rank's process with `code`, skipping the interpreter's finalization; call it last, once every
    file the rank writes is closed (stdout and stderr are flushed here).

    Why: once a DistributedDataParallel module has been built, torch keeps gloo's worker threads alive after
    `destroy_process_group` (the module leaves a reference to the group behind, even once deleted). Such a
    thread may still be releasing the last finished collective, whose tensors belong to Python objects, when
    the interpreter finalizes; it then needs the GIL, Python ends the thread, and the unwind aborts the process
    (`terminate called without an active exception`, SIGABRT), so that torchrun reports a finished job as
    failed. Seen in 1 of ~60 two-rank runs on a loaded 2-core machine (torch 2.13; core dump:
    `ProcessGroupGloo::runLoop` -> `~AsyncBarrierWork` -> `~AsyncAllreduceWork` ->
    `TensorImpl::decref_pyobject` -> `take_gil` -> `pthread_exit`).
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def wrap_ddp(module: torch.nn.Module, dist: Dist, device: torch.device) -> torch.nn.Module:
    """`module` in DistributedDataParallel when several ranks train (its gradients all-reduced in the backward),
    else itself."""
    if not dist.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)
