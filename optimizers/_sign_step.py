"""The loop and the update that Lion and Signum share: a sign step from one momentum slot per tensor.

Both keep one zero-initialised slot per tensor and move each weight by -lr times a sign, after
decoupled weight decay (multiplied by lr, as in AdamW); they differ only in which sign they take
and how they update the slot.
"""

from __future__ import annotations

from typing import Iterator

import torch


def tensors_with_slot(optimizer: torch.optim.Optimizer, slot: str) -> Iterator[tuple[dict, torch.Tensor, torch.Tensor]]:
    """(group, parameter, its slot) for every parameter with a gradient; the slot starts at zero."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            state = optimizer.state[p]
            if slot not in state:
                state[slot] = torch.zeros_like(p, memory_format=torch.preserve_format)
            yield group, p, state[slot]


def sign_step_(p: torch.Tensor, sign: torch.Tensor, group: dict) -> None:
    """w <- w (1 - lr lambda) - lr sign, in place."""
    lr, decay = group["lr"], group["weight_decay"]
    if decay:
        p.mul_(1 - lr * decay)
    p.add_(sign, alpha=-lr)
