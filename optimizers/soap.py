"""SOAP (Vyas et al. 2025, SOAP: Improving and Stabilizing Shampoo using Adam), the Shampoo-family representative.

Adam run in the eigenbasis of Shampoo's preconditioner: per tensor dimension d (up to
max_precondition_dim) the statistics GG_d (d x d) are accumulated and their eigenvectors Q_d
refreshed every `precondition_frequency` steps; the gradient is rotated into that basis, Adam's
moments are kept there, and the step is rotated back. Decoupled weight decay (multiplied by lr).

The implementation is pytorch_optimizer's `SOAP` (a maintained PyPI package whose SOAP follows the
authors' reference code; neither the authors nor torch publish one on PyPI, and Meta's
Distributed Shampoo is not on PyPI). It runs on CPU and GPU.
"""

from __future__ import annotations

from pytorch_optimizer import SOAP

from .hyperparams import Hyperparameter, beta_param, eps_param, lr_param, weight_decay_param
from .registry import register_optimizer
from .search_space import DECOUPLED_DECAY, LR_AROUND_DEFAULT, MOMENTUM, SECOND_MOMENT, WARMUP, WARMUP_FRACTION


@register_optimizer(
    "soap",
    paper="Vyas et al. 2025, SOAP: Improving and Stabilizing Shampoo using Adam (ICLR); pytorch_optimizer.SOAP",
    description="SOAP: Adam in the eigenbasis of Shampoo's preconditioner (pytorch_optimizer's implementation)",
    state_slots=2,  # Adam's two moments, plus per dimension d <= max_precondition_dim a d x d GG and Q
    family="modern",
    package="pytorch_optimizer",
    hyperparameters=[
        lr_param(),
        beta_param("beta1", help="first-moment decay"),
        beta_param("beta2", help="second-moment decay (and of the preconditioner statistics)"),
        eps_param(),
        weight_decay_param(help="decoupled weight decay (multiplied by lr)"),
        Hyperparameter("precondition_frequency", kind=int, low=1, help="steps between eigenbasis refreshes"),
        Hyperparameter("max_precondition_dim", kind=int, low=1,
                       help="larger dimensions are not preconditioned (identity basis)"),
    ],
    search_space={"lr": LR_AROUND_DEFAULT, "beta1": MOMENTUM, "beta2": SECOND_MOMENT, "weight_decay": DECOUPLED_DECAY,
                  WARMUP_FRACTION: WARMUP},
)
def make_soap(param_groups, lr=3e-3, beta1=0.95, beta2=0.95, eps=1e-8, weight_decay=0.01, precondition_frequency=10,
              max_precondition_dim=10000):
    # Defaults: the package's, which are the SOAP paper's (betas 0.95, preconditioning every 10 steps).
    return SOAP(param_groups, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                precondition_frequency=precondition_frequency, max_precondition_dim=max_precondition_dim)
