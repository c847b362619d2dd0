"""Adaptive NIGT (Algorithm 2, Theorem 4): eta_t and beta_t set on the fly from two gradients per step.

    D = C^(-14/3);  G_1 = 3 g^2 + D;  G_0 = D;  eta_0 = C / D^(2/7)
    eta_t   = C / (G_t^2 (t+1)^3)^(1/7)
    alpha_t = 1 / (t eta_{t-1}^2 G_{t-1});  beta_t = 1 - alpha_t      (alpha_1 = 1)
    x_t     = w_t + beta_t/(1-beta_t) (w_t - w_{t-1})
    m_t     = beta_t m_{t-1} + (1 - beta_t) grad f(x_t, xi_t)
    G_{t+1} = G_t + ||grad f(x_t, xi_t) - grad f(x_t, xi'_t)||^2 + g^2 ((t+1)^(1/4) - t^(1/4))
    w_{t+1} = w_t - lr * eta_t m_t / ||m_t||
It runs in NIGT's lean form (beta_{t+1} is known at the end of step t), so the model holds x_t.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ._normalization import (
    PendingNormalization,
    combined_norm,
    dense_grad,
    norm_hyperparameters,
    run_closure,
    step_ratio,
    tensor_norm,
)
from .hyperparams import Hyperparameter, lr_param
from .nigt import LeanNIGT
from .registry import register_optimizer

NIGT_ADAPTIVE_HYPERPARAMETERS = (
    lr_param(1.0, "multiplier on the adaptive step eta_t (so lr schedules still apply)"),
    Hyperparameter("C", 0.0, float, low=0.0,
                   help="Algorithm 2's constant C; 0 = sqrt(7 / (26 g^(6/7))), the likeliest reading "
                        "of the garbled extraction (uncertain)"),
    Hyperparameter("g", 0.0, float, low=0.0,
                   help="bound on stochastic gradient norms; 0 = running maximum of observed norms"),
    Hyperparameter("momentum_from_mean", False, bool,
                   help="variant: feed the mean of both halves' gradients into m (default: the first)"),
    *norm_hyperparameters("L2 weight decay added to the momentum's gradient, evaluated at x_t"),
)


def default_C(g: float) -> float:
    """C = sqrt(7 / (26 g^(6/7))): ALGORITHMS.md's reading of the extracted 'C = 26g76/7'."""
    return math.sqrt(7.0 / (26.0 * g ** (6.0 / 7.0)))


@register_optimizer(
    "nigt_adaptive",
    paper="Cutkosky & Mehta 2020, Momentum Improves Normalized SGD (ICML), Algorithm 2, Theorem 4",
    description="adaptive NIGT: eta_t, beta_t from the gap between two half-batch gradients per step",
    state_slots=1,
    needs_eval_swap=True,
    gradients_per_step=2,
    hyperparameters=list(NIGT_ADAPTIVE_HYPERPARAMETERS),
    lr_grid=(0.01, 0.1, 1.0, 10.0),  # lr multiplies the adaptive eta_t: a grid around 1
)
class NIGTAdaptive(LeanNIGT):
    """Adaptive NIGT (Algorithm 2). `step(closure)` needs a closure and calls it TWICE at the same x_t.

    Each call must zero the gradients, run forward/backward on the next independent half-batch and
    return its loss; step() returns the mean of the two losses. The first half's gradient drives m
    (or the mean of both, `momentum_from_mean`); their difference feeds G. After step(), `.grad`
    holds the second half's gradient. Transient memory: one copy of the first half's gradients.
    `C` (0 = the default): the paper's extraction garbles it; sqrt(7/(26 g^(6/7))) is the likeliest
    reading, possibly 2^6 instead of 26. With `g` = 0, g is estimated as the running maximum of the
    observed half-batch gradient norms (before weight decay), and C follows that estimate each step.
    Scalars (t, G, the g estimate) live per normalization group: per tensor for 'layer', shared for
    'global' (copied into every tensor's state). Groups with layer_adaptation=False step by
    lr * eta_t * m_t without normalization. Until a nonzero gradient is seen with g = 0, steps are
    no-ops. alpha_t is capped at 1. `lr` scales the step, not eta_t inside alpha_t. Swap as in nigt.
    """

    NAME = "nigt_adaptive"
    HYPERPARAMETERS = NIGT_ADAPTIVE_HYPERPARAMETERS

    def __init__(self, params: Any, lr: float = 1.0, C: float = 0.0, g: float = 0.0,
                 momentum_from_mean: bool = False, norm: str = "layer", weight_norm_scaling: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, C=C, g=g, momentum_from_mean=momentum_from_mean, norm=norm,
                                      weight_norm_scaling=weight_norm_scaling, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step of Algorithm 2; the closure is evaluated twice at x_t (two half-batches)."""
        if closure is None:
            raise RuntimeError(
                "nigt_adaptive.step() needs a closure: it evaluates two independent gradients at the "
                "same point (declared gradients_per_step=2); pass a closure that zeroes the gradients, "
                "runs forward/backward on the next half-batch and returns the loss"
            )
        self._check_training()
        loss_first = run_closure(closure)
        first = {p: dense_grad(p, self.NAME).clone()
                 for group in self.param_groups for p in group["params"] if p.grad is not None}
        loss_second = run_closure(closure)
        units = self._scalar_units(first)
        for unit in units.values():
            self._advance_scalars(unit)
        pending = PendingNormalization()
        for unit in units.values():
            if unit["eta"] is None:  # nothing seen yet: a no-op step
                continue
            for group, p, grad in unit["members"]:
                if group["weight_decay"] != 0.0:
                    grad.add_(p, alpha=group["weight_decay"])  # p holds x_t here
                m = self._to_reported_and_update_momentum(p, grad)
                step_base = group["lr"] * unit["eta"]
                if not group["layer_adaptation"]:
                    self._step_to_next_training_point(p, step_base, unit["beta_next"])
                    continue
                scaled = group["weight_norm_scaling"]
                direction_norm = tensor_norm(m)
                weight_norm = tensor_norm(p) if scaled else 0.0  # p holds w_t here
                if group["norm"] == "layer":
                    ratio = step_ratio(direction_norm, weight_norm, scaled)
                    self._step_to_next_training_point(p, step_base * ratio, unit["beta_next"])
                else:
                    pending.add((p, step_base, unit["beta_next"]), direction_norm, weight_norm, scaled)
            self._store_scalars(unit)
        for (p, step_base, beta_next), ratio in pending.ratios():
            self._step_to_next_training_point(p, step_base * ratio, beta_next)
        if loss_first is None or loss_second is None:
            return loss_first if loss_second is None else loss_second
        return (loss_first + loss_second) / 2

    def _scalar_units(self, first: dict) -> dict:
        """Group the tensors by who shares Algorithm 2's scalars; measure both halves' norms."""
        units: dict[Any, dict] = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p not in first:
                    continue
                g1 = first[p]
                g2 = p.grad if p.grad is not None else torch.zeros_like(g1)  # None means zero, as in torch
                key = "global" if group["norm"] == "global" else p
                unit = units.setdefault(key, {"members": [], "first": [], "second": [], "gap": [],
                                              "g": group["g"], "C": group["C"]})
                unit["first"].append(tensor_norm(g1))
                unit["second"].append(tensor_norm(g2))
                unit["gap"].append(tensor_norm(g1 - g2))
                if group["momentum_from_mean"]:
                    g1.add_(g2).mul_(0.5)
                unit["members"].append((group, p, g1))
        return units

    def _advance_scalars(self, unit: dict) -> None:
        """From the stored (t-1, G_t, g estimate, beta_t) compute eta_t, G_{t+1} and beta_{t+1}."""
        previous = next((self.state[p] for _, p, _ in unit["members"] if "G" in self.state[p]), None)
        t = previous["t"] + 1 if previous else 1
        observed = max(combined_norm(unit["first"]), combined_norm(unit["second"]))
        if not math.isfinite(observed):  # as the other normalized optimizers: no step; the loss shows it
            unit["eta"] = None
            return
        g_hat = unit["g"] if unit["g"] > 0.0 else max(observed, previous["g_hat"] if previous else 0.0)
        if not g_hat > 0.0:
            unit["eta"] = None
            return
        C = unit["C"] if unit["C"] > 0.0 else default_C(g_hat)
        G = previous["G"] if previous else 3.0 * g_hat**2 + C ** (-14.0 / 3.0)  # G_t
        eta = C / (G**2 * (t + 1) ** 3) ** (1.0 / 7.0)
        alpha_next = min(1.0, 1.0 / ((t + 1) * eta**2 * G))
        gap = combined_norm(unit["gap"])
        unit.update(t=t, g_hat=g_hat, eta=eta, beta_next=1.0 - alpha_next,
                    G=G + gap**2 + g_hat**2 * ((t + 1) ** 0.25 - t**0.25))

    def _store_scalars(self, unit: dict) -> None:
        for _, p, _ in unit["members"]:
            self.state[p].update(t=unit["t"], G=unit["G"], g_hat=unit["g_hat"])
