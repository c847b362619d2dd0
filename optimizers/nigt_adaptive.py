"""Adaptive NIGT (Algorithm 2, Theorem 4): eta_t and beta_t set on the fly from two gradients per step.

    D = C^(-14/3);  G_1 = 3 g^2 + D;  G_0 = D;  eta_0 = C / D^(2/7)
    eta_t   = C / (G_t^2 (t+1)^3)^(1/7)
    alpha_t = 1 / (t eta_{t-1}^2 G_{t-1});  beta_t = 1 - alpha_t      (alpha_1 = 1)
    x_t     = w_t + beta_t/(1-beta_t) (w_t - w_{t-1})
    m_t     = beta_t m_{t-1} + (1 - beta_t) grad f(x_t, xi_t)
    G_{t+1} = G_t + ||grad f(x_t, xi_t) - grad f(x_t, xi'_t)||^2 + g^2 ((t+1)^(1/4) - t^(1/4))
    w_{t+1} = w_t - lr * eta_t m_t / ||m_t||
It runs in NIGT's lean form (beta_{t+1} is known at the end of step t), so the model holds x_t.
Two bodies (see `_base`): the multi-tensor one runs the recursion for G_t, eta_t and alpha_t as
device vectors (one element per tensor; a 'global' unit's members hold equal values), with the
no-op steps before the first usable gradient masked by `torch.where`.
Reference (the uncertain C, the estimate of g, the choices): docs/algorithms.md, "nigt_adaptive".
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ._foreach import (
    Bucket,
    PendingNorms,
    buckets,
    fresh_copies,
    joined,
    norms,
    split_by_bucket,
    stacked_state,
    store_state,
)
from ._base import run_closure
from ._normalization import (
    PendingNormalization,
    combined_norm,
    dense_grad,
    norm_hyperparameters,
    step_ratio,
    tensor_norm,
)
from .hyperparams import Hyperparameter, lr_param
from .nigt import LeanNIGT, lean_to_next_training_point, lean_to_reported_and_momentum
from .registry import register_optimizer
from .search_space import COUPLED_DECAY, LR_AROUND_DEFAULT, WARMUP, WARMUP_FRACTION
from .sharding import whole_norm_tensors

NIGT_ADAPTIVE_HYPERPARAMETERS = (
    lr_param(help="multiplier on the adaptive step eta_t (so lr schedules still apply)"),
    Hyperparameter("C", kind=float, low=0.0,
                   help="Algorithm 2's constant C; 0 = sqrt(7 / (26 g^(6/7))), the likeliest reading "
                        "of the garbled extraction (uncertain)"),
    Hyperparameter("g", kind=float, low=0.0,
                   help="bound on stochastic gradient norms; 0 = running maximum of observed norms"),
    Hyperparameter("momentum_from_mean", kind=bool,
                   help="variant: feed the mean of both halves' gradients into m (default: the first)"),
    *norm_hyperparameters("L2 weight decay added to the momentum's gradient, evaluated at x_t"),
)


def default_C(g: float) -> float:
    """C = sqrt(7 / (26 g^(6/7))): the reading of the extracted 'C = 26g76/7' in docs/algorithms.md, "nigt_adaptive"."""
    return math.sqrt(7.0 / (26.0 * g ** (6.0 / 7.0)))


@register_optimizer(
    "nigt_adaptive",
    paper="Cutkosky & Mehta 2020, Momentum Improves Normalized SGD (ICML), Algorithm 2, Theorem 4",
    description="adaptive NIGT: eta_t, beta_t from the gap between two half-batch gradients per step",
    state_slots=1,
    family="paper",
    needs_eval_swap=True,
    gradients_per_step=2,
    hyperparameters=NIGT_ADAPTIVE_HYPERPARAMETERS,
    lr_grid=(0.01, 0.1, 1.0, 10.0),  # lr multiplies the adaptive eta_t: a grid around 1
    search_space={"lr": LR_AROUND_DEFAULT, "weight_decay": COUPLED_DECAY, WARMUP_FRACTION: WARMUP},
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

    def __init__(self, params: Any, lr: float = 1.0, C: float = 0.0, g: float = 0.0,
                 momentum_from_mean: bool = False, norm: str = "layer", weight_norm_scaling: bool = False,
                 weight_decay: float = 0.0, *, foreach: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, C=C, g=g, momentum_from_mean=momentum_from_mean, norm=norm,
                                      weight_norm_scaling=weight_norm_scaling, weight_decay=weight_decay), foreach)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step of Algorithm 2; the closure is evaluated twice at x_t (two half-batches)."""
        if closure is None:
            raise RuntimeError(
                "nigt_adaptive.step() needs a closure: it evaluates two independent gradients at the "
                "same point (declared gradients_per_step=2); pass a closure that zeroes the gradients, "
                "runs forward/backward on the next half-batch and returns the loss"
            )
        self._before_step()
        loss_first = run_closure(closure)
        with_grad = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        multi_tensor = self.uses_multi_tensor()
        if multi_tensor:
            first = dict(zip(with_grad, fresh_copies([p.grad for p in with_grad])))
        else:
            first = {p: dense_grad(p, self.NAME).clone() for p in with_grad}
        loss_second = run_closure(closure)
        if multi_tensor:
            _multi_tensor_nigt_adaptive(self.param_groups, self.state, first, self.NAME)
        else:
            self._single_tensor_nigt_adaptive(first)
        if loss_first is None or loss_second is None:
            return loss_first if loss_second is None else loss_second
        return (loss_first + loss_second) / 2

    def _single_tensor_nigt_adaptive(self, first: dict) -> None:
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
        if previous is not None:  # the multi-tensor body's 0-dim tensors, or this body's floats
            previous = {key: float(previous[key]) for key in ("t", "G", "g_hat")}
            if previous["t"] == 0:  # the multi-tensor body's state before its first usable gradient
                previous = None
        t = int(previous["t"]) + 1 if previous else 1
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


def _multi_tensor_nigt_adaptive(param_groups: list[dict], state: Any, first: dict, name: str) -> None:
    """One step of Algorithm 2 over all param groups, from the first half's gradient copies `first`
    (changed in place) and the second half's in `.grad`, without host reads.

    Every tensor carries its unit's scalars (t, G_t, g estimate); a 'global' unit takes the largest
    of its members' values (they are equal unless a tensor joined late: G and the estimate only grow).
    The recursion runs in float64 (G_t^2 (t+1)^3 outgrows float32), and is stored in the tensors' dtype.
    A unit is inactive (no move, no state change) until its g estimate is positive, and at a
    non-finite gradient norm; t = 0 marks a unit never active.
    """
    parts = buckets(param_groups, state, name, grads=first)
    if not parts:
        return
    seconds = [[p.grad if p.grad is not None else torch.zeros_like(g) for p, g in zip(b.params, b.grads)]
               for b in parts]
    unit = _UnitScalars(parts)
    halves = torch.stack([joined([norms(b.grads, unit.dtype) for b in parts]),
                          joined([norms(s, unit.dtype) for s in seconds])], dim=1)
    observed = unit.combined(halves).amax(1)
    g_hat = _given_or(unit.g, lambda: torch.maximum(unit.previous("g_hat"), observed))
    active = (observed * 0 == 0) & (g_hat > 0)  # finite, and a usable estimate of g
    C = _given_or(unit.C, lambda: (7.0 / (26.0 * g_hat ** (6.0 / 7.0))) ** 0.5)
    t_previous = unit.previous("t")
    G = torch.where(t_previous == 0, 3.0 * g_hat**2 + C ** (-14.0 / 3.0), unit.previous("G"))  # G_t
    t = t_previous + 1
    eta = C / (G**2 * (t + 1) ** 3) ** (1.0 / 7.0)
    beta_next = 1.0 - (1.0 / ((t + 1) * eta**2 * G)).clamp(max=1.0)
    actives, etas, next_betas = (split_by_bucket(v, parts) for v in (active, eta, beta_next))

    pending = PendingNorms(None, {})
    for bucket, second, active_b, eta_b, beta_b in zip(parts, seconds, actives, etas, next_betas):
        group = bucket.group
        if group["momentum_from_mean"]:
            torch._foreach_add_(bucket.grads, second)
            torch._foreach_mul_(bucket.grads, 0.5)
        active_values = active_b.to(bucket.dtype).unbind(0)
        momenta, previous = lean_to_reported_and_momentum(bucket, bucket.grads, group["weight_decay"], active_values)
        torch._foreach_sub_(bucket.grads, second)  # g1 - g2 (or half of it, from the mean): the gap
        entry = (momenta, previous, eta_b * group["lr"], beta_b, active_b)
        if not group["layer_adaptation"]:
            lean_to_next_training_point(bucket, momenta, entry[2], beta_b, previous, active_b)
            continue
        weight_norms = norms(bucket.params, bucket.dtype) if group["weight_norm_scaling"] else None
        pending.add(bucket, entry, norms(momenta, bucket.dtype), weight_norms)
    for bucket, (momenta, previous, base, beta_b, active_b), ratios in pending.ratios():
        lean_to_next_training_point(bucket, momenta, base * ratios, beta_b, previous, active_b)

    gaps = joined([norms(b.grads, unit.dtype) * (2.0 if b.group["momentum_from_mean"] else 1.0) for b in parts])
    gap = unit.combined(gaps.unsqueeze(1))[:, 0]
    G_next = G + gap**2 + g_hat**2 * ((t + 1) ** 0.25 - t**0.25)
    unit.store(active, t=t, G=G_next, g_hat=g_hat)


def _given_or(setting: float | torch.Tensor, default: Callable[[], Any]) -> Any:
    """A setting where it is positive, else its default (0 means "use the default")."""
    if isinstance(setting, float):
        return setting if setting > 0 else default()
    return torch.where(setting > 0, setting, default())


class _UnitScalars:
    """Algorithm 2's per-unit inputs and stored scalars as vectors over all buckets' tensors.

    A setting (g, C) is one number where all groups agree, else a vector; a 'global' unit uses its
    first group's settings.
    """

    def __init__(self, parts: list[Bucket]) -> None:
        self.parts = parts
        self.dtype = torch.float64
        self.has_global = any(b.group["norm"] == "global" for b in parts)
        self.is_global = joined([torch.full((len(b),), b.group["norm"] == "global", device=b.device)
                                 for b in parts]) if self.has_global else None
        shared = next((b.group for b in parts if b.group["norm"] == "global"), None)
        self._own: dict[str, torch.Tensor] = {}
        self.g = self._setting(lambda group: (shared if group["norm"] == "global" else group)["g"])
        self.C = self._setting(lambda group: (shared if group["norm"] == "global" else group)["C"])

    def _setting(self, value_of: Callable[[dict], float]) -> float | torch.Tensor:
        values = [value_of(b.group) for b in self.parts]
        if len(set(values)) == 1:
            return float(values[0])
        return joined([torch.full((len(b),), v, dtype=self.dtype, device=b.device) for b, v in zip(self.parts, values)])

    def combined(self, norms_by_column: torch.Tensor) -> torch.Tensor:
        """Per-tensor norms -> per-unit norms (a 'global' unit's members get their joint norm)."""
        if not self.has_global:
            return norms_by_column
        return whole_norm_tensors(None, norms_by_column, self.is_global)

    def own(self, key: str) -> torch.Tensor:
        """The stored scalar of each tensor (0 where none yet), as read at the start of the step."""
        if key not in self._own:
            self._own[key] = joined([stacked_state(b, key, 0.0).to(self.dtype) for b in self.parts])
        return self._own[key]

    def previous(self, key: str) -> torch.Tensor:
        """The stored scalar of each tensor's unit: a 'global' unit's members share their largest."""
        own = self.own(key)
        if not self.has_global:
            return own
        shared = torch.where(self.is_global, own, torch.zeros_like(own)).amax()
        return torch.where(self.is_global, shared, own)

    def store(self, active: torch.Tensor, **values: torch.Tensor) -> None:
        """Keep the new values where the unit was active, each tensor's stored ones elsewhere."""
        for key, value in values.items():
            kept = torch.where(active, value, self.own(key))
            for bucket, piece in zip(self.parts, split_by_bucket(kept, self.parts)):
                store_state(bucket, key, piece)
