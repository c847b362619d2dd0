"""Thin registrations of torch's own SGD and Adam (the baselines), through the param-group policy.

Their defaults live in the factories' signatures; `foreach` is passed on to torch (None: torch's
own choice, which is the for-loop on CPU and foreach on CUDA; `fused` is not exposed).
Reference: docs/algorithms.md, "sgd and adam".
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from .hyperparams import Hyperparameter, HyperparameterError, beta_param, eps_param, lr_param, weight_decay_param
from .registry import register_optimizer
from .search_space import (COUPLED_DECAY, DECOUPLED_DECAY, LR_AROUND_DEFAULT, MOMENTUM, SECOND_MOMENT, WARMUP,
                           WARMUP_FRACTION)


def _check_sgd(values: Mapping[str, Any]) -> None:
    if values["nesterov"] and values["momentum"] == 0:
        raise HyperparameterError("nesterov=True needs momentum > 0")


@register_optimizer(
    "sgd",
    paper="Robbins & Monro 1951; heavy-ball momentum (Polyak 1964); torch.optim.SGD",
    description="SGD with momentum (torch.optim.SGD), Nesterov optional",
    state_slots=1,
    family="paper",
    package="torch",
    hyperparameters=[
        lr_param(),
        Hyperparameter("momentum", kind=float, low=0.0, high=1.0, high_open=True, help="heavy-ball momentum"),
        Hyperparameter("nesterov", kind=bool, help="Nesterov momentum"),
        weight_decay_param(help="L2 weight decay added to the gradient"),
    ],
    check=_check_sgd,
    search_space={"lr": LR_AROUND_DEFAULT, "momentum": MOMENTUM, "weight_decay": COUPLED_DECAY,
                  WARMUP_FRACTION: WARMUP},
)
def make_sgd(param_groups, lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0, *, foreach=None):
    return torch.optim.SGD(param_groups, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                           foreach=foreach)


@register_optimizer(
    "adam",
    paper="Kingma & Ba 2015 (Adam); Loshchilov & Hutter 2019 (decoupled weight decay, AdamW)",
    description="Adam (torch.optim.Adam / AdamW when decoupled_weight_decay)",
    state_slots=2,
    family="paper",
    package="torch",
    hyperparameters=[
        lr_param(),
        beta_param("beta1", help="first-moment decay"),
        beta_param("beta2", help="second-moment decay"),
        eps_param(),
        weight_decay_param(),
        Hyperparameter("decoupled_weight_decay", kind=bool,
                       help="AdamW's decoupled decay (True) or L2 added to the gradient (False)"),
    ],
    search_space={"lr": LR_AROUND_DEFAULT, "beta1": MOMENTUM, "beta2": SECOND_MOMENT, "weight_decay": DECOUPLED_DECAY,
                  WARMUP_FRACTION: WARMUP},
)
def make_adam(param_groups, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              decoupled_weight_decay=True, *, foreach=None):
    cls = torch.optim.AdamW if decoupled_weight_decay else torch.optim.Adam
    return cls(param_groups, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, foreach=foreach)
