"""Pieces shared by the multi-tensor ("foreach") bodies of the optimizers written here.

A multi-tensor body works on *buckets*: the tensors of one param group that share a device and
a dtype, updated with `torch._foreach_*` ops (a handful of kernels per bucket instead of a few per
tensor). Everything a step computes from the data (norms, step factors, Algorithm 2's scalars) stays
a device tensor: nothing is read back to the host, so on a GPU a step never waits for the device,
and `torch.compile(step, fullgraph=True)` sees no data-dependent Python branch.

Per-tensor scalars are computed as one vector per bucket and step (`stack` of the norms, then
elementwise math, with `nan_to_num`/`torch.where` for the zero and non-finite conventions) and
stored back into each tensor's state as 0-dim views of that vector (`unbind`), so state dicts keep
torch's per-parameter layout.
Either body reads the other's state: the single-tensor body stores Python floats, this one 0-dim
tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch

from .sharding import layer_indices, whole_norm_tensors

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def use_multi_tensor(foreach: bool | None, param_groups: Iterable[dict], cpu_default: bool) -> bool:
    """Resolve a `foreach` argument: True/False as given; None picks by where the tensors live.

    None means the multi-tensor body under torch.compile and on any accelerator (kernel launches and
    host syncs dominate there), and `cpu_default` on CPU, where the benchmark decides per optimizer.
    """
    if foreach is not None:
        return foreach
    if torch.compiler.is_compiling():
        return True
    devices = {p.device.type for group in param_groups for p in group["params"]}
    return cpu_default if devices <= {"cpu"} else True


def scalar_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of per-tensor scalars and norms: float64 for float64 tensors, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


@dataclass
class Bucket:
    """The tensors of one param group on one device with one dtype that have a gradient."""

    group: dict
    params: list[torch.Tensor]
    grads: list[torch.Tensor]
    states: list[dict]

    @property
    def device(self) -> torch.device:
        return self.params[0].device

    @property
    def dtype(self) -> torch.dtype:
        return scalar_dtype(self.params[0].dtype)

    def __len__(self) -> int:
        return len(self.params)


def buckets(param_groups: Sequence[dict], state: Any, optimizer_name: str,
            grads: dict | None = None) -> list[Bucket]:
    """Every param group's tensors with a gradient (or with an entry in `grads`), by device and dtype.

    Sparse gradients are refused, as in the single-tensor bodies.
    """
    out = []
    for group in param_groups:
        params = [p for p in group["params"] if (p in grads if grads is not None else p.grad is not None)]
        if not params:
            continue
        group_grads = [grads[p] if grads is not None else p.grad for p in params]
        if any(g.is_sparse for g in group_grads):
            raise RuntimeError(f"{optimizer_name} does not support sparse gradients")
        by_kind = torch.optim.Optimizer._group_tensors_by_device_and_dtype([params, group_grads], with_indices=True)
        for (bucket_params, bucket_grads), _ in by_kind.values():
            out.append(Bucket(group, list(bucket_params), list(bucket_grads), [state[p] for p in bucket_params]))
    return out


def norms(tensors: Sequence[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """The 2-norm of each tensor, as one vector (half precision accumulates in float32)."""
    accumulate = torch.float32 if tensors[0].dtype in _LOW_PRECISION else None
    return torch.stack(torch._foreach_norm(tensors, 2, dtype=accumulate)).to(dtype)


def step_ratios(direction_norms: torch.Tensor, weight_norms: torch.Tensor | None = None,
                scale: float = 1.0) -> torch.Tensor:
    """scale * r with r = 1/||d||, or ||w||/||d|| where `weight_norms` are given (||w|| = 0 counts as 1).

    The conventions of `_normalization.step_ratio`, elementwise and without host reads: where
    ||d|| is 0 or not finite the factor is 0 (1/0 and x/inf turn into 0 below). `scale` (the lr,
    often) is folded in before that, so a zero lr gives 0 too.
    """
    factors = direction_norms.reciprocal() * scale
    if weight_norms is not None:
        factors = factors * (weight_norms + (weight_norms == 0))
    return factors.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def flags(value: bool, n: int, device: torch.device) -> torch.Tensor:
    """A boolean vector of n copies of a Python flag, made on the device (no host-to-device copy)."""
    return torch.full((n,), value, dtype=torch.bool, device=device)


def fresh_copies(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """New tensors with the same values (gradient copies that the step may then change in place).

    One foreach op: multiplying by 1 is exact for every float, NaN and -0 included.
    """
    return list(torch._foreach_mul(list(tensors), 1.0)) if tensors else []


def stacked_state(bucket: Bucket, key: str, default: float) -> torch.Tensor:
    """The per-tensor scalar `key` of a bucket's states as one vector (`default` where absent).

    0-dim tensors (this body's) are stacked on the device; Python floats (the single-tensor body's,
    e.g. from its checkpoint) are copied over once, after which the state holds tensors.
    """
    values = [s.get(key, default) for s in bucket.states]
    if all(isinstance(v, torch.Tensor) for v in values):
        return torch.stack(values).to(device=bucket.device, dtype=bucket.dtype)
    return torch.tensor([float(v) for v in values], dtype=bucket.dtype, device=bucket.device)


def state_scalars(bucket: Bucket, key: str, default: float) -> list[torch.Tensor]:
    """The per-tensor scalar `key` of a bucket's states as a list of 0-dim tensors, for foreach ops.

    This body's tensors are used as they are (no op at all); missing entries (`default`) and the
    single-tensor body's floats are made into tensors once and written back.
    """
    values = [s.get(key) for s in bucket.states]
    if all(isinstance(v, torch.Tensor) and v.device == bucket.device and v.dtype == bucket.dtype for v in values):
        return values
    if all(v is None for v in values):
        vector = torch.full((len(bucket),), default, dtype=bucket.dtype, device=bucket.device)
    else:
        vector = stacked_state(bucket, key, default)
    store_state(bucket, key, vector)
    return [s[key] for s in bucket.states]


def store_shared(bucket: Bucket, key: str, value: float) -> None:
    """Store one 0-dim tensor holding `value` as every tensor's state `key` (one storage for all)."""
    shared = torch.full((), value, dtype=bucket.dtype, device=bucket.device)
    for state in bucket.states:
        state[key] = shared


def store_state(bucket: Bucket, key: str, vector: torch.Tensor | Sequence[torch.Tensor]) -> None:
    """Store each element of `vector` (or of a list of 0-dim tensors) as its tensor's state `key`.

    A vector's elements are stored as 0-dim views of it: one storage per step, no copies.
    """
    values = vector.to(bucket.dtype).unbind(0) if isinstance(vector, torch.Tensor) else vector
    for state, value in zip(bucket.states, values):
        state[key] = value


def split_by_bucket(vector: torch.Tensor, parts: Sequence[Bucket]) -> list[torch.Tensor]:
    """A vector over all buckets' tensors, cut back into one piece per bucket (on its device)."""
    pieces = vector.split([len(b) for b in parts])
    return [piece.to(b.device) for piece, b in zip(pieces, parts)]


def joined(vectors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-bucket vectors laid end to end on the first one's device, for the elementwise math."""
    device = vectors[0].device
    return torch.cat([v.to(device) for v in vectors])


class PendingNorms:
    """Buckets whose step waits for the norms of whole groups: 'global', or any group when sharded.

    The multi-tensor counterpart of `_normalization.PendingNormalization`: `add` records a bucket
    with its per-tensor direction and weight norms; `ratios` joins all of them, combines them per
    group (across processes in one all-reduce when sharded; `sharding.whole_norm_tensors`) and
    gives each bucket its vector of step ratios r. Sharded, `ratios` must run on every process once
    per step, even with nothing added.
    """

    def __init__(self, sharding: Any, cache: dict) -> None:
        self.sharding, self.cache = sharding, cache
        self.entries: list[tuple[Bucket, Any, torch.Tensor, torch.Tensor]] = []

    def add(self, bucket: Bucket, payload: Any, direction_norms: torch.Tensor,
            weight_norms: torch.Tensor | None) -> None:
        """Record a bucket; `weight_norms` None where its group does not scale by ||w||."""
        if weight_norms is None:
            weight_norms = torch.zeros_like(direction_norms)
        self.entries.append((bucket, payload, direction_norms, weight_norms))

    def ratios(self) -> list[tuple[Bucket, Any, torch.Tensor]]:
        if not self.entries:
            if self.sharding is not None:  # still take part in the all-reduce
                empty = torch.zeros(0, 2, dtype=torch.float64)
                whole_norm_tensors(self.sharding, empty, torch.zeros(0, dtype=torch.bool),
                                   torch.zeros(0, dtype=torch.long))
            return []
        parts = [bucket for bucket, _, _, _ in self.entries]
        is_global = joined([flags(b.group["norm"] == "global", len(b), b.device) for b in parts])
        scaled = joined([flags(b.group["weight_norm_scaling"], len(b), b.device) for b in parts])
        columns = torch.stack([joined([d for _, _, d, _ in self.entries]),
                               joined([w for _, _, _, w in self.entries])], dim=1)
        layers = None
        if self.sharding is not None:
            layers = joined([layer_indices(self.sharding, b.params, b.device, self.cache) for b in parts])
        whole = whole_norm_tensors(self.sharding, columns, is_global, layers)
        weights = torch.where(scaled, whole[:, 1], torch.zeros_like(whole[:, 1]))  # 0 counts as "not scaled"
        ratio = step_ratios(whole[:, 0], weights)
        return [(bucket, payload, r) for (bucket, payload, _, _), r in zip(self.entries, split_by_bucket(ratio, parts))]


def add_scaled(targets: Sequence[torch.Tensor], tensors: Sequence[torch.Tensor], factors: torch.Tensor) -> None:
    """targets[i] += factors[i] * tensors[i], in place, with a per-tensor factor from a device vector."""
    torch._foreach_addcmul_(targets, tensors, factors.unbind(0))
