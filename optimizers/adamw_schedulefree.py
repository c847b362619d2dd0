"""Schedule-Free AdamW (Defazio et al. 2024), from its authors' package `schedulefree`.

It trains at y_t, an interpolation between the Polyak-style average x_t and the base sequence z_t,
and its answer is x_t: the model holds y_t during training, and `optimizer.eval()` moves it to x_t
(`train()` back), the same convention NIGT follows (needs_eval_swap). BatchNorm statistics gathered
at y_t do not fit x_t, so suites with BatchNorm recompute them before evaluating
(needs_bn_recalibration). No decaying schedule: the suites give it warmup then a constant lr, and the
package's own warmup is off (warmup_steps=0) so that the suites' schedule is the only one
(constant_schedule).
"""

from __future__ import annotations

from schedulefree import AdamWScheduleFree

from .hyperparams import Hyperparameter, beta_param, eps_param, lr_param, weight_decay_param
from .registry import register_optimizer
from .search_space import DECOUPLED_DECAY, LR_AROUND_DEFAULT, MOMENTUM, SECOND_MOMENT, WARMUP, WARMUP_FRACTION


@register_optimizer(
    "adamw_schedulefree",
    paper="Defazio et al. 2024, The Road Less Scheduled (NeurIPS); the authors' schedulefree.AdamWScheduleFree",
    description="Schedule-Free AdamW (schedulefree package): trains at y_t, evaluated at the average x_t",
    state_slots=2,  # z and exp_avg_sq
    family="modern",
    package="schedulefree",
    needs_eval_swap=True,
    needs_bn_recalibration=True,
    constant_schedule=True,
    hyperparameters=[
        lr_param(help="lr (warmup then constant; the average x_t replaces the decay)"),
        beta_param("beta1", help="interpolation: y = (1 - beta1) z + beta1 x"),
        beta_param("beta2", help="second-moment decay"),
        eps_param(),
        weight_decay_param(help="weight decay taken at y_t, multiplied by lr"),
        Hyperparameter("r", kind=float, low=0.0, help="polynomial weighting power of the average"),
        Hyperparameter("weight_lr_power", kind=float, low=0.0, help="the average weights steps by lr_max^power"),
    ],
    search_space={"lr": LR_AROUND_DEFAULT, "beta1": MOMENTUM, "beta2": SECOND_MOMENT, "weight_decay": DECOUPLED_DECAY,
                  WARMUP_FRACTION: WARMUP},
)
def make_adamw_schedulefree(param_groups, lr=0.0025, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, r=0.0,
                            weight_lr_power=2.0, *, foreach=None):
    # Defaults: the package's. It starts in eval mode; the suites expect training mode after construction.
    optimizer = AdamWScheduleFree(param_groups, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                                  warmup_steps=0, r=r, weight_lr_power=weight_lr_power,
                                  **({} if foreach is None else {"foreach": foreach}))
    optimizer.train()
    return optimizer
