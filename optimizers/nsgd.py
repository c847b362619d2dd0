"""Normalized SGD without momentum (`nsgd`) and with momentum (`nsgd_momentum`, eqs. (2)-(3)).

    nsgd:           w_{t+1} = w_t - lr_t * r(g_t) * g_t
    nsgd_momentum:  m_1 = g_1;  m_t = beta m_{t-1} + (1 - beta) g_t;  w_{t+1} = w_t - lr_t * r(m_t) * m_t
with r(d) = 1/||d|| over the normalization group, or ||w||/||d|| with weight-norm scaling
(conventions for zero norms in `_normalization`). Weight decay is L2 added to the gradient:
g_t = grad + weight_decay * w_t.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ._normalization import (
    NormalizedOptimizer,
    PendingNormalization,
    dense_grad,
    norm_hyperparameters,
    run_closure,
    scope,
    step_ratio,
    tensor_norm,
)
from .hyperparams import beta_param, lr_param
from .registry import register_optimizer
from .sharding import NORM_HOOK, get_norm_sharding, normalization_key

_PAPER = "Cutkosky & Mehta 2020, Momentum Improves Normalized SGD (ICML)"
_WEIGHT_DECAY_HELP = "L2 weight decay added to the gradient before normalization"
NSGD_HYPERPARAMETERS = (
    lr_param(0.01, "step length of each normalized step (multiplied by the schedule)"),
    *norm_hyperparameters(_WEIGHT_DECAY_HELP),
)
NSGD_MOMENTUM_HYPERPARAMETERS = (
    NSGD_HYPERPARAMETERS[0],
    beta_param("beta", 0.9, "momentum: m_t = beta m_{t-1} + (1 - beta) g_t"),
    *NSGD_HYPERPARAMETERS[1:],
)


class _NormalizedStep(NormalizedOptimizer):
    """One normalized step along a per-tensor direction (the gradient, or the momentum)."""

    SHARDING = NORM_HOOK  # norms go through sharding.whole_norms: exact on ZeRO pieces

    def _direction(self, group: dict, p: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step; returns the closure's loss (the closure runs with gradients enabled).

        Tensors without a gradient are skipped. A zero direction gives a zero step.
        """
        loss = run_closure(closure)
        sharding = get_norm_sharding(self)
        pending = PendingNormalization(sharding)
        for group in self.param_groups:
            where, lr, scaled = scope(group), group["lr"], group["weight_norm_scaling"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                direction = self._direction(group, p)
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
        return loss


def _move(p: torch.Tensor, direction: torch.Tensor, step_size: float) -> None:
    if step_size != 0.0:
        p.add_(direction, alpha=-step_size)


def _decayed_gradient(group: dict, p: torch.Tensor, name: str) -> torch.Tensor:
    """grad + weight_decay * p (a new tensor only when weight decay is on)."""
    grad = dense_grad(p, name)
    wd = group["weight_decay"]
    return grad.add(p, alpha=wd) if wd != 0.0 else grad


@register_optimizer(
    "nsgd",
    paper=_PAPER + ", Section 2 (the method it improves on)",
    description="normalized SGD without momentum: w -= lr * g/||g|| (needs large batches)",
    state_slots=0,
    hyperparameters=list(NSGD_HYPERPARAMETERS),
)
class NSGD(_NormalizedStep):
    """Normalized SGD without momentum: w_{t+1} = w_t - lr * g_t / ||g_t|| (no state).

    With 'global' norm and weight decay, the decayed gradients of all tensors are held at once
    during the step (a transient copy); otherwise one tensor at a time.
    """

    NAME = "nsgd"
    HYPERPARAMETERS = NSGD_HYPERPARAMETERS

    def __init__(self, params: Any, lr: float = 0.01, norm: str = "layer",
                 weight_norm_scaling: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, norm=norm, weight_norm_scaling=weight_norm_scaling,
                                      weight_decay=weight_decay))

    def _direction(self, group: dict, p: torch.Tensor) -> torch.Tensor:
        return _decayed_gradient(group, p, self.NAME)


@register_optimizer(
    "nsgd_momentum",
    paper=_PAPER + ", equations (2)-(3), Theorem 1",
    description="normalized SGD with momentum: m = beta m + (1-beta) g; w -= lr * m/||m||",
    state_slots=1,
    hyperparameters=list(NSGD_MOMENTUM_HYPERPARAMETERS),
)
class NSGDMomentum(_NormalizedStep):
    """Normalized SGD with momentum (eqs. (2)-(3)); state: `momentum_buffer` per tensor, m_1 = g_1.

    beta = 0 gives nsgd (with a buffer). Zero momentum gives a zero step.
    """

    NAME = "nsgd_momentum"
    HYPERPARAMETERS = NSGD_MOMENTUM_HYPERPARAMETERS

    def __init__(self, params: Any, lr: float = 0.01, beta: float = 0.9, norm: str = "layer",
                 weight_norm_scaling: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, beta=beta, norm=norm, weight_norm_scaling=weight_norm_scaling,
                                      weight_decay=weight_decay))

    def _direction(self, group: dict, p: torch.Tensor) -> torch.Tensor:
        grad = _decayed_gradient(group, p, self.NAME)
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = grad.detach().clone(memory_format=torch.preserve_format)
        else:
            state["momentum_buffer"].lerp_(grad, 1.0 - group["beta"])
        return state["momentum_buffer"]
