"""Bytes held by an optimizer's state: exact on any device, each tensor storage counted once.

Only tensors inside `optimizer.state` count (also inside nested lists, tuples and dicts), since
that is what torch's `state_dict()` saves and what stays allocated between steps. Python numbers
are not counted in bytes; `state_tensor_summary` reports how many there are. Transient buffers
that an optimizer allocates inside `step()` are not state: measure them as peak step memory.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch


def _tensors_and_scalars(value: Any) -> Iterator[Any]:
    """Every tensor or Python number inside a (possibly nested) state value."""
    if isinstance(value, torch.Tensor) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors_and_scalars(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors_and_scalars(v)


def _storage_key(tensor: torch.Tensor) -> tuple:
    storage = tensor.untyped_storage()
    return (tensor.device.type, tensor.device.index, storage.data_ptr(), storage.nbytes())


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of tensor storage held in `optimizer.state`; a storage shared by several entries counts once."""
    seen: dict[tuple, int] = {}
    for per_param in optimizer.state.values():
        for item in _tensors_and_scalars(per_param):
            if isinstance(item, torch.Tensor):
                key = _storage_key(item)
                seen[key] = key[3]
    return sum(seen.values())


def parameter_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the parameters the optimizer updates (each counted once), to express state in copies."""
    seen = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            seen[id(p)] = p.numel() * p.element_size()
    return sum(seen.values())


def state_tensor_summary(optimizer: torch.optim.Optimizer) -> dict[str, dict[str, Any]]:
    """Per state key: how many tensors, their elements and bytes, and how many Python scalars.

    {'exp_avg': {'tensors': 48, 'scalar_tensors': 0, 'python_scalars': 0, 'numel': 25165824,
    'bytes': 100663296, 'dtypes': ['torch.float32']}, ...}. Bytes here count each storage once per
    key; `state_bytes` dedupes across keys too.
    """
    summary: dict[str, dict[str, Any]] = {}
    seen: set[tuple] = set()
    for per_param in optimizer.state.values():
        for key, value in per_param.items():
            row = summary.setdefault(str(key), {"tensors": 0, "scalar_tensors": 0, "python_scalars": 0,
                                                "numel": 0, "bytes": 0, "dtypes": []})
            for item in _tensors_and_scalars(value):
                if not isinstance(item, torch.Tensor):
                    row["python_scalars"] += 1
                    continue
                row["scalar_tensors" if item.dim() == 0 else "tensors"] += 1
                row["numel"] += item.numel()
                if str(item.dtype) not in row["dtypes"]:
                    row["dtypes"].append(str(item.dtype))
                storage = (str(key),) + _storage_key(item)
                if storage not in seen:
                    seen.add(storage)
                    row["bytes"] += storage[4]
    return summary
