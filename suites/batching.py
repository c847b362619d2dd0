"""Splitting a global batch into halves and micro-batches, and moving batches to a device.

A batch is a tensor, a tuple/list of tensors, or a dict of tensors, split along dim 0. Entries that
are not tensors (metadata) are passed to every part unchanged.
"""

from __future__ import annotations

from typing import Any

import torch


def batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    values = batch.values() if isinstance(batch, dict) else batch
    for value in values:
        if isinstance(value, torch.Tensor):
            return value.shape[0]
    raise TypeError(f"cannot find a tensor in batch of type {type(batch).__name__} to take its size")


def _slice(batch: Any, start: int, stop: int) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if isinstance(batch, dict):
        return {k: _slice(v, start, stop) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_slice(v, start, stop) if isinstance(v, torch.Tensor) else v for v in batch)
    raise TypeError(f"cannot split a batch of type {type(batch).__name__}: use a tensor, tuple, list or dict")


def split_batch(batch: Any, parts: int) -> list[Any]:
    """`parts` contiguous, nearly equal, disjoint pieces (never an empty one)."""
    size = batch_size(batch)
    if parts < 1 or parts > size:
        raise ValueError(f"cannot split a batch of {size} examples into {parts} parts")
    bounds = [round(i * size / parts) for i in range(parts + 1)]
    return [_slice(batch, bounds[i], bounds[i + 1]) for i in range(parts)]


def micro_batches(batch: Any, micro_batch_size: int) -> list[Any]:
    """Pieces of at most `micro_batch_size` examples (gradient accumulation)."""
    size = batch_size(batch)
    parts = max(1, -(-size // max(1, micro_batch_size)))
    return split_batch(batch, parts)


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
