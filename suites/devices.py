"""The one reading of --device, for single-process runs and every rank of a distributed launch."""

from __future__ import annotations

import re

import torch

from .config import ConfigError

ACCEPTED = "auto, cpu, cuda or cuda:N"


def device_name(requested: str | None) -> str:
    """--device as written (auto, cpu, cuda, cuda:N), lower-cased; checked without asking for a GPU, so a
    board that submits to other machines (SLURM) can refuse a misspelt name before anything runs."""
    name = (requested or "auto").strip().lower()
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise ConfigError(f"invalid --device {requested!r}: expected {ACCEPTED}")
    return name


def resolve_device(requested: str | None, local_rank: int | None = None) -> torch.device:
    """The torch device of `--device` (None/'auto': cuda when available, else cpu).

    Under a launcher (local_rank given) every process takes the GPU of its local rank, whatever
    index was asked for; the check that the node has that many GPUs is made here too."""
    name = device_name(requested)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {requested} was requested but no CUDA device is available; use --device cpu")
    if local_rank is not None:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"local rank {local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                              "launch at most that many processes per node")
        return torch.device("cuda", local_rank)
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {requested}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device
