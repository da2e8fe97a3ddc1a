"""Run under torchrun by test_distributed.py: one PPO update (2 epochs, 2 minibatches) over this rank's half
of a frozen batch, gradients all-reduced by DDP; rank 0 saves the updated trainable weights.

    ddp_update_worker.py OUT VARIANT [OFT_FOLDER]   (VARIANT: a ratio level, optionally `/<token average>`;
                                                     with OFT_FOLDER the tiny OpenVLA-OFT policy, else QueST)"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as tdist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(
    0, str(Path(__file__).resolve().parent)
)  # ppo_fixtures (not the repo root: keep the installed ript_fast)
from ppo_fixtures import frozen_batch, oft_policy, perturb, sgd, smoke_policy

from ript_fast import ops
from ript_fast.train.distributed import Dist, exit_process
from ript_fast.train.ppo import PPOObjective, PPOSettings, minibatch_schedule, ppo_update

K, ROLLOUTS, MINIBATCH, EPOCHS = 4, 16, 8, 2


def main(out: str, variant: str, oft_folder: str | None) -> None:
    """`variant`: the ratio level, optionally with the token average (`token/rollouts`)."""
    level, _, average = variant.partition("/")
    tdist.init_process_group("gloo")
    rank, world = tdist.get_rank(), tdist.get_world_size()
    policy = oft_policy(Path(oft_folder)) if oft_folder else smoke_policy()
    batch = frozen_batch(policy, ROLLOUTS)
    perturb(policy, 0.05)
    advantages = ops.rloo_advantage(batch.rewards.view(-1, K)).flatten()
    share = torch.arange(rank * ROLLOUTS // world, (rank + 1) * ROLLOUTS // world)
    local_minibatch = MINIBATCH // world
    settings = PPOSettings(EPOCHS, local_minibatch, 0.2, None, level, 1.0, average or "tokens")  # type: ignore[arg-type]
    objective = DistributedDataParallel(PPOObjective(policy, settings))
    optimizer = sgd(policy)
    schedule = minibatch_schedule(len(share), local_minibatch, EPOCHS, torch.Generator().manual_seed(5))
    ppo_update(objective, optimizer, batch.select(share), advantages[share], schedule, settings, Dist(rank, world))
    if rank == 0:
        torch.save({n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}, out)
    tdist.barrier()  # nobody tears the group down while a peer is still in a collective
    tdist.destroy_process_group()
    exit_process(0)  # as `ript-fast` does under torchrun: no interpreter finalization racing gloo's threads


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
