"""Adafactor (Shazeer & Stern 2018), torch's implementation (torch.optim.Adafactor): the memory-lean baseline.

The second moment of a matrix is kept factored: one row and one column vector instead of a full
tensor, and there is no first moment, so a (m, n) weight keeps m + n numbers of state, not 2mn as
in Adam. Vectors keep a full second moment. torch factors the last two dimensions, so a
convolution weight (out, in, k, k) keeps (out, in, k) + (out, in, k) numbers: 2/k of the weight.
The step is relative: alpha_t = max(eps2, RMS(w)) * min(lr, 1/sqrt(t)), the update RMS-clipped at d.
"""

from __future__ import annotations

import torch

from .hyperparams import Hyperparameter, lr_param, weight_decay_param
from .registry import register_optimizer
from .search_space import DECOUPLED_DECAY, LR_AROUND_DEFAULT, WARMUP, WARMUP_FRACTION, Uniform


@register_optimizer(
    "adafactor",
    paper="Shazeer & Stern 2018, Adafactor: Adaptive Learning Rates with Sublinear Memory Cost (ICML); "
          "torch.optim.Adafactor",
    description="Adafactor (torch.optim.Adafactor): factored second moment, no first moment, relative steps",
    state_slots=0,  # per matrix a row and a column vector (plus a step count); vectors keep one full slot
    family="modern",
    package="torch",
    hyperparameters=[
        lr_param(help="the cap of the relative step size rho_t = min(lr, 1/sqrt(t))"),
        Hyperparameter("beta2_decay", kind=float, low=-1.0, high=0.0,
                       help="second-moment decay beta2_t = 1 - t^beta2_decay"),
        Hyperparameter("d", kind=float, low=1.0, help="update clipping threshold (RMS)"),
        Hyperparameter("eps2", kind=float, low=0.0, help="the smallest parameter RMS a step is relative to"),
        weight_decay_param(help="decoupled weight decay (multiplied by lr)"),
    ],
    search_space={"lr": LR_AROUND_DEFAULT, "beta2_decay": Uniform(-1.0, -0.5), "weight_decay": DECOUPLED_DECAY,
                  WARMUP_FRACTION: WARMUP},
)
def make_adafactor(param_groups, lr=1e-2, beta2_decay=-0.8, d=1.0, eps2=1e-3, weight_decay=0.0, *, foreach=None):
    # Defaults: torch's (the paper's beta2_decay -0.8, d 1, eps2 1e-3; lr 1e-2 caps the paper's 1/sqrt(t)).
    return torch.optim.Adafactor(param_groups, lr=lr, beta2_decay=beta2_decay, eps=(None, eps2), d=d,
                                 weight_decay=weight_decay, foreach=foreach)
