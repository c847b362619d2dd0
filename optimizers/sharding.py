"""When an optimizer sees pieces of tensors instead of whole tensors: the norm-reduction hook.

Data-parallel training with ZeRO stage 1 or 2 gives each process a flat slice of every param
group; the glue in `suites/distributed` re-presents that slice to the optimizer as one *piece*
per model tensor ("layer") that overlaps it. Elementwise updates (SGD, Adam) are unaffected, but
a norm of a piece is not the norm of its layer. An optimizer that normalizes therefore asks
`get_norm_sharding(self)`: None (the default) means it sees whole tensors; otherwise it passes its
per-piece norms through `whole_norms`, which sums squared norms of all pieces of the same layer
(or of the 'global' group) across processes in ONE all-reduce, and gets whole-layer norms back.

Every process must call `whole_norms` the same number of times, in the same order (once per
`step()` is the rule), even when it holds no piece: it takes part in a collective operation.
Nothing here imports DeepSpeed or torch.distributed; the glue supplies `all_reduce_sum`.
`whole_norm_tensors` is the same reduction for the multi-tensor bodies: norms stay device tensors
(the all-reduce sums on the device, nothing is read back to the host).

An optimizer class declares how it behaves on such pieces with a class attribute `SHARDING`:
  ELEMENTWISE  its update of each element depends only on that element (any ZeRO stage is exact);
  NORM_HOOK    it computes norms, always through `whole_norms` (exact at ZeRO 0, 1, 2).
Undeclared optimizers are assumed to need whole tensors.
"""

from __future__ import annotations

import math
from typing import Any, Hashable, Protocol, Sequence

import torch

ELEMENTWISE = "elementwise"
NORM_HOOK = "norm_hook"
GLOBAL = "global"  # the key of the normalization group 'all adapted tensors together'

# torch's own optimizers whose updates are elementwise (exact classes only: a subclass may differ).
_TORCH_ELEMENTWISE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)
_ATTRIBUTE = "_nightbench_norm_sharding"


class NormSharding(Protocol):
    """How the tensors an optimizer holds relate to whole layers spread over processes."""

    num_layers: int  # layers are numbered 0..num_layers-1, identically on every process

    def layer_of(self, piece: torch.Tensor) -> int:
        """The layer a piece (a tensor in the optimizer's param groups) belongs to."""

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The elementwise sum of `values` (float64, same shape everywhere) over all processes.

        The result may come back on another device; the multi-tensor bodies move it to theirs
        (without a host read when it is already there)."""


def set_norm_sharding(optimizer: torch.optim.Optimizer, sharding: NormSharding | None) -> None:
    """Attach (or with None, detach) the sharding an optimizer's norms must be reduced over."""
    setattr(optimizer, _ATTRIBUTE, sharding)


def get_norm_sharding(optimizer: torch.optim.Optimizer) -> NormSharding | None:
    """The attached sharding, or None when the optimizer holds whole tensors (the default)."""
    return getattr(optimizer, _ATTRIBUTE, None)


def shard_support(optimizer: torch.optim.Optimizer) -> str | None:
    """ELEMENTWISE, NORM_HOOK, or None (undeclared: it must see whole tensors)."""
    declared = getattr(type(optimizer), "SHARDING", None)
    if declared in (ELEMENTWISE, NORM_HOOK):
        return declared
    return ELEMENTWISE if type(optimizer) in _TORCH_ELEMENTWISE else None


def normalization_key(scope: str, p: torch.Tensor, sharding: NormSharding | None) -> Hashable:
    """The normalization group of tensor p: GLOBAL, its layer when sharded, else p itself."""
    if scope == "global":
        return GLOBAL
    return sharding.layer_of(p) if sharding is not None else p


def whole_norms(sharding: NormSharding | None,
                entries: Sequence[tuple[Hashable, Sequence[float]]]) -> list[tuple[float, ...]]:
    """For each (key, norms of one piece), the norms of the whole group `key` (column by column).

    Unsharded, a group's norm combines the norms of its entries (math.hypot, overflow-safe).
    Sharded, squared norms are summed per group across processes in a single all-reduce; keys
    must be GLOBAL or a layer index. A group's column is 0 where none of its pieces has a norm.
    """
    width = len(entries[0][1]) if entries else 0
    if sharding is None:
        members: dict[Any, list[Sequence[float]]] = {}
        for key, norms in entries:
            members.setdefault(key, []).append(norms)
        combined = {key: tuple(math.hypot(*(n[c] for n in rows)) for c in range(width))
                    for key, rows in members.items()}
        return [combined[key] for key, _ in entries]
    squares = [[0.0] * max(width, 1) for _ in range(sharding.num_layers + 1)]  # last row: GLOBAL
    for key, norms in entries:
        row = squares[_row(key, sharding.num_layers)]
        for c, n in enumerate(norms):
            row[c] += float(n) ** 2
    totals = sharding.all_reduce_sum(torch.tensor(squares, dtype=torch.float64)).sqrt().tolist()
    return [tuple(totals[_row(key, sharding.num_layers)][:width]) for key, _ in entries]


def _row(key: Hashable, num_layers: int) -> int:
    if key == GLOBAL:
        return num_layers
    if not isinstance(key, int) or not 0 <= key < num_layers:
        raise ValueError(f"a sharded norm key must be {GLOBAL!r} or a layer index in [0, {num_layers}), got {key!r}")
    return key


def layer_indices(sharding: NormSharding, pieces: Sequence[torch.Tensor], device: torch.device,
                  cache: dict) -> torch.Tensor:
    """The layer of each piece as a device vector; made once per set of pieces (kept in `cache`)."""
    key = (device, tuple(id(p) for p in pieces))
    if key not in cache:
        cache[key] = torch.tensor([sharding.layer_of(p) for p in pieces], dtype=torch.long, device=device)
    return cache[key]


def whole_norm_tensors(sharding: NormSharding | None, norms: torch.Tensor, is_global: torch.Tensor,
                       layers: torch.Tensor | None = None) -> torch.Tensor:
    """Per-piece norms (rows of `norms`, one column per kind of norm) -> the norms of whole groups.

    A row belongs to the GLOBAL group where `is_global`, else to its own tensor (unsharded) or to
    its layer `layers[i]` (sharded). Squared norms are summed in float64; sharded, all rows of all
    processes are summed in ONE all-reduce, which every process must join once per step.
    """
    if sharding is None:
        squares = norms.double().square()
        total = torch.where(is_global.unsqueeze(1), squares, torch.zeros_like(squares)).sum(0).sqrt()
        return torch.where(is_global.unsqueeze(1), total.to(norms.dtype).expand_as(norms), norms)
    rows = torch.where(is_global, torch.full_like(layers, sharding.num_layers), layers)
    squares = torch.zeros(sharding.num_layers + 1, norms.shape[1], dtype=torch.float64, device=norms.device)
    squares.index_add_(0, rows, norms.double().square())
    totals = sharding.all_reduce_sum(squares).to(norms.device).sqrt()
    return totals.index_select(0, rows).to(norms.dtype)
