"""Joining the data-parallel process group that a launcher (deepspeed, torchrun) set up, or one alone.

The launchers export RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them (a
plain `nightbench run --deepspeed`) this process forms a group of one. Backend: NCCL on CUDA,
gloo on CPU. Every process uses the device of its LOCAL_RANK.
"""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..config import ConfigError
from ..devices import resolve_device

_LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Collectives wait this long for a slow peer (a long evaluation on rank 0, a checkpoint on a slow disk).
TIMEOUT = datetime.timedelta(minutes=int(os.environ.get("NIGHTBENCH_DIST_TIMEOUT_MIN", "30")))


@dataclass(frozen=True)
class ProcessGroup:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_process_group(requested_device: str | None) -> ProcessGroup:
    """Initialize torch.distributed through DeepSpeed (once per process) and describe this process."""
    if "RANK" not in os.environ:  # no launcher: a group of one
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(_free_port()))
    missing = [v for v in _LAUNCHER_VARIABLES if v not in os.environ]
    if missing:
        raise ConfigError(f"incomplete launcher environment: RANK is set but {', '.join(missing)} not; "
                          "start with `deepspeed` or `torchrun`, or with none of them set for one process")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if device.type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # read by DeepSpeed on first use
    if not dist.is_initialized():
        import deepspeed

        if device.type == "cpu":
            _skip_shared_memory_kernel()
        else:
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, timeout=TIMEOUT, verbose=False)
    return ProcessGroup(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                        device=device, backend=dist.get_backend())


def _skip_shared_memory_kernel() -> None:
    """Keep DeepSpeed from compiling its CPU shared-memory all-reduce kernel on first use.

    The kernel only speeds up CPU inference collectives, and its first build takes about two
    minutes on a small machine; gloo carries training's collectives.
    """
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def broadcast_from_main(value: Any) -> Any:
    """Rank 0's value of a picklable object, on every rank (a decision only rank 0 can make)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum of a tensor over all ranks, on the communication device (no host read)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    total = value.clone()
    dist.all_reduce(total)
    return total


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
