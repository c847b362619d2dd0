"""Normalized SGD without momentum (`nsgd`) and with momentum (`nsgd_momentum`, eqs. (2)-(3)).

    nsgd:           w_{t+1} = w_t - lr_t * r(g_t) * g_t
    nsgd_momentum:  m_1 = g_1;  m_t = beta m_{t-1} + (1 - beta) g_t;  w_{t+1} = w_t - lr_t * r(m_t) * m_t
with r(d) = 1/||d|| over the normalization group, or ||w||/||d|| with weight-norm scaling
(conventions for zero norms in `_normalization`). Weight decay is L2 added to the gradient:
g_t = grad + weight_decay * w_t. Two bodies (see `_base`).
Reference: docs/algorithms.md, "nsgd" and "nsgd_momentum".
"""

from __future__ import annotations

from typing import Any

import torch

from ._foreach import PendingNorms, add_scaled, buckets, fresh_copies, norms, step_ratios
from ._normalization import (
    NormalizedOptimizer,
    PendingNormalization,
    dense_grad,
    norm_hyperparameters,
    scope,
    step_ratio,
    tensor_norm,
)
from .hyperparams import beta_param, lr_param
from .registry import register_optimizer
from .search_space import COUPLED_DECAY, LR_AROUND_DEFAULT, MOMENTUM, WARMUP, WARMUP_FRACTION
from .sharding import NORM_HOOK, NormSharding, normalization_key

_PAPER = "Cutkosky & Mehta 2020, Momentum Improves Normalized SGD (ICML)"
_WEIGHT_DECAY_HELP = "L2 weight decay added to the gradient before normalization"
NSGD_HYPERPARAMETERS = (
    lr_param(help="step length of each normalized step (multiplied by the schedule)"),
    *norm_hyperparameters(_WEIGHT_DECAY_HELP),
)
NSGD_MOMENTUM_HYPERPARAMETERS = (
    NSGD_HYPERPARAMETERS[0],
    beta_param("beta", help="momentum: m_t = beta m_{t-1} + (1 - beta) g_t"),
    *NSGD_HYPERPARAMETERS[1:],
)


class _NormalizedStep(NormalizedOptimizer):
    """One normalized step along a per-tensor direction (the gradient, or the momentum)."""

    SHARDING = NORM_HOOK  # norms go through sharding.whole_norms: exact on ZeRO pieces
    MOMENTUM = False

    # `step` is NightbenchOptimizer's: the closure, then one of these two bodies. Tensors without a
    # gradient are skipped; a zero direction gives a zero step. All groups at once: the 'global'
    # normalization group spans them.
    def _multi_tensor_step(self, sharding: NormSharding | None, index_cache: dict) -> None:
        _multi_tensor_normalized_sgd(self.param_groups, self.state, momentum=self.MOMENTUM, sharding=sharding,
                                     name=self.NAME, index_cache=index_cache)

    def _single_tensor_step(self, sharding: NormSharding | None) -> None:
        _single_tensor_normalized_sgd(self.param_groups, self.state, momentum=self.MOMENTUM, sharding=sharding,
                                      name=self.NAME)


def _single_tensor_normalized_sgd(param_groups: list[dict], state: Any, *, momentum: bool,
                                  sharding: NormSharding | None, name: str) -> None:
    pending = PendingNormalization(sharding)
    for group in param_groups:
        where, lr, scaled = scope(group), group["lr"], group["weight_norm_scaling"]
        for p in group["params"]:
            if p.grad is None:
                continue
            direction = _decayed_gradient(group, p, name)
            if momentum:
                direction = _momentum(state[p], direction, group["beta"])
            if where is None:  # excluded from normalization: a plain step of size lr
                p.add_(direction, alpha=-lr)
                continue
            direction_norm = tensor_norm(direction)
            weight_norm = tensor_norm(p) if scaled else 0.0
            if where == "layer" and sharding is None:  # step at once while the tensors are still in cache
                _move(p, direction, lr * step_ratio(direction_norm, weight_norm, scaled))
            else:
                pending.add((p, direction, lr), direction_norm, weight_norm, scaled,
                            normalization_key(where, p, sharding))
    for (p, direction, lr), ratio in pending.ratios():
        _move(p, direction, lr * ratio)


def _move(p: torch.Tensor, direction: torch.Tensor, step_size: float) -> None:
    if step_size != 0.0:
        p.add_(direction, alpha=-step_size)


def _decayed_gradient(group: dict, p: torch.Tensor, name: str) -> torch.Tensor:
    """grad + weight_decay * p (a new tensor only when weight decay is on)."""
    grad = dense_grad(p, name)
    wd = group["weight_decay"]
    return grad.add(p, alpha=wd) if wd != 0.0 else grad


def _momentum(state: dict, grad: torch.Tensor, beta: float) -> torch.Tensor:
    """m_t = beta m_{t-1} + (1 - beta) g_t in the tensor's state (m_1 = g_1); returns m_t."""
    if "momentum_buffer" not in state:
        state["momentum_buffer"] = grad.detach().clone(memory_format=torch.preserve_format)
    else:
        state["momentum_buffer"].lerp_(grad, 1.0 - beta)
    return state["momentum_buffer"]


def _multi_tensor_normalized_sgd(param_groups: list[dict], state: Any, *, momentum: bool,
                                 sharding: NormSharding | None, name: str, index_cache: dict) -> None:
    pending = PendingNorms(sharding, index_cache)
    for bucket in buckets(param_groups, state, name):
        group = bucket.group
        directions = _multi_tensor_directions(bucket, momentum)
        if not group["layer_adaptation"]:  # excluded from normalization: a plain step of size lr
            torch._foreach_add_(bucket.params, directions, alpha=-group["lr"])
            continue
        direction_norms = norms(directions, bucket.dtype)
        weight_norms = norms(bucket.params, bucket.dtype) if group["weight_norm_scaling"] else None
        if group["norm"] == "layer" and sharding is None:
            add_scaled(bucket.params, directions, step_ratios(direction_norms, weight_norms, -group["lr"]))
        else:
            pending.add(bucket, directions, direction_norms, weight_norms)
    for bucket, directions, ratios in pending.ratios():
        add_scaled(bucket.params, directions, ratios * -bucket.group["lr"])


def _multi_tensor_directions(bucket, momentum: bool) -> list[torch.Tensor]:
    """The decayed gradients (nsgd), or the updated momentum buffers (nsgd_momentum), in place.

    With weight decay, nsgd holds all decayed gradients at once (one transient copy of the
    bucket); nsgd_momentum folds the decay into the buffers: m = beta m + (1-beta) g + (1-beta) lam w.
    """
    group = bucket.group
    wd = group["weight_decay"]
    if not momentum:
        return torch._foreach_add(bucket.grads, bucket.params, alpha=wd) if wd != 0.0 else bucket.grads
    new = [i for i, s in enumerate(bucket.states) if "momentum_buffer" not in s]
    if new:  # m_1 = g_1 (+ lam w_1)
        grads, params = [bucket.grads[i] for i in new], [bucket.params[i] for i in new]
        for i, buffer in zip(new, torch._foreach_add(grads, params, alpha=wd) if wd != 0.0 else fresh_copies(grads)):
            bucket.states[i]["momentum_buffer"] = buffer
    fresh = set(new)
    old = [i for i in range(len(bucket)) if i not in fresh]
    if old:
        buffers = [bucket.states[i]["momentum_buffer"] for i in old]
        torch._foreach_lerp_(buffers, [bucket.grads[i] for i in old], 1.0 - group["beta"])
        if wd != 0.0:
            torch._foreach_add_(buffers, [bucket.params[i] for i in old], alpha=(1.0 - group["beta"]) * wd)
    return [s["momentum_buffer"] for s in bucket.states]


@register_optimizer(
    "nsgd",
    paper=_PAPER + ", Section 2 (the method it improves on)",
    description="normalized SGD without momentum: w -= lr * g/||g|| (needs large batches)",
    state_slots=0,
    family="paper",
    hyperparameters=NSGD_HYPERPARAMETERS,
    search_space={"lr": LR_AROUND_DEFAULT, "weight_decay": COUPLED_DECAY, WARMUP_FRACTION: WARMUP},
)
class NSGD(_NormalizedStep):
    """Normalized SGD without momentum: w_{t+1} = w_t - lr * g_t / ||g_t|| (no state).

    With 'global' norm and weight decay, the decayed gradients of all tensors are held at once
    during the step (a transient copy); otherwise one tensor at a time (in the multi-tensor body,
    with weight decay, one param group at a time).
    """

    def __init__(self, params: Any, lr: float = 0.01, norm: str = "layer", weight_norm_scaling: bool = False,
                 weight_decay: float = 0.0, *, foreach: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, norm=norm, weight_norm_scaling=weight_norm_scaling,
                                      weight_decay=weight_decay), foreach)


@register_optimizer(
    "nsgd_momentum",
    paper=_PAPER + ", equations (2)-(3), Theorem 1",
    description="normalized SGD with momentum: m = beta m + (1-beta) g; w -= lr * m/||m||",
    state_slots=1,
    family="paper",
    hyperparameters=NSGD_MOMENTUM_HYPERPARAMETERS,
    search_space={"lr": LR_AROUND_DEFAULT, "beta": MOMENTUM, "weight_decay": COUPLED_DECAY, WARMUP_FRACTION: WARMUP},
)
class NSGDMomentum(_NormalizedStep):
    """Normalized SGD with momentum (eqs. (2)-(3)); state: `momentum_buffer` per tensor, m_1 = g_1.

    beta = 0 gives nsgd (with a buffer). Zero momentum gives a zero step.
    """

    MOMENTUM = True

    def __init__(self, params: Any, lr: float = 0.01, beta: float = 0.9, norm: str = "layer",
                 weight_norm_scaling: bool = False, weight_decay: float = 0.0, *,
                 foreach: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, beta=beta, norm=norm, weight_norm_scaling=weight_norm_scaling,
                                      weight_decay=weight_decay), foreach)
