"""torchrun/DDP plumbing: one process per GPU (or CPU process with gloo), rank 0 evaluates and saves.

Every rank waits for the others at each collective for at most ``--dist-timeout`` minutes (set explicitly:
NCCL's own default of 10 minutes is shorter than a long validation on rank 0), and what rank 0 does alone
(validation, checkpoints) runs through :func:`on_main`, so an error there ends every rank with rank 0's
message instead of leaving the others waiting at the next collective until the timeout."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import DetftError

T = TypeVar("T")

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this machine: they share its RAM and disk

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device: torch.device, timeout_minutes: float = 60.0) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistInfo(rank, world, local, local_world)


def on_main(info: DistInfo, work: Callable[[], T]) -> T | None:
    """``work()`` on rank 0 alone (None elsewhere). When it raises, every rank raises: rank 0 its own error, the
    others a DetftError carrying rank 0's message, so the job ends at once with the reason on every rank."""
    result, error = None, None
    if info.main:
        try:
            result = work()
        except BaseException as e:  # KeyboardInterrupt too: the other ranks must not wait for a dead rank 0
            error = e
    if info.enabled:
        message = [f"{type(error).__name__}: {error}" if error is not None else None]
        dist.broadcast_object_list(message, 0)
        if message[0] is not None and not info.main:
            raise DetftError(f"rank 0 failed, so rank {info.rank} stops too: {message[0]}")
    if error is not None:
        raise error
    return result


def mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= info.world_size
    return value


def broadcast_int(value: int, info: DistInfo) -> int:
    """Rank 0's number (an early stop, the epoch count a time budget allows) for every rank."""
    if not info.enabled:
        return value
    t = torch.tensor([int(value)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(t, 0)
    return int(t.item())


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
