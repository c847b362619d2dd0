"""Whether tensors are all finite, decided on the device: one flag instead of one host read per tensor.

A training loop checks its parameters (and loss) every step; `bool(torch.isfinite(p).all())` per
tensor is a host synchronization per tensor on a GPU. `finite_flag` computes one 0-dim bool tensor
from the tensors' norms (a NaN or inf element makes its tensor's norm NaN or inf), so the caller
reads one value when it chooses to, e.g. `bool(finite_flag(model.parameters()) & loss.isfinite())`
once per step or per log interval. A finite tensor whose norm overflows (beyond ~3e38 in float32)
counts as not finite: for training purposes it has diverged.
"""

from __future__ import annotations

from typing import Iterable

import torch

_LOW_PRECISION = (torch.float16, torch.bfloat16)


@torch.no_grad()
def finite_flag(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """A 0-dim bool tensor: True when every element of every tensor is finite (no host read).

    Tensors on several devices are checked per device and combined on the first one's device.
    """
    by_device: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        by_device.setdefault((t.device, t.dtype), []).append(t)
    if not by_device:
        return torch.tensor(True)
    flags = []
    for (_, dtype), group in by_device.items():
        accumulate = torch.float32 if dtype in _LOW_PRECISION else None
        flags.append(torch.stack(torch._foreach_norm(group, 2, dtype=accumulate)).isfinite().all())
    device = flags[0].device
    return torch.stack([f.to(device) for f in flags]).all()


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """`finite_flag` read back: one host read for all the tensors."""
    return bool(finite_flag(tensors))
