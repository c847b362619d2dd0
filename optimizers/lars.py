"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017, Algorithm 1).

Per tensor l (a "layer"), with global schedule gamma_t = the group's lr, trust coefficient eta,
weight decay lam and momentum mu:

    local_lr = eta * ||w|| / (||g|| + lam * ||w||)
    v <- mu * v + gamma_t * local_lr * (g + lam * w);     w <- w - v

Why not timm.optim.Lars: it applies the lr OUTSIDE the momentum (v <- mu v + local_lr g';
w <- w - gamma_t v), which differs from the formula whenever gamma_t changes (warmup, decay); it
adds eps=1e-8 to the denominator; it sets the ratio to 1 when ||g|| = 0 even if lam > 0; and it
adapts only groups with weight_decay != 0 unless `always_adapt`. This file follows the formula
(timm's rows in tests/benchmarks/step_time.py time both). Two bodies (see `_base`).
Reference: docs/algorithms.md, "lars".
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

from ._base import NightbenchOptimizer
from ._normalization import tensor_norm
from ._foreach import Bucket, add_scaled, buckets, joined, norms, split_by_bucket
from .hyperparams import Hyperparameter, lr_param, weight_decay_param
from .registry import register_optimizer
from .search_space import COUPLED_DECAY, LR_AROUND_DEFAULT, MOMENTUM, WARMUP, WARMUP_FRACTION
from .sharding import NORM_HOOK, NormSharding, layer_indices, whole_norm_tensors, whole_norms

HYPERPARAMETERS = (
    lr_param(help="global learning rate gamma_0 (the schedule multiplies it); the step is ~gamma*eta*||w||"),
    Hyperparameter("momentum", kind=float, low=0.0, high=1.0, high_open=True, help="momentum mu"),
    weight_decay_param(help="weight decay lam inside the trust ratio and the update (LARS paper: 5e-4)"),
    Hyperparameter("trust_coefficient", kind=float, low=0.0, low_open=True, help="trust coefficient eta"),
)

# The fused kernel receives the step coefficient c as `1 - dampening`, which loses about
# 1e-16 / c of relative precision; below this c the exact (unfused) ops are used instead.
_FUSED_MIN_COEFFICIENT = 1e-6
_FUSED_DEVICES = ("cpu", "cuda")


@register_optimizer(
    "lars",
    paper="You, Gitman & Ginsburg 2017, 'Large Batch Training of Convolutional Networks' (LARS, Algorithm 1)",
    description="LARS: SGD momentum with a per-tensor trust ratio eta*||w||/(||g||+lam*||w||), lr inside the momentum",
    state_slots=1,
    family="paper",
    hyperparameters=HYPERPARAMETERS,
    search_space={"lr": LR_AROUND_DEFAULT, "momentum": MOMENTUM, "weight_decay": COUPLED_DECAY, WARMUP_FRACTION: WARMUP},
)
class Lars(NightbenchOptimizer):
    """LARS with the learning rate inside the momentum, exactly as in the paper's Algorithm 1.

    Param groups with `layer_adaptation=False` (biases, norm layers under the default policy) get
    no trust ratio: v <- mu v + gamma_t (g + lam w), with lam the group's weight_decay (0 there
    under the default policy, so they are not decayed either).

    Edge cases (documented choices): the trust ratio is 1 where ||w|| = 0 (a zero-initialized
    tensor would otherwise never move) and where ||g|| + lam ||w|| = 0 (then g = 0 and lam*w = 0,
    so the update adds nothing). With ||g|| = 0 and lam > 0 the formula is well defined (eta/lam).
    Parameters whose grad is None are skipped, as in torch's optimizers. Sparse grads are refused.

    Speed: the single-tensor body takes, per tensor, two norms and one fused SGD-momentum kernel
    (torch._fused_sgd_ with dampening = 1 - c) while the tensor is still in cache; tensors that are
    non-contiguous, on other devices, or with c < 1e-6 take plain in-place ops (same formula). Each
    tensor's norms are read back to the host (`.item()`), one synchronization per tensor on a GPU.
    The multi-tensor body keeps the ratios on the device and updates whole buckets with foreach ops.
    Holding ZeRO pieces (optimizers/sharding.py), either body first takes every piece's norms, sums
    them per layer over the ranks in one all-reduce, then steps.
    """

    SHARDING = NORM_HOOK  # on ZeRO pieces, ||w|| and ||g|| are summed per layer over the ranks

    def __init__(
        self,
        params: Iterable,
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        trust_coefficient: float = 1e-3,
        *,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust_coefficient=trust_coefficient), foreach)

    # `step` is NightbenchOptimizer's: the closure, then one of these two bodies.
    def _multi_tensor_step(self, sharding: NormSharding | None, index_cache: dict) -> None:
        _multi_tensor_lars(self.param_groups, self.state, sharding=sharding, index_cache=index_cache)

    def _single_tensor_step(self, sharding: NormSharding | None) -> None:
        waiting = []  # sharded: (group, p, ||w piece||, ||g piece||) until the layers' norms are known
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("lars does not support sparse gradients")
                if not group["layer_adaptation"]:
                    self._move(group, p, 1.0)
                elif sharding is None:  # the whole tensor: step at once, while it is in cache
                    self._move(group, p, trust_ratio(p, p.grad, group["trust_coefficient"], group["weight_decay"]))
                else:
                    waiting.append((group, p, _norm(p), _norm(p.grad)))
        if sharding is not None:  # every rank reduces once per step, even with nothing waiting
            norms = whole_norms(sharding, [(sharding.layer_of(p), (w, g)) for _, p, w, g in waiting])
            for (group, p, _, _), (w_norm, g_norm) in zip(waiting, norms):
                ratio = ratio_from_norms(w_norm, g_norm, group["trust_coefficient"], group["weight_decay"])
                self._move(group, p, ratio)

    def _move(self, group: dict, p: torch.Tensor, ratio: float) -> None:
        buffer = None
        if group["momentum"] != 0:
            state = self.state[p]
            if "momentum_buffer" not in state:  # v_0 = 0
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            buffer = state["momentum_buffer"]
        _momentum_update(p, p.grad, buffer, group["lr"] * ratio, group["momentum"], group["weight_decay"])


def trust_ratio(param: torch.Tensor, grad: torch.Tensor, trust_coefficient: float, weight_decay: float) -> float:
    """eta*||w||/(||g|| + lam*||w||); 1 where ||w|| = 0 or the denominator is 0 (see Lars)."""
    return ratio_from_norms(_norm(param), _norm(grad), trust_coefficient, weight_decay)


def _norm(t: torch.Tensor) -> float:
    return tensor_norm(t)


def ratio_from_norms(w_norm: float, g_norm: float, trust_coefficient: float, weight_decay: float) -> float:
    """The trust ratio from ||w|| and ||g|| (of a whole layer)."""
    denominator = g_norm + weight_decay * w_norm
    if w_norm == 0.0 or denominator == 0.0:
        return 1.0
    return trust_coefficient * w_norm / denominator


def _momentum_update(
    p: torch.Tensor, grad: torch.Tensor, buffer: torch.Tensor | None, coefficient: float,
    momentum: float, weight_decay: float,
) -> None:
    """v <- mu v + c (g + lam w); w <- w - v  (without momentum: w <- w - c (g + lam w))."""
    tensors = (p, grad) if buffer is None else (p, grad, buffer)
    # The fused kernels walk memory linearly: on a non-contiguous (e.g. transposed) tensor they
    # silently compute a wrong update (checked with torch 2.14), hence the contiguity test.
    fusable = (
        coefficient >= _FUSED_MIN_COEFFICIENT
        and p.device.type in _FUSED_DEVICES
        and all(t.is_contiguous() and t.dtype == p.dtype and t.device == p.device for t in tensors)
    )
    if fusable:
        # The fused kernel computes buf = mu buf + (1 - dampening)(g + lam w); w -= lr buf,
        # reading and writing each tensor once.
        torch._fused_sgd_(
            [p], [grad], [] if buffer is None else [buffer],
            weight_decay=weight_decay, momentum=momentum,
            lr=1.0 if buffer is not None else coefficient,
            dampening=1.0 - coefficient if buffer is not None else 0.0,
            nesterov=False, maximize=False, is_first_step=False,
        )
        return
    if buffer is None:
        update = grad.add(p, alpha=weight_decay) if weight_decay else grad
        p.add_(update, alpha=-coefficient)
        return
    buffer.mul_(momentum).add_(grad, alpha=coefficient)
    if weight_decay:
        buffer.add_(p, alpha=coefficient * weight_decay)
    p.sub_(buffer)


def _multi_tensor_lars(param_groups: list[dict], state: Any, *, sharding: NormSharding | None,
                       index_cache: dict) -> None:
    """One LARS step, a bucket of tensors at a time, the trust ratios kept on the device."""
    waiting: list[tuple[Bucket, torch.Tensor]] = []  # sharded: (bucket, its pieces' [||w||, ||g||])
    for bucket in buckets(param_groups, state, "lars"):
        group = bucket.group
        if not group["layer_adaptation"]:
            _multi_tensor_move(bucket, group["lr"])
            continue
        w_norms, g_norms = norms(bucket.params, bucket.dtype), norms(bucket.grads, bucket.dtype)
        if sharding is None:
            ratios = trust_ratios(w_norms, g_norms, group["trust_coefficient"], group["weight_decay"])
            _multi_tensor_move(bucket, ratios * group["lr"])
        else:
            waiting.append((bucket, torch.stack([w_norms, g_norms], dim=1)))
    if sharding is None:
        return
    if not waiting:  # every rank reduces once per step, even with nothing waiting
        empty = torch.zeros(0, 2, dtype=torch.float64)
        whole_norm_tensors(sharding, empty, torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.long))
        return
    parts = [bucket for bucket, _ in waiting]
    layers = joined([layer_indices(sharding, b.params, b.device, index_cache) for b in parts])
    whole = whole_norm_tensors(sharding, joined([p for _, p in waiting]), torch.zeros_like(layers, dtype=torch.bool),
                               layers)
    for bucket, layer_norms in zip(parts, split_by_bucket(whole, parts)):
        group = bucket.group
        ratios = trust_ratios(layer_norms[:, 0], layer_norms[:, 1], group["trust_coefficient"], group["weight_decay"])
        _multi_tensor_move(bucket, ratios * group["lr"])


def trust_ratios(w_norms: torch.Tensor, g_norms: torch.Tensor, trust_coefficient: float,
                 weight_decay: float) -> torch.Tensor:
    """`ratio_from_norms` elementwise, on the device: 1 where ||w|| = 0 or ||g|| + lam ||w|| = 0."""
    denominator = g_norms + weight_decay * w_norms if weight_decay else g_norms
    defined = (w_norms != 0) & (denominator != 0)
    return torch.where(defined, trust_coefficient * w_norms / denominator, 1.0)


def _multi_tensor_move(bucket: Bucket, coefficients: torch.Tensor | float) -> None:
    """v <- mu v + c (g + lam w); w <- w - v for a bucket (v_0 = 0), with c = lr * ratio per tensor
    (a vector) or one number for all (a group without trust ratio)."""
    group = bucket.group
    momentum, wd = group["momentum"], group["weight_decay"]
    per_tensor = isinstance(coefficients, torch.Tensor)
    if momentum == 0:  # w <- w (1 - c lam) - c g
        if wd:
            if per_tensor:
                torch._foreach_mul_(bucket.params, (1 - coefficients * wd).unbind(0))
            else:
                torch._foreach_mul_(bucket.params, 1 - coefficients * wd)
        if per_tensor:
            add_scaled(bucket.params, bucket.grads, -coefficients)
        else:
            torch._foreach_add_(bucket.params, bucket.grads, alpha=-coefficients)
        return
    for p, state in zip(bucket.params, bucket.states):
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    buffers = [state["momentum_buffer"] for state in bucket.states]
    torch._foreach_mul_(buffers, momentum)
    if per_tensor:
        factors = coefficients.unbind(0)
        torch._foreach_addcmul_(buffers, bucket.grads, factors)
        if wd:
            torch._foreach_addcmul_(buffers, bucket.params, factors, value=wd)
    else:
        torch._foreach_add_(buffers, bucket.grads, alpha=coefficients)
        if wd:
            torch._foreach_add_(buffers, bucket.params, alpha=coefficients * wd)
    torch._foreach_sub_(bucket.params, buffers)
