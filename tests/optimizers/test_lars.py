"""LARS against a naive reference written from the formula (docs/algorithms.md, "lars"), float64.

    local = eta ||w|| / (||g|| + lam ||w||)   (1 where ||w|| = 0 or the denominator is 0)
    v <- mu v + gamma_t local (g + lam w);   w <- w - v
Groups with layer_adaptation=False use local = 1.
"""

from __future__ import annotations

import pytest
import torch

from nightbench.optimizers import ParamGroupPolicy, create
from nightbench.optimizers.lars import Lars

from .conformance import (
    assert_resume_is_bit_identical,
    max_relative_error,
    reference_run,
    run_packaged,
)

STEPS = 220
SHAPES = [(6, 5), (5,), (4, 3, 2), (7,), (3, 8)]


def make_params(seed: int, transposed: bool = False) -> list[torch.Tensor]:
    """Random float64 tensors; `transposed` makes the matrices non-contiguous (the unfused path)."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for shape in SHAPES:
        if transposed and len(shape) == 2:
            t = torch.randn(shape[::-1], generator=gen, dtype=torch.float64).t()
        else:
            t = torch.randn(shape, generator=gen, dtype=torch.float64)
        params.append(torch.nn.Parameter(t))
    return params


def reference_lars(params, groups, steps, base_lrs, momentum, trust_coefficient):
    """The formula, written plainly with fresh tensors (no in-place tricks)."""
    def update(w, v, g, lr, group):
        lam = group["weight_decay"]
        if group["layer_adaptation"]:
            wn, gn = w.norm().item(), g.norm().item()
            denom = gn + lam * wn
            local = 1.0 if wn == 0 or denom == 0 else trust_coefficient * wn / denom
        else:
            local = 1.0
        v = momentum * v + lr * local * (g + lam * w)
        return w - v, v
    return reference_run(params, groups, base_lrs, steps, update)


@pytest.fixture
def fused_calls(monkeypatch):
    """Count calls of the fused kernel, so each test knows which code path it covered."""
    calls = []
    original = torch._fused_sgd_

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "_fused_sgd_", counting)
    return calls


@pytest.mark.parametrize(
    "path,lr,momentum,weight_decay,excluded_decay",
    [
        ("fused", 2.0, 0.9, 5e-3, False),
        ("fused", 2.0, 0.0, 5e-3, True),      # no momentum; excluded tensors decayed, not adapted
        ("fused", 3.0, 0.9, 0.0, False),
        ("unfused", 2.0, 0.9, 5e-3, False),  # non-contiguous tensors
        ("tiny_lr", 2e-5, 0.9, 5e-3, False),  # step coefficients near and below the fused threshold
    ],
)
def test_matches_the_formula_for_200_steps(fused_calls, path, lr, momentum, weight_decay, excluded_decay):
    params = make_params(seed=1, transposed=(path == "unfused"))
    policy = ParamGroupPolicy(excluded_lr_multiplier=0.1, excluded_weight_decay=excluded_decay)
    trust = 0.02
    optimizer = create("lars", params, policy=policy, lr=lr, momentum=momentum,
                       weight_decay=weight_decay, trust_coefficient=trust)
    groups = [dict(g) for g in optimizer.param_groups]
    assert [g["layer_adaptation"] for g in groups] == [True, False]
    base_lrs = [g["lr"] for g in groups]
    start = [p.detach().clone() for p in params]
    expected = reference_lars(params, groups, STEPS, base_lrs, momentum, trust)

    run_packaged(optimizer, params, STEPS, base_lrs)

    assert max_relative_error(params, expected) < 1e-10
    # Also relative to how far the weights moved, which is much stricter for small steps.
    displacement = max(((a.detach() - b).norm() / (b - s).norm()).item()
                       for a, b, s in zip(params, expected, start))
    assert displacement < 1e-8
    assert max_relative_error(params, start) > (1e-5 if path == "tiny_lr" else 1e-2)  # it really moved
    total = STEPS * len(params)
    if path == "fused":
        assert len(fused_calls) == total
    elif path == "unfused":  # only the contiguous (non-matrix) tensors can use the kernel
        assert len(fused_calls) == STEPS * sum(p.is_contiguous() for p in params) < total
    else:
        assert 0 < len(fused_calls) < total


def test_learning_rate_sits_inside_the_momentum():
    """Halving the lr mid-run halves only the new contributions to v (timm's Lars would halve v)."""
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = Lars([p], lr=1.0, momentum=0.9, weight_decay=0.0, trust_coefficient=1.0)
    p.grad = torch.ones(3, dtype=torch.float64)  # ||w|| = ||g||: local lr = 1
    optimizer.step()
    v1 = optimizer.state[p]["momentum_buffer"].clone()
    assert torch.allclose(v1, torch.ones(3, dtype=torch.float64))
    optimizer.param_groups[0]["lr"] = 0.5
    before = p.detach().clone()
    p.grad = p.detach().clone()  # keep ||w|| = ||g||
    optimizer.step()
    v2 = 0.9 * v1 + 0.5 * p.grad
    assert torch.allclose(optimizer.state[p]["momentum_buffer"], v2, rtol=1e-14)
    assert torch.allclose(p.detach(), before - v2, rtol=1e-14)


def test_zero_gradient_and_zero_weights_stay_finite():
    zero_w = torch.nn.Parameter(torch.zeros(4, 3))
    zero_g = torch.nn.Parameter(torch.randn(4, 3))
    optimizer = Lars([zero_w, zero_g], lr=0.5, momentum=0.9, weight_decay=1e-2)
    zero_w.grad = torch.randn(4, 3)
    zero_g.grad = torch.zeros(4, 3)
    before = zero_g.detach().clone()
    optimizer.step()
    # ||w|| = 0: ratio 1, so a plain SGD step (the decay term is 0 at w = 0)
    assert torch.allclose(zero_w.detach(), -0.5 * zero_w.grad)
    # ||g|| = 0, lam > 0: ratio eta/lam, update = lr (eta/lam) lam w = lr eta w
    assert torch.allclose(zero_g.detach(), before * (1 - 0.5 * 1e-3), rtol=1e-6)
    for _ in range(3):
        zero_w.grad = torch.zeros(4, 3)
        optimizer.step()
    assert all(torch.isfinite(p).all() for p in (zero_w, zero_g))


def test_zero_gradient_without_decay_leaves_weights_alone():
    p = torch.nn.Parameter(torch.randn(5, 5))
    before = p.detach().clone()
    optimizer = Lars([p], lr=1.0, weight_decay=0.0)
    p.grad = torch.zeros(5, 5)
    optimizer.step()
    assert torch.equal(p.detach(), before)


def test_state_dict_resume_gives_the_same_parameters():
    assert_resume_is_bit_identical(lambda ps: create("lars", ps, lr=2.0, weight_decay=1e-3, trust_coefficient=0.02),
                                   make_params(seed=3))


def test_closure_loss_is_returned_and_grads_are_not_modified():
    p = torch.nn.Parameter(torch.randn(3, 4))
    optimizer = Lars([p])

    def closure():
        optimizer.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert loss.item() > 0
    assert torch.allclose(p.grad, 2 * (p.detach() + optimizer.state[p]["momentum_buffer"]))
    assert "Lars" in repr(optimizer)


def test_invalid_hyperparameters_fail_by_name():
    p = [torch.nn.Parameter(torch.randn(2, 2))]
    with pytest.raises(ValueError, match="lr"):
        Lars(p, lr=-1.0)
    with pytest.raises(ValueError, match="momentum.*\\[0, 1\\)"):
        Lars(p, momentum=1.0)
    with pytest.raises(ValueError, match="trust_coefficient"):
        Lars(p, trust_coefficient=0.0)


@pytest.mark.parametrize("transposed", [False, True], ids=["contiguous", "non-contiguous"])
@pytest.mark.parametrize("momentum,weight_decay", [(0.9, 5e-3), (0.0, 5e-3), (0.9, 0.0)])
def test_lars_multi_tensor_matches_the_formula(transposed, momentum, weight_decay):
    params = make_params(seed=1, transposed=transposed)
    policy = ParamGroupPolicy(excluded_lr_multiplier=0.1, excluded_weight_decay=True)
    optimizer = create("lars", params, policy=policy, lr=2.0, momentum=momentum, weight_decay=weight_decay,
                       trust_coefficient=0.02, foreach=True)
    groups = [dict(g) for g in optimizer.param_groups]
    base_lrs = [g["lr"] for g in groups]
    start = [p.detach().clone() for p in params]
    expected = reference_lars(params, groups, STEPS, base_lrs, momentum, 0.02)
    run_packaged(optimizer, params, STEPS, base_lrs)
    assert max_relative_error(params, expected) < 1e-10
    assert max_relative_error(params, start) > 1e-2  # it really moved
