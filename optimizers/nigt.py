"""NIGT: normalized SGD with implicit gradient transport (Algorithm 1), in the memory-lean form.

Algorithm 1 (w: the reported iterate, x: where gradients are taken, a_t = lr_t * r_t the step factor):
    m_1 = g(w_1);  w_2 = w_1 - a_1 m_1
    x_t = w_t + c_t (w_t - w_{t-1}),  c_t = beta_t / (1 - beta_t)
    m_t = beta_t m_{t-1} + (1 - beta_t) g(x_t);   w_{t+1} = w_t - a_t m_t
Lean form (docs/algorithms.md, "nigt"): since w_t - w_{t-1} = -a_{t-1} m_{t-1}, the model holds x_t and the
optimizer keeps only m plus two scalars per tensor (a_{t-1} and beta_t). One step, per tensor:
    p += c_t a_{t-1} m                  # p: x_t -> w_t   (a_0 = 0)
    m  = beta_t m + (1 - beta_t) g      # m_1 = g_1
    p -= (1 + c_{t+1}) a_t m            # p: w_t -> x_{t+1};  w_{t+1} = x_{t+1} + c_{t+1} a_t m
A fused variant (one update of p from m_t and g) moves the same bytes with torch's two-operand
kernels, so the plain form is used: it also has w_t at hand for weight-norm scaling.

Two bodies (see `_base`): the single-tensor one keeps a_t and beta_{t+1} as Python floats, the
multi-tensor one as 0-dim device tensors (`_foreach`); each reads the other's state.
Reference: docs/algorithms.md, "nigt".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ._foreach import (
    Bucket,
    PendingNorms,
    add_scaled,
    buckets,
    norms,
    state_scalars,
    step_ratios,
    store_shared,
    store_state,
)
from ._normalization import (
    NormalizedOptimizer,
    PendingNormalization,
    dense_grad,
    norm_hyperparameters,
    scope,
    step_ratio,
    tensor_norm,
)
from .hyperparams import beta_param, lr_param
from .registry import register_optimizer
from .search_space import COUPLED_DECAY, LR_AROUND_DEFAULT, MOMENTUM, WARMUP, WARMUP_FRACTION
from .sharding import NORM_HOOK, NormSharding, normalization_key

NIGT_HYPERPARAMETERS = (
    lr_param(help="step length eta of each normalized step (multiplied by the schedule)"),
    beta_param("beta", help="momentum; also sets the extrapolation x_t = w_t + beta/(1-beta) (w_t - w_{t-1})"),
    *norm_hyperparameters("L2 weight decay added to the gradient, evaluated at x_t (where the gradient is)"),
)


class LeanNIGT(NormalizedOptimizer):
    """The lean-form machinery shared by nigt and nigt_adaptive: the x_t/w_t swap and the moves.

    Per-tensor state: `momentum_buffer` (m_t), `step_size` (a_t), `beta_next` (beta_{t+1}: the
    group's `beta` read at the end of step t, so a changed beta applies one step later); the two
    scalars are floats (single-tensor body) or 0-dim tensors (multi-tensor body).
    Each param group records `eval_mode`, so a state_dict taken while evaluating restores that.
    """

    def __init__(self, params: Any, defaults: dict[str, Any], foreach: bool | None) -> None:
        super().__init__(params, {**defaults, "eval_mode": False}, foreach)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        # A group added while evaluating joins in eval mode; its tensors have no state to swap yet.
        evaluating = any(g["eval_mode"] for g in getattr(self, "param_groups", []))
        super().add_param_group({"eval_mode": evaluating, **param_group})

    # ---- the reversible swap between the training point x_t and the reported iterate w_t ----
    def eval(self) -> None:
        """Put the model's parameters at the reported iterate w_t (idempotent)."""
        self._swap(to_eval=True)

    def train(self) -> None:
        """Put the model's parameters back at the training point x_t (idempotent)."""
        self._swap(to_eval=False)

    @torch.no_grad()
    def _swap(self, to_eval: bool) -> None:
        sign = 1.0 if to_eval else -1.0
        for group in self.param_groups:
            if group["eval_mode"] == to_eval:
                continue
            on_device = []  # tensors whose scalars are 0-dim tensors: shifted without host reads
            for p in group["params"]:
                state = self.state.get(p)
                if not state or "momentum_buffer" not in state:
                    continue
                if isinstance(state["step_size"], torch.Tensor):
                    on_device.append((p, state))
                    continue
                shift = _extrapolation(state["beta_next"]) * state["step_size"]
                if shift != 0.0:
                    p.add_(state["momentum_buffer"], alpha=sign * shift)
            if on_device:
                betas = torch.stack([s["beta_next"] for _, s in on_device])
                sizes = torch.stack([s["step_size"] for _, s in on_device])
                add_scaled([p for p, _ in on_device], [s["momentum_buffer"] for _, s in on_device],
                           sign * betas / (1 - betas) * sizes)
            group["eval_mode"] = to_eval

    def _before_step(self) -> None:
        """Refuse to step from the evaluation weights w_t (see `eval`)."""
        if any(g["eval_mode"] for g in self.param_groups):
            raise RuntimeError(
                f"{self.NAME}.step() was called while the model holds the evaluation weights w_t; "
                "call optimizer.train() first (it moves the parameters back to x_t)"
            )

    # ---- the two halves of a lean step, one tensor at a time ----
    def _to_reported_and_update_momentum(self, p: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """p: x_t -> w_t, then m_t = beta_t m_{t-1} + (1 - beta_t) grad; returns m_t."""
        state = self.state[p]
        if "momentum_buffer" not in state:  # t = 1: x_1 = w_1 and m_1 = g_1
            state["momentum_buffer"] = grad.detach().clone(memory_format=torch.preserve_format)
            return state["momentum_buffer"]
        m, beta = state["momentum_buffer"], float(state["beta_next"])
        shift = _extrapolation(beta) * float(state["step_size"])
        if shift != 0.0:
            p.add_(m, alpha=shift)
        m.lerp_(grad, 1.0 - beta)
        return m

    def _step_to_next_training_point(self, p: torch.Tensor, step_size: float, beta_next: float) -> None:
        """w_{t+1} = w_t - a_t m_t, then on to x_{t+1} = w_{t+1} - c_{t+1} a_t m_t (one update of p)."""
        state = self.state[p]
        if step_size != 0.0:
            p.add_(state["momentum_buffer"], alpha=-step_size / (1.0 - beta_next))
        state["step_size"] = step_size
        state["beta_next"] = beta_next


def _extrapolation(beta: float) -> float:
    """c = beta / (1 - beta): how far x_t lies beyond w_t, in units of the last step."""
    return beta / (1.0 - beta)


# ---- the two halves of a lean step, a bucket at a time (the multi-tensor body) ----

@dataclass
class LeanScalars:
    """A bucket's a_{t-1} and beta_t as read at the start of a step (0-dim tensors, one per tensor)."""

    step_size: list[torch.Tensor]
    beta: list[torch.Tensor]


def lean_to_reported_and_momentum(bucket: Bucket, directions: list[torch.Tensor], weight_decay: float,
                                  active: list[torch.Tensor] | None = None) -> tuple[list[torch.Tensor], LeanScalars]:
    """p: x_t -> w_t and m_t = beta_t m_{t-1} + (1 - beta_t)(d + lam x_t), in place for a whole bucket.

    A new tensor starts from m_0 = 0 and beta = 0, which gives m_1 = d_1 exactly. Weight decay is
    folded into the buffer with x_t = w_t - s m_{t-1} (s = c_t a_{t-1}), so no copy of the
    gradients is made. `active` (nigt_adaptive: 1.0, or 0.0 before its first usable gradient, where
    neither p nor m may move) scales the shift and the momentum's weight.
    """
    for p, state in zip(bucket.params, bucket.states):
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    momenta = [state["momentum_buffer"] for state in bucket.states]
    previous = LeanScalars(state_scalars(bucket, "step_size", 0.0), state_scalars(bucket, "beta_next", 0.0))
    if active is None and all(beta is previous.beta[0] for beta in previous.beta):
        # One beta_t for the whole bucket (nigt stores it once per group): c_t computed once.
        weight = 1 - previous.beta[0]
        weights = [weight] * len(bucket)
        shifts = torch._foreach_mul(previous.step_size, previous.beta[0] / weight)  # c_t a_{t-1}
    else:
        weights = torch._foreach_mul(previous.beta, -1.0)  # 1 - beta_t
        torch._foreach_add_(weights, 1.0)
        shifts = torch._foreach_div(previous.beta, weights)  # c_t a_{t-1}
        torch._foreach_mul_(shifts, previous.step_size)
    if active is not None:
        torch._foreach_mul_(shifts, active)
        torch._foreach_mul_(weights, active)
    torch._foreach_addcmul_(bucket.params, momenta, shifts)
    if weight_decay == 0.0:
        torch._foreach_lerp_(momenta, directions, weights)
        return momenta, previous
    keep = torch._foreach_mul(weights, shifts)  # 1 - w - lam w s, with w = 1 - beta_t
    torch._foreach_mul_(keep, -weight_decay)
    torch._foreach_add_(keep, 1.0)
    torch._foreach_sub_(keep, weights)
    torch._foreach_mul_(momenta, keep)
    torch._foreach_addcmul_(momenta, directions, weights)
    torch._foreach_addcmul_(momenta, bucket.params, weights, value=weight_decay)
    return momenta, previous


def lean_to_next_training_point(bucket: Bucket, momenta: list[torch.Tensor], step_size: torch.Tensor | float,
                                beta_next: torch.Tensor | float, previous: LeanScalars | None = None,
                                active: torch.Tensor | None = None) -> None:
    """p: w_t -> x_{t+1} = w_t - a_t/(1 - beta_{t+1}) m_t for a whole bucket; stores a_t and beta_{t+1}.

    `step_size` and `beta_next` are vectors over the bucket's tensors, or one number for all (nigt's
    beta; the lr of a group that is not normalized). Where `active` (a boolean vector) is False, p
    stays and the `previous` scalars are kept.
    """
    if active is not None:
        move = torch.where(active, -step_size / (1 - beta_next), 0.0)
        add_scaled(bucket.params, momenta, move)
        store_state(bucket, "step_size", torch.where(active, step_size, torch.stack(previous.step_size)))
        store_state(bucket, "beta_next", torch.where(active, beta_next, torch.stack(previous.beta)))
        return
    if isinstance(step_size, float):  # the same step for all: a Python number, one shared 0-dim state
        torch._foreach_add_(bucket.params, momenta, alpha=-step_size / (1.0 - beta_next))
        store_shared(bucket, "step_size", step_size)
    else:
        sizes = step_size.to(bucket.dtype).unbind(0)
        torch._foreach_addcmul_(bucket.params, momenta, sizes, value=-1.0 / (1.0 - beta_next))
        store_state(bucket, "step_size", sizes)
    store_shared(bucket, "beta_next", beta_next)


@register_optimizer(
    "nigt",
    paper="Cutkosky & Mehta 2020, Momentum Improves Normalized SGD (ICML), Algorithm 1, Theorem 3",
    description="normalized SGD with implicit gradient transport (memory-lean: model at x_t, swap to w_t)",
    state_slots=1,
    family="paper",
    needs_eval_swap=True,
    hyperparameters=NIGT_HYPERPARAMETERS,
    search_space={"lr": LR_AROUND_DEFAULT, "beta": MOMENTUM, "weight_decay": COUPLED_DECAY, WARMUP_FRACTION: WARMUP},
)
class NIGT(LeanNIGT):
    """NIGT (Algorithm 1): gradients at x_t = w_t + beta/(1-beta)(w_t - w_{t-1}), normalized momentum steps.

    During training the model holds x_t; `eval()` moves it to the reported iterate w_t and `train()`
    back (evaluate and checkpoint between them). `step()` in eval mode raises RuntimeError.
    Step factor a_t = lr * r with r = 1/||m_t|| (or ||w_t||/||m_t|| with weight-norm scaling) over the
    normalization group; groups with layer_adaptation=False use r = 1 (an unnormalized NIGT step).
    ||m_t|| = 0 gives a zero step; ||w_t|| = 0 falls back to r = 1/||m_t||. Weight decay is L2 added to
    the gradient at x_t. Tensors without a gradient are skipped (they keep their state).
    """

    SHARDING = NORM_HOOK  # norms go through sharding.whole_norms: exact on ZeRO pieces

    def __init__(self, params: Any, lr: float = 0.01, beta: float = 0.9, norm: str = "layer",
                 weight_norm_scaling: bool = False, weight_decay: float = 0.0, *,
                 foreach: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, beta=beta, norm=norm, weight_norm_scaling=weight_norm_scaling,
                                      weight_decay=weight_decay), foreach)

    # `step` (one NIGT step from x_t to x_{t+1}) is NightbenchOptimizer's: the training-mode check,
    # the closure, then one of these two bodies.
    def _multi_tensor_step(self, sharding: NormSharding | None, index_cache: dict) -> None:
        _multi_tensor_nigt(self.param_groups, self.state, sharding=sharding, name=self.NAME, index_cache=index_cache)

    def _single_tensor_step(self, sharding: NormSharding | None) -> None:
        pending = PendingNormalization(sharding)
        for group in self.param_groups:
            where, lr, scaled = scope(group), group["lr"], group["weight_norm_scaling"]
            beta_next, wd = group["beta"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = dense_grad(p, self.NAME)
                if wd != 0.0:
                    grad = grad.add(p, alpha=wd)  # p holds x_t here: decay where the gradient is
                m = self._to_reported_and_update_momentum(p, grad)
                if where is None:
                    self._step_to_next_training_point(p, lr, beta_next)
                    continue
                direction_norm = tensor_norm(m)
                weight_norm = tensor_norm(p) if scaled else 0.0  # p holds w_t here
                if where == "layer" and sharding is None:
                    ratio = step_ratio(direction_norm, weight_norm, scaled)
                    self._step_to_next_training_point(p, lr * ratio, beta_next)
                else:
                    pending.add((p, lr, beta_next), direction_norm, weight_norm, scaled,
                                normalization_key(where, p, sharding))
        for (p, lr, beta_next), ratio in pending.ratios():
            self._step_to_next_training_point(p, lr * ratio, beta_next)


def _multi_tensor_nigt(param_groups: list[dict], state: Any, *, sharding: NormSharding | None, name: str,
                       index_cache: dict) -> None:
    """One NIGT step over all param groups, a bucket of tensors at a time, without host reads."""
    pending = PendingNorms(sharding, index_cache)
    for bucket in buckets(param_groups, state, name):
        group = bucket.group
        momenta, _ = lean_to_reported_and_momentum(bucket, bucket.grads, group["weight_decay"])
        if not group["layer_adaptation"]:
            lean_to_next_training_point(bucket, momenta, group["lr"], group["beta"])
            continue
        direction_norms = norms(momenta, bucket.dtype)
        weight_norms = norms(bucket.params, bucket.dtype) if group["weight_norm_scaling"] else None
        if group["norm"] == "layer" and sharding is None:
            step_sizes = step_ratios(direction_norms, weight_norms, group["lr"])
            lean_to_next_training_point(bucket, momenta, step_sizes, group["beta"])
        else:
            pending.add(bucket, momenta, direction_norms, weight_norms)
    for bucket, momenta, ratios in pending.ratios():
        lean_to_next_training_point(bucket, momenta, ratios * bucket.group["lr"], bucket.group["beta"])
