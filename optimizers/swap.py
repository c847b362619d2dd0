"""Evaluating at the reported iterate for optimizers that train elsewhere (NIGT trains at x_t).

Such optimizers follow the schedule-free convention: `optimizer.eval()` swaps the model's
parameters to the reported point w_t, `optimizer.train()` swaps them back. Both are idempotent.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def has_eval_swap(optimizer: torch.optim.Optimizer) -> bool:
    return callable(getattr(optimizer, "eval", None)) and callable(getattr(optimizer, "train", None))


@contextlib.contextmanager
def evaluation_weights(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Inside the block the model holds the weights to evaluate and checkpoint; a no-op for others."""
    if not has_eval_swap(optimizer):
        yield
        return
    optimizer.eval()
    try:
        yield
    finally:
        optimizer.train()
