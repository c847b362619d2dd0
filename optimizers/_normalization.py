"""Shared pieces of the normalized optimizers (nsgd, nsgd_momentum, nigt, nigt_adaptive).

A *normalization group* is the set of tensors whose joint 2-norm divides the step:
  'layer'   each tensor is its own group (the paper's experiments, Section 5);
  'global'  all adapted tensors of the optimizer together, across param groups (the theory).
Param groups with `layer_adaptation=False` (biases and norm layers under the policy) are not
normalized at all: their step factor is 1, so they take a plain step of size lr.

The lr-free step factor r of a tensor is
    r = 1 / ||d||            (d: the direction, the gradient or the momentum)
    r = ||w|| / ||d||        with weight-norm scaling (LARS-like, the paper's Section 5)
with two conventions that keep parameters finite:
    ||d|| = 0  ->  r = 0     (no step: the direction is zero anyway)
    ||w|| = 0  ->  ||w|| is taken as 1, so r = 1 / ||d|| (a freshly zeroed tensor still moves).
A non-finite ||d|| (a NaN/inf gradient) also gives r = 0; the loss is what reports the divergence.
(The multi-tensor bodies compute the same r, but multiply rather than skip: there a non-finite
gradient makes the parameters non-finite too, as in torch's optimizers.)
In the single-tensor bodies norms are Python floats (one host read per tensor); the multi-tensor
bodies keep them on the device (`_foreach`). When the optimizer holds ZeRO pieces rather than
whole tensors (`sharding.py`), norms are summed per layer across processes.
Reference: docs/algorithms.md, "Normalization groups and the step factor".
"""

from __future__ import annotations

import math
from typing import Any, Hashable, Iterable

import torch

from ._base import NightbenchOptimizer
from .hyperparams import Hyperparameter, weight_decay_param
from .sharding import GLOBAL, NormSharding, whole_norms

NORM_CHOICES = ("layer", "global")
_LOW_PRECISION = (torch.float16, torch.bfloat16)
_BLAS_DTYPES = (torch.float32, torch.float64)


def norm_hyperparameters(weight_decay_help: str) -> list[Hyperparameter]:
    """The hyperparameters every normalized optimizer shares (after `lr` and its own)."""
    return [
        Hyperparameter("norm", kind=str, choices=NORM_CHOICES,
                       help="normalization group: 'layer' = each tensor (the paper's experiments), "
                            "'global' = all adapted tensors together (the theory)"),
        Hyperparameter("weight_norm_scaling", kind=bool,
                       help="step factor lr*||w||/||m|| as in the paper's Section 5 / LARS "
                            "(where ||w|| = 0 the factor falls back to lr/||m||)"),
        weight_decay_param(help=weight_decay_help),
    ]


def dense_grad(p: torch.Tensor, optimizer_name: str) -> torch.Tensor:
    """p.grad, refusing sparse gradients (a normalized step needs the dense norm)."""
    if p.grad.is_sparse:
        raise RuntimeError(f"{optimizer_name} does not support sparse gradients")
    return p.grad


def tensor_norm(t: torch.Tensor) -> float:
    """The 2-norm of a tensor as a Python float (half precision is accumulated in float32).

    On CPU a contiguous float tensor takes sqrt(t . t): the BLAS dot product reads it faster than
    vector_norm's reduction does, with the same float32/float64 accumulation.
    """
    if t.device.type == "cpu" and t.dtype in _BLAS_DTYPES and t.is_contiguous():
        flat = t.view(-1)
        return math.sqrt(float(torch.dot(flat, flat)))
    dtype = torch.float32 if t.dtype in _LOW_PRECISION else None
    return float(torch.linalg.vector_norm(t, dtype=dtype))


def combined_norm(norms: Iterable[float]) -> float:
    """The 2-norm of several tensors together, from their own norms (overflow-safe)."""
    return math.hypot(*norms)


def step_ratio(direction_norm: float, weight_norm: float, weight_norm_scaling: bool) -> float:
    """The lr-free step factor r (see the module docstring); 0 where the direction is zero."""
    if not direction_norm > 0.0 or not math.isfinite(direction_norm):
        return 0.0
    scale = weight_norm if (weight_norm_scaling and weight_norm > 0.0) else 1.0
    return scale / direction_norm


def scope(group: dict) -> str | None:
    """'layer' or 'global' for adapted groups; None where the group is not normalized."""
    return group["norm"] if group["layer_adaptation"] else None


class PendingNormalization:
    """Tensors whose step waits for norms: the 'global' group, or any group when sharded.

    `add` records a tensor with its normalization key (`sharding.normalization_key`: GLOBAL, a
    layer index when the optimizer holds ZeRO pieces, else the tensor) and its own ||d|| and ||w||;
    `ratios` combines the norms per key (across processes when sharded, in one all-reduce) and
    yields r. With weight-norm scaling, ||w|| is the joint norm of the tensors whose group asked
    for the scaling (normally all of them: mixing the setting across groups is allowed, not useful).
    Sharded, `ratios` must be called once per step on every process, even with nothing added.
    """

    def __init__(self, sharding: NormSharding | None = None) -> None:
        self.sharding = sharding
        self.entries: list[tuple[Any, Hashable, float, float, bool]] = []  # (payload, key, ||d_i||, ||w_i||, scaled)

    def add(self, payload: Any, direction_norm: float, weight_norm: float, weight_norm_scaling: bool,
            key: Hashable = GLOBAL) -> None:
        self.entries.append((payload, key, direction_norm, weight_norm, weight_norm_scaling))

    def ratios(self) -> list[tuple[Any, float]]:
        """(payload, r) for every recorded tensor, r from the norms of its whole group."""
        norms = whole_norms(self.sharding, [(key, (d, w if scaled else 0.0)) for _, key, d, w, scaled in self.entries])
        return [(payload, step_ratio(d, w, scaled)) for (payload, _, _, _, scaled), (d, w) in zip(self.entries, norms)]


class NormalizedOptimizer(NightbenchOptimizer):
    """Base of the normalized optimizers (nsgd, nsgd_momentum, nigt, nigt_adaptive)."""
