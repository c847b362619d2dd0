"""Thin registrations of torch's own SGD and Adam (the baselines), through the param-group policy."""

from __future__ import annotations

import torch

from .hyperparams import Hyperparameter, beta_param, eps_param, lr_param, weight_decay_param
from .registry import register_optimizer


@register_optimizer(
    "sgd",
    paper="Robbins & Monro 1951; heavy-ball momentum (Polyak 1964); torch.optim.SGD",
    description="SGD with momentum (torch.optim.SGD), Nesterov optional",
    state_slots=1,
    hyperparameters=[
        lr_param(0.1),
        Hyperparameter("momentum", 0.9, float, low=0.0, high=1.0, high_open=True, help="heavy-ball momentum"),
        Hyperparameter("nesterov", False, bool, help="Nesterov momentum"),
        weight_decay_param(0.0, "L2 weight decay added to the gradient"),
    ],
)
def make_sgd(param_groups, lr, momentum, nesterov, weight_decay):
    if nesterov and momentum == 0:
        raise ValueError("invalid hyperparameters for 'sgd': nesterov=True needs momentum > 0")
    return torch.optim.SGD(param_groups, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


@register_optimizer(
    "adam",
    paper="Kingma & Ba 2015 (Adam); Loshchilov & Hutter 2019 (decoupled weight decay, AdamW)",
    description="Adam (torch.optim.Adam / AdamW when decoupled_weight_decay)",
    state_slots=2,
    hyperparameters=[
        lr_param(1e-3),
        beta_param("beta1", 0.9, "first-moment decay"),
        beta_param("beta2", 0.999, "second-moment decay"),
        eps_param(1e-8),
        weight_decay_param(0.0),
        Hyperparameter("decoupled_weight_decay", True, bool,
                       help="AdamW's decoupled decay (True) or L2 added to the gradient (False)"),
    ],
)
def make_adam(param_groups, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay):
    cls = torch.optim.AdamW if decoupled_weight_decay else torch.optim.Adam
    return cls(param_groups, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
