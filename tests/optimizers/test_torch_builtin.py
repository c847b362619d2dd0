"""The registered `sgd` and `adam` against naive references written from their formulas, float64.

sgd (torch's convention, lr outside the momentum; L2 decay added to the gradient):
    d = g + lam w;  b = d at the first step, else b = mu b + d;  step = d + mu b (Nesterov) or b
    w <- w - eta_t step
adam:  g' = g + lam w (L2) or g' = g with w <- w (1 - eta_t lam) first (decoupled, AdamW)
    m <- b1 m + (1-b1) g';  v <- b2 v + (1-b2) g'^2;  w <- w - eta_t m_hat / (sqrt(v_hat) + eps)
"""

from __future__ import annotations

import pytest
import torch

from nightbench.optimizers import ParamGroupPolicy, create

from .conformance import (
    assert_resume_is_bit_identical,
    max_relative_error,
    oscillating_schedule,
    point_gradient,
    run_packaged,
)

STEPS = 210
SHAPES = [(6, 5), (5,), (4, 3, 2), (7,)]


def make_params(seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in SHAPES]


def reference_sgd(params, groups, base_lrs, momentum, nesterov):
    w = [p.detach().clone() for p in params]
    b = [None] * len(w)
    index = {id(p): i for i, p in enumerate(params)}
    for t in range(STEPS):
        grads = [point_gradient(w[i], i, t) for i in range(len(w))]
        for group, base in zip(groups, base_lrs):
            for p in group["params"]:
                i = index[id(p)]
                d = grads[i] + group["weight_decay"] * w[i]
                b[i] = d if b[i] is None else momentum * b[i] + d
                direction = d + momentum * b[i] if nesterov else b[i]
                w[i] = w[i] - oscillating_schedule(t, base) * direction
    return w


def reference_adam(params, groups, base_lrs, b1, b2, eps, decoupled):
    w = [p.detach().clone() for p in params]
    m = [torch.zeros_like(x) for x in w]
    v = [torch.zeros_like(x) for x in w]
    index = {id(p): i for i, p in enumerate(params)}
    for t in range(1, STEPS + 1):
        grads = [point_gradient(w[i], i, t - 1) for i in range(len(w))]
        for group, base in zip(groups, base_lrs):
            lr, lam = oscillating_schedule(t - 1, base), group["weight_decay"]
            for p in group["params"]:
                i = index[id(p)]
                g = grads[i]
                if decoupled:
                    w[i] = w[i] * (1 - lr * lam)
                else:
                    g = g + lam * w[i]
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                w[i] = w[i] - lr * (m[i] / (1 - b1 ** t)) / (torch.sqrt(v[i] / (1 - b2 ** t)) + eps)
    return w


# Decay on excluded tensors too, so both groups exercise it (lam differs from 0 everywhere).
POLICY = ParamGroupPolicy(excluded_lr_multiplier=0.5, excluded_weight_decay=True)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.02])
def test_sgd_matches_the_formula(nesterov, weight_decay):
    params = make_params(seed=1)
    start = [p.detach().clone() for p in params]
    optimizer = create("sgd", params, policy=POLICY, lr=0.05, momentum=0.8, nesterov=nesterov,
                       weight_decay=weight_decay)
    groups = [dict(g) for g in optimizer.param_groups]
    base_lrs = [g["lr"] for g in groups]
    expected = reference_sgd(params, groups, base_lrs, 0.8, nesterov)
    run_packaged(optimizer, params, STEPS, base_lrs)
    assert max_relative_error(params, expected) < 1e-10
    assert max_relative_error(params, start) > 1e-2


@pytest.mark.parametrize("decoupled", [True, False])
def test_adam_matches_the_formula(decoupled):
    params = make_params(seed=2)
    start = [p.detach().clone() for p in params]
    optimizer = create("adam", params, policy=POLICY, lr=0.01, beta1=0.85, beta2=0.99, eps=1e-7,
                       weight_decay=0.1, decoupled_weight_decay=decoupled)
    expected_class = torch.optim.AdamW if decoupled else torch.optim.Adam
    assert type(optimizer) is expected_class
    groups = [dict(g) for g in optimizer.param_groups]
    base_lrs = [g["lr"] for g in groups]
    expected = reference_adam(params, groups, base_lrs, 0.85, 0.99, 1e-7, decoupled)
    run_packaged(optimizer, params, STEPS, base_lrs)
    assert max_relative_error(params, expected) < 1e-10
    assert max_relative_error(params, start) > 1e-2


def test_decoupled_and_l2_decay_really_differ():
    """Guards the test above: with decay the two references must disagree, or it proves nothing."""
    params = make_params(seed=2)
    groups = [{"params": params, "weight_decay": 0.1}]
    a = reference_adam(params, groups, [0.01], 0.85, 0.99, 1e-7, True)
    b = reference_adam(params, groups, [0.01], 0.85, 0.99, 1e-7, False)
    assert max_relative_error(a, b) > 1e-4


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="nesterov"):
        create("sgd", make_params(0), nesterov=True, momentum=0.0)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_state_dict_resume_gives_the_same_parameters(name):
    assert_resume_is_bit_identical(lambda ps: create(name, ps, lr=0.01, weight_decay=0.01), make_params(seed=3), steps=20)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_zero_gradients_stay_finite(name):
    p = torch.nn.Parameter(torch.zeros(3, 3))
    optimizer = create(name, [p], lr=0.1)
    for _ in range(3):
        p.grad = torch.zeros(3, 3)
        optimizer.step()
    assert torch.equal(p.detach(), torch.zeros(3, 3))
