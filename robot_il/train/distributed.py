"""Single process by default; data-parallel (torch DDP) when started by ``torchrun``.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``. Each process then trains on
its own random batches (its seed is offset by its rank) and DDP averages gradients; only rank
0 logs, evaluates and writes checkpoints, holding every process's random state (gathered at
each save), so that each process resumes its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from robot_il.policies.base import torch_device


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a (possibly one-process) training job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_gather(self, value: Any) -> list[Any]:
        """``value`` (any picklable object) of every process, by rank; every process must
        call it at the same point. ``[value]`` in one process."""
        if not self.enabled:
            return [value]
        values: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(values, value)
        return values

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def init_distributed(device: str) -> tuple[Distributed, torch.device]:
    """Join the process group if launched by torchrun; the device this process trains on.

    ``device`` "cuda" picks this process's ``LOCAL_RANK`` GPU (NCCL); CPU training uses gloo.
    """
    checked = torch_device(device)  # a bad name fails here, before a process group forms
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed(), checked
    dist = Distributed(
        rank=int(os.environ["RANK"]),
        world_size=world_size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if device.startswith("cuda"):
        torch.cuda.set_device(dist.local_rank)
        torch.distributed.init_process_group("nccl")
        return dist, torch.device("cuda", dist.local_rank)
    torch.distributed.init_process_group("gloo")
    return dist, checked
