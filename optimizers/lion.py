"""Lion (Chen et al. 2023, Symbolic Discovery of Optimization Algorithms, Algorithm 2): sign steps.

Per tensor, with decoupled weight decay lambda (multiplied by lr, as in AdamW):
    c = beta1 m + (1 - beta1) g          # the interpolation whose sign is the step
    w <- w (1 - lr lambda) - lr sign(c)
    m <- beta2 m + (1 - beta2) g         # the momentum, tracked with a slower beta2
A sign step has the same size in every coordinate (an l_inf-normalized step): the paper advises an
lr 3-10x smaller and a weight decay 3-10x larger than AdamW's.
"""

from __future__ import annotations

from typing import Any

import torch

from ._base import run_closure
from ._sign_step import sign_step_, tensors_with_slot
from .hyperparams import beta_param, lr_param, weight_decay_param
from .registry import register_optimizer
from .search_space import DECOUPLED_DECAY, LR_AROUND_DEFAULT, MOMENTUM, SECOND_MOMENT, WARMUP, WARMUP_FRACTION
from .sharding import ELEMENTWISE


@register_optimizer(
    "lion",
    paper="Chen et al. 2023, Symbolic Discovery of Optimization Algorithms (NeurIPS), Algorithm 2",
    description="Lion: the sign of an interpolated momentum, decoupled weight decay",
    state_slots=1,
    family="modern",
    hyperparameters=[
        lr_param(),
        beta_param("beta1", help="interpolation of momentum and gradient whose sign is the step"),
        beta_param("beta2", help="momentum decay"),
        weight_decay_param(help="decoupled weight decay (multiplied by lr)"),
    ],
    search_space={"lr": LR_AROUND_DEFAULT, "beta1": MOMENTUM, "beta2": SECOND_MOMENT, "weight_decay": DECOUPLED_DECAY,
                  WARMUP_FRACTION: WARMUP},
)
class Lion(torch.optim.Optimizer):
    """Lion; state per tensor: `exp_avg` (m). Defaults: the paper's (lr 1e-4, betas 0.9 / 0.99)."""

    SHARDING = ELEMENTWISE  # each element's update depends on that element only: exact at every ZeRO stage

    def __init__(self, params: Any, lr: float = 1e-4, beta1: float = 0.9, beta2: float = 0.99,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "beta1": beta1, "beta2": beta2, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group, p, m in tensors_with_slot(self, "exp_avg"):
            sign_step_(p, m.lerp(p.grad, 1 - group["beta1"]).sign_(), group)
            m.lerp_(p.grad, 1 - group["beta2"])
        return loss
