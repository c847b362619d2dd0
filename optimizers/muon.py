"""Muon for the hidden weight matrices, AdamW for every other tensor, in one optimizer and one step().

Muon (Jordan et al. 2024; Liu et al. 2025 for weight decay and the RMS-matched lr) orthogonalizes
each matrix's momentum with a Newton-Schulz iteration. It is meant for the hidden layers only:
embeddings, the output head, biases and norm layers are trained by AdamW (Jordan et al.; the grouping
is the param-group policy's, HIDDEN_MATRIX_RULE in param_groups.py). The update of each part is
torch's own: `torch.optim._muon.muon` (the function behind torch.optim.Muon) on the group marked
`hidden_matrix`, and torch.optim.AdamW's `_init_group` + `adam` on the others.

torch's Muon takes 2-D tensors only; a convolution weight (out, in, kh, kw) is updated as its
(out, in*kh*kw) view, which shares the parameter's storage, so the update lands in the parameter.

adjust_lr_fn (torch's names) scales the Muon part's lr per matrix of shape (A, B):
  original         lr * sqrt(max(1, A/B))       (Jordan et al.: Muon's own lr, ~0.02, AdamW's apart)
  match_rms_adamw  lr * 0.2 * sqrt(max(A, B))   (Liu et al. 2025: the update's RMS matches AdamW's)
  spectral_unclamped  lr * sqrt(A/B)            (Bernstein)
The default here is match_rms_adamw: with it one lr and one weight decay serve both parts (Liu et al.
reuse AdamW's tuned values), which is what a tuning protocol with one lr can search. torch's own
default is 'original'.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, EPS as NS_EPS, muon
from torch.optim.adam import adam

from ._base import run_closure
from .hyperparams import Hyperparameter, beta_param, eps_param, lr_param, weight_decay_param
from .registry import register_optimizer
from .search_space import DECOUPLED_DECAY, LR_AROUND_DEFAULT, MOMENTUM, SECOND_MOMENT, WARMUP, WARMUP_FRACTION

ADJUST_LR_FNS = ("original", "match_rms_adamw", "spectral_unclamped")


def as_matrix(tensor: torch.Tensor) -> torch.Tensor:
    """The (out, in*k*k) view of a weight: shares its storage, so in-place updates reach it."""
    return tensor if tensor.ndim == 2 else tensor.view(tensor.shape[0], -1)


class MuonWithAdamW(torch.optim.AdamW):
    """torch's Muon update for the groups with `hidden_matrix: True`, torch's AdamW for the others.

    State: `momentum_buffer` (Muon) or AdamW's `step`, `exp_avg`, `exp_avg_sq`. A group without the
    `hidden_matrix` key (ready-made groups) is Muon's if all its tensors have ndim >= 2.
    """

    def __init__(self, params: Any, lr: float = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True, ns_steps: int = 5, adjust_lr_fn: str = "match_rms_adamw",
                 beta1: float = 0.9, beta2: float = 0.95, eps: float = 1e-8) -> None:
        if adjust_lr_fn not in ADJUST_LR_FNS:
            raise ValueError(f"invalid adjust_lr_fn {adjust_lr_fn!r}: expected one of {ADJUST_LR_FNS}")
        # Read by add_param_group, which AdamW's __init__ calls for each group.
        self._muon_defaults = {"momentum": momentum, "nesterov": nesterov, "ns_steps": ns_steps,
                               "adjust_lr_fn": adjust_lr_fn}
        super().__init__(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.setdefault("hidden_matrix", all(p.ndim >= 2 for p in group["params"]))
        for key, value in self._muon_defaults.items():
            group.setdefault(key, value)
        if group["hidden_matrix"] and any(p.ndim < 2 for p in group["params"]):
            raise ValueError("a group marked hidden_matrix holds a tensor with ndim < 2: Muon takes matrices")

    def __setstate__(self, state: dict) -> None:
        # Adam's __setstate__ expects AdamW state ('step') in every group: show it the AdamW groups only.
        groups = state["param_groups"]
        super().__setstate__({**state, "param_groups": [g for g in groups if not g.get("hidden_matrix")]})
        self.param_groups = groups

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            if group["hidden_matrix"]:
                self._muon_group(group)
            else:
                self._adamw_group(group)
        return loss

    def _muon_group(self, group: dict) -> None:
        params, grads, buffers, writebacks = [], [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("Muon does not support sparse gradients")
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
            if p.is_contiguous():
                params.append(as_matrix(p))
            else:  # e.g. channels_last: update a contiguous copy, then write it back
                params.append(as_matrix(p.contiguous()))
                writebacks.append((p, params[-1]))
            grads.append(as_matrix(p.grad.contiguous()))
            buffers.append(as_matrix(state["momentum_buffer"]))
        muon(params, grads, buffers, lr=group["lr"], weight_decay=group["weight_decay"], momentum=group["momentum"],
             nesterov=group["nesterov"], ns_coefficients=(DEFAULT_A, DEFAULT_B, DEFAULT_C), eps=NS_EPS,
             ns_steps=group["ns_steps"], adjust_lr_fn=group["adjust_lr_fn"], has_complex=False)
        for p, updated in writebacks:
            p.copy_(updated.view(p.shape))

    def _adamw_group(self, group: dict) -> None:
        """torch.optim.Adam.step's body for one group (AdamW: decoupled_weight_decay is set by AdamW)."""
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps = [], [], [], [], [], []
        has_complex = self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps)
        beta1, beta2 = group["betas"]
        adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, amsgrad=group["amsgrad"],
             has_complex=has_complex, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
             eps=group["eps"], maximize=group["maximize"], foreach=group["foreach"], capturable=group["capturable"],
             differentiable=group["differentiable"], fused=group["fused"], grad_scale=getattr(self, "grad_scale", None),
             found_inf=getattr(self, "found_inf", None), decoupled_weight_decay=group["decoupled_weight_decay"])


@register_optimizer(
    "muon",
    paper="Jordan et al. 2024, Muon: an optimizer for hidden layers (kellerjordan.github.io/posts/muon); "
          "Liu et al. 2025, Muon is Scalable for LLM Training (arXiv:2502.16982); torch.optim.Muon",
    description="Muon (torch's) on the hidden weight matrices, AdamW on embeddings, head, biases and norms",
    state_slots=1,
    family="modern",
    package="torch",
    splits_hidden_matrices=True,
    hyperparameters=[
        lr_param(help="lr of both parts (the Muon part scaled per matrix by adjust_lr_fn)"),
        weight_decay_param(help="decoupled weight decay of both parts (multiplied by lr)"),
        beta_param("momentum", help="Muon's momentum"),
        Hyperparameter("nesterov", kind=bool, help="Muon's Nesterov momentum"),
        Hyperparameter("ns_steps", kind=int, low=1, high=99, help="Newton-Schulz iterations"),
        Hyperparameter("adjust_lr_fn", kind=str, choices=ADJUST_LR_FNS,
                       help="Muon's per-matrix lr scaling (match_rms_adamw: one lr serves both parts)"),
        beta_param("beta1", help="AdamW part: first-moment decay"),
        beta_param("beta2", help="AdamW part: second-moment decay"),
        eps_param(),
    ],
    search_space={"lr": LR_AROUND_DEFAULT, "weight_decay": DECOUPLED_DECAY, "momentum": MOMENTUM,
                  "beta2": SECOND_MOMENT, WARMUP_FRACTION: WARMUP},
)
def make_muon(param_groups, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_steps=5,
              adjust_lr_fn="match_rms_adamw", beta1=0.9, beta2=0.95, eps=1e-8):
    # Defaults: torch.optim.Muon's (lr, weight decay 0.1, momentum 0.95, Nesterov, 5 steps); AdamW
    # betas (0.9, 0.95) as Liu et al. train their AdamW part.
    return MuonWithAdamW(param_groups, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                         ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn, beta1=beta1, beta2=beta2, eps=eps)
