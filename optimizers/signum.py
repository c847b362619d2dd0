"""Signum (Bernstein et al. 2018, signSGD: Compressed Optimisation for Non-Convex Problems, Algorithm 3).

Per tensor, the sign of the momentum, with decoupled weight decay lambda (multiplied by lr):
    m <- beta m + (1 - beta) g
    w <- w (1 - lr lambda) - lr sign(m)
beta = 0 is signSGD. Like Lion a sign step normalizes in l_inf; unlike Lion the sign is taken of the
momentum itself.
"""

from __future__ import annotations

from typing import Any

import torch

from ._base import run_closure
from ._sign_step import sign_step_, tensors_with_slot
from .hyperparams import beta_param, lr_param, weight_decay_param
from .registry import register_optimizer
from .search_space import DECOUPLED_DECAY, LR_AROUND_DEFAULT, MOMENTUM, WARMUP, WARMUP_FRACTION
from .sharding import ELEMENTWISE


@register_optimizer(
    "signum",
    paper="Bernstein et al. 2018, signSGD: Compressed Optimisation for Non-Convex Problems (ICML), Signum",
    description="Signum: the sign of the momentum (signSGD with momentum), decoupled weight decay",
    state_slots=1,
    family="modern",
    hyperparameters=[
        lr_param(),
        beta_param("momentum", help="momentum decay; 0 is signSGD"),
        weight_decay_param(help="decoupled weight decay (multiplied by lr)"),
    ],
    search_space={"lr": LR_AROUND_DEFAULT, "momentum": MOMENTUM, "weight_decay": DECOUPLED_DECAY,
                  WARMUP_FRACTION: WARMUP},
)
class Signum(torch.optim.Optimizer):
    """Signum; state per tensor: `momentum_buffer` (m). Defaults: lr 1e-4, momentum 0.9 (the paper's ImageNet run)."""

    SHARDING = ELEMENTWISE  # each element's update depends on that element only: exact at every ZeRO stage

    def __init__(self, params: Any, lr: float = 1e-4, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group, p, m in tensors_with_slot(self, "momentum_buffer"):
            m.lerp_(p.grad, 1 - group["momentum"])
            sign_step_(p, m.sign(), group)
        return loss
