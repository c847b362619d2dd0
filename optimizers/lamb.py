"""LAMB: layer-wise adaptive moments (You et al. 2019, Algorithm 2), with bias correction.

Per tensor, at step t with learning rate eta_t (the group's lr after its schedule):

    m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2;   m_hat = m/(1 - b1^t);  v_hat = v/(1 - b2^t)
    r = m_hat / (sqrt(v_hat) + eps);   u = r + lam w;   w <- w - eta_t * phi(||w||)/||u|| * u

phi is the identity or a clamp to [phi_min, phi_max]; the ratio is 1 where ||w|| or ||u|| is 0.

Why not timm.optim.Lamb: by default it clips the GLOBAL gradient norm to 1.0 before the moments
(max_grad_norm=1.0; can be disabled); it applies the trust ratio exactly when weight_decay != 0
or `always_adapt`, so "decayed but not adapted" (policy excluded_weight_decay=True) cannot be
expressed; its only clamp is min(ratio, 1), not phi(||w||). Configured faithfully (no clipping,
always_adapt per group) it matches the formula (timm's rows in tests/benchmarks/step_time.py
time both). Two bodies (see `_base`).
Reference: docs/algorithms.md, "lamb".
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import torch

from ._base import NightbenchOptimizer
from ._normalization import tensor_norm
from ._foreach import Bucket, add_scaled, buckets, joined, norms, split_by_bucket
from .hyperparams import Hyperparameter, HyperparameterError, beta_param, eps_param, lr_param, weight_decay_param
from .registry import register_optimizer
from .search_space import DECOUPLED_DECAY, LR_AROUND_DEFAULT, MOMENTUM, SECOND_MOMENT, WARMUP, WARMUP_FRACTION
from .sharding import NORM_HOOK, NormSharding, layer_indices, whole_norm_tensors, whole_norms

HYPERPARAMETERS = (
    lr_param(),
    beta_param("beta1", help="first-moment decay"),
    beta_param("beta2", help="second-moment decay"),
    eps_param(),
    weight_decay_param(help="decoupled weight decay lam inside u = r + lam*w (LAMB paper, BERT: 0.01)"),
    Hyperparameter("phi", kind=str, choices=("identity", "clamp"),
                   help="scaling of ||w|| in the trust ratio: identity, or clamp to [phi_min, phi_max]"),
    Hyperparameter("phi_min", kind=float, low=0.0, help="lower clamp of ||w|| when phi='clamp'"),
    Hyperparameter("phi_max", kind=float, low=0.0, help="upper clamp of ||w|| when phi='clamp'"),
)
_FUSED_DEVICES = ("cpu", "cuda")


@register_optimizer(
    "lamb",
    paper="You et al. 2019, 'Large Batch Optimization for Deep Learning: Training BERT in 76 minutes' (LAMB)",
    description="LAMB: Adam direction plus decoupled decay, scaled per tensor by phi(||w||)/||u||",
    state_slots=2,
    family="paper",
    hyperparameters=HYPERPARAMETERS,
    search_space={"lr": LR_AROUND_DEFAULT, "beta1": MOMENTUM, "beta2": SECOND_MOMENT, "weight_decay": DECOUPLED_DECAY,
                  WARMUP_FRACTION: WARMUP},
)
class Lamb(NightbenchOptimizer):
    """LAMB as in the paper's Algorithm 2 (bias-corrected moments, per-tensor trust ratio).

    Param groups with `layer_adaptation=False` (biases, norm layers under the default policy) get
    no trust ratio: w <- w - eta_t (r + lam w), with lam the group's weight_decay (0 there under
    the default policy, so they are not decayed either).

    Deviations and choices: no gradient clipping (unlike timm's and NVIDIA's defaults); the
    step count t is kept per tensor (`state['step']`, a 0-dim float32 tensor) like torch's Adam; a
    state dict whose steps are plain numbers loads too. Grads that are None are skipped; sparse
    grads are refused. Zero gradients give r = 0, so u = lam w.

    Speed, single-tensor body: per tensor, torch's fused Adam kernel (torch._fused_adam_) writes -u into a scratch
    buffer seeded with -lam w, then two norms and one axpy while the tensor is in cache. The
    scratch buffer, the size of the largest parameter tensor, is kept between steps on
    `self._scratch` (not optimizer state: it is not saved and holds nothing between steps).
    Non-contiguous tensors and other devices take plain in-place ops (same formula). Holding ZeRO
    pieces (optimizers/sharding.py), it keeps each piece's -u (transient memory: one copy of the
    pieces), sums the pieces' squared norms per layer over the ranks in one all-reduce, then steps.
    Multi-tensor body: the same kernel over a whole bucket (writing -u for all its tensors: one
    transient copy of the bucket), the norms and ratios on the device, one foreach update.
    """

    SHARDING = NORM_HOOK  # on ZeRO pieces, ||w|| and ||u|| are summed per layer over the ranks

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        phi: str = "identity",
        phi_min: float = 0.0,
        phi_max: float = 10.0,
        *,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(params, dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                                      phi=phi, phi_min=phi_min, phi_max=phi_max), foreach)
        self._scratch: dict[tuple, torch.Tensor] = {}

    @staticmethod
    def check_hyperparameters(values: Mapping[str, Any]) -> None:
        if values["phi_min"] > values["phi_max"]:
            raise HyperparameterError(f"phi_min={values['phi_min']} must be <= phi_max={values['phi_max']}")

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._scratch = {}

    # `step` is NightbenchOptimizer's: the closure, then one of these two bodies.
    def _multi_tensor_step(self, sharding: NormSharding | None, index_cache: dict) -> None:
        _multi_tensor_lamb(self.param_groups, self.state, sharding=sharding, index_cache=index_cache)

    def _single_tensor_step(self, sharding: NormSharding | None) -> None:
        waiting: list | None = [] if sharding is not None else None  # sharded: (p, -u, group) until norms are known
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("lamb does not support sparse gradients")
                state = self.state[p]
                _prepare_state(state, p)
                state["step"] += 1
                self._update(p, p.grad, state, group, waiting)
        if sharding is not None:  # every rank reduces once per step, even with nothing waiting
            pieces = [(sharding.layer_of(p), (_norm(p), _norm(neg_u))) for p, neg_u, _ in waiting]
            for (p, neg_u, group), (w_norm, u_norm) in zip(waiting, whole_norms(sharding, pieces)):
                p.add_(neg_u, alpha=group["lr"] * self._ratio_from_norms(w_norm, u_norm, group))

    def _update(self, p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict, waiting: list | None) -> None:
        """Update the moments and, unless `waiting` collects it for the layers' norms, p."""
        lr, weight_decay = group["lr"], group["weight_decay"]
        exp_avg, exp_avg_sq, step = state["exp_avg"], state["exp_avg_sq"], state["step"]
        # Fused kernels silently mis-handle non-contiguous tensors (see lars.py): check first.
        fusable = p.device.type in _FUSED_DEVICES and all(
            t.is_contiguous() and t.dtype == p.dtype and t.device == p.device for t in (p, grad, exp_avg, exp_avg_sq)
        )
        adam_args = dict(beta1=group["beta1"], beta2=group["beta2"], eps=group["eps"], amsgrad=False, maximize=False)
        if not group["layer_adaptation"]:
            if fusable:  # AdamW's kernel: w <- w (1 - eta lam) - eta r  ==  w - eta (r + lam w)
                torch._fused_adamw_([p], [grad], [exp_avg], [exp_avg_sq], [], [step],
                                    lr=lr, weight_decay=weight_decay, **adam_args)
            else:
                p.add_(_negative_update(p, grad, exp_avg, exp_avg_sq, step, group), alpha=lr)
            return
        if fusable:
            # -u waits for the norms of other ranks' pieces when sharded: it needs its own buffer
            neg_u = self._scratch_like(p) if waiting is None else torch.empty_like(p)
            if weight_decay:
                torch.mul(p, -weight_decay, out=neg_u)
            else:
                neg_u.zero_()
            # Adam's kernel on the scratch "parameter" with lr 1: neg_u <- -lam w - r = -u
            torch._fused_adam_([neg_u], [grad], [exp_avg], [exp_avg_sq], [], [step],
                               lr=1.0, weight_decay=0.0, **adam_args)
        else:
            neg_u = _negative_update(p, grad, exp_avg, exp_avg_sq, step, group)
        if waiting is not None:
            waiting.append((p, neg_u, group))
            return
        p.add_(neg_u, alpha=lr * self._ratio_from_norms(_norm(p), _norm(neg_u), group))

    @staticmethod
    def _ratio_from_norms(w_norm: float, u_norm: float, group: dict) -> float:
        """phi(||w||)/||u|| of a whole layer, or 1 where ||w|| or ||u|| is 0."""
        if w_norm == 0.0 or u_norm == 0.0:
            return 1.0
        if group["phi"] == "clamp":
            w_norm = min(max(w_norm, group["phi_min"]), group["phi_max"])
        return w_norm / u_norm

    def _scratch_like(self, p: torch.Tensor) -> torch.Tensor:
        """A reusable buffer shaped like p (grown to the largest tensor seen, per dtype and device)."""
        key = (p.dtype, p.device)
        buffer = self._scratch.get(key)
        if buffer is None or buffer.numel() < p.numel():
            buffer = self._scratch[key] = torch.empty(p.numel(), dtype=p.dtype, device=p.device)
        return buffer[: p.numel()].view_as(p)


def _norm(t: torch.Tensor) -> float:
    return tensor_norm(t)


def _negative_update(
    p: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
    step: torch.Tensor, group: dict,
) -> torch.Tensor:
    """-(r + lam w) with plain in-place ops, updating the moments (the unfused path)."""
    beta1, beta2, t = group["beta1"], group["beta2"], step.item()
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denominator = exp_avg_sq.sqrt().div_(math.sqrt(1 - beta2 ** t)).add_(group["eps"])
    neg_u = torch.div(exp_avg, denominator, out=denominator).mul_(-1 / (1 - beta1 ** t))
    if group["weight_decay"]:
        neg_u.add_(p, alpha=-group["weight_decay"])
    return neg_u


def _prepare_state(state: dict, p: torch.Tensor) -> None:
    """Create a tensor's state, or bring a loaded one into shape: the step a float32 tensor on p's device.

    A state dict may carry the step as a plain number (saved by another implementation) or on
    another device (a CPU checkpoint loaded for a GPU model).
    """
    if not state:
        state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    elif not isinstance(state["step"], torch.Tensor):
        state["step"] = torch.tensor(float(state["step"]), dtype=torch.float32, device=p.device)
    elif state["step"].device != p.device or state["step"].dtype != torch.float32:
        state["step"] = state["step"].to(p.device, torch.float32)


def _multi_tensor_lamb(param_groups: list[dict], state: Any, *, sharding: NormSharding | None,
                       index_cache: dict) -> None:
    """One LAMB step, a bucket of tensors at a time, the trust ratios kept on the device."""
    waiting: list[tuple[Bucket, list[torch.Tensor], torch.Tensor]] = []  # sharded: (bucket, -u, [||w||, ||u||])
    for bucket in buckets(param_groups, state, "lamb"):
        group = bucket.group
        for p, s in zip(bucket.params, bucket.states):
            _prepare_state(s, p)
        steps = [s["step"] for s in bucket.states]
        torch._foreach_add_(steps, 1)
        if not group["layer_adaptation"] and _fusable(bucket):  # AdamW's kernel: w - eta (r + lam w)
            torch._fused_adamw_(bucket.params, bucket.grads, [s["exp_avg"] for s in bucket.states],
                                [s["exp_avg_sq"] for s in bucket.states], [], steps,
                                lr=group["lr"], weight_decay=group["weight_decay"], **_adam_arguments(group))
            continue
        neg_u = _multi_tensor_negative_update(bucket, steps)
        if not group["layer_adaptation"]:
            torch._foreach_add_(bucket.params, neg_u, alpha=group["lr"])
            continue
        w_norms, u_norms = norms(bucket.params, bucket.dtype), norms(neg_u, bucket.dtype)
        if sharding is None:
            add_scaled(bucket.params, neg_u, trust_ratios(w_norms, u_norms, group) * group["lr"])
        else:
            waiting.append((bucket, neg_u, torch.stack([w_norms, u_norms], dim=1)))
    if sharding is None:
        return
    if not waiting:  # every rank reduces once per step, even with nothing waiting
        empty = torch.zeros(0, 2, dtype=torch.float64)
        whole_norm_tensors(sharding, empty, torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.long))
        return
    parts = [bucket for bucket, _, _ in waiting]
    layers = joined([layer_indices(sharding, b.params, b.device, index_cache) for b in parts])
    whole = whole_norm_tensors(sharding, joined([p for _, _, p in waiting]),
                               torch.zeros_like(layers, dtype=torch.bool), layers)
    for (bucket, neg_u, _), layer_norms in zip(waiting, split_by_bucket(whole, parts)):
        ratios = trust_ratios(layer_norms[:, 0], layer_norms[:, 1], bucket.group)
        add_scaled(bucket.params, neg_u, ratios * bucket.group["lr"])


def trust_ratios(w_norms: torch.Tensor, u_norms: torch.Tensor, group: dict) -> torch.Tensor:
    """phi(||w||)/||u|| per tensor, on the device; 1 where either norm is 0."""
    scaled = w_norms.clamp(group["phi_min"], group["phi_max"]) if group["phi"] == "clamp" else w_norms
    return torch.where((w_norms != 0) & (u_norms != 0), scaled / u_norms, 1.0)


def _adam_arguments(group: dict) -> dict:
    return dict(beta1=group["beta1"], beta2=group["beta2"], eps=group["eps"], amsgrad=False, maximize=False)


def _fusable(bucket: Bucket) -> bool:
    """Whether torch's fused Adam kernel can run on the bucket (it mis-handles non-contiguous tensors)."""
    return (not torch.compiler.is_compiling() and bucket.device.type in _FUSED_DEVICES
            and all(p.is_contiguous() and g.is_contiguous() and g.dtype == p.dtype
                    and s["exp_avg"].is_contiguous() and s["exp_avg_sq"].is_contiguous()
                    for p, g, s in zip(bucket.params, bucket.grads, bucket.states)))


def _multi_tensor_negative_update(bucket: Bucket, steps: list[torch.Tensor]) -> list[torch.Tensor]:
    """-(r + lam w) for every tensor of the bucket (new tensors), updating the moments in place."""
    group = bucket.group
    exp_avgs = [s["exp_avg"] for s in bucket.states]
    exp_avg_sqs = [s["exp_avg_sq"] for s in bucket.states]
    wd = group["weight_decay"]
    if _fusable(bucket):  # Adam's kernel on the -lam w "parameters" with lr 1: they become -lam w - r
        neg_u = torch._foreach_mul(bucket.params, -wd)
        if not wd:
            torch._foreach_zero_(neg_u)
        torch._fused_adam_(neg_u, bucket.grads, exp_avgs, exp_avg_sqs, [], steps,
                           lr=1.0, weight_decay=0.0, **_adam_arguments(group))
        return neg_u
    beta1, beta2 = group["beta1"], group["beta2"]
    torch._foreach_lerp_(exp_avgs, bucket.grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, bucket.grads, bucket.grads, value=1 - beta2)
    t = torch.stack(steps).to(bucket.dtype)
    neg_u = torch._foreach_sqrt(exp_avg_sqs)  # then sqrt(v_hat) + eps, inverted, times -m_hat
    torch._foreach_div_(neg_u, (1 - beta2**t).sqrt().unbind(0))
    torch._foreach_add_(neg_u, group["eps"])
    torch._foreach_reciprocal_(neg_u)
    torch._foreach_mul_(neg_u, exp_avgs)
    torch._foreach_mul_(neg_u, (-1 / (1 - beta1**t)).unbind(0))
    if wd:
        torch._foreach_add_(neg_u, bucket.params, alpha=-wd)
    return neg_u
