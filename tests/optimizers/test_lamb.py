"""LAMB against a naive reference written from the formula (docs/algorithms.md, "lamb"), float64.

    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  m_hat = m/(1-b1^t);  v_hat = v/(1-b2^t)
    r = m_hat/(sqrt(v_hat) + eps);  u = r + lam w;  w <- w - eta_t phi(||w||)/||u|| u
The ratio is 1 where ||w|| or ||u|| is 0; groups with layer_adaptation=False use ratio 1.
"""

from __future__ import annotations

import copy

import pytest
import torch

from nightbench.optimizers import ParamGroupPolicy, create
from nightbench.optimizers.lamb import Lamb

from .conformance import (
    assert_resume_is_bit_identical,
    max_relative_error,
    oscillating_schedule,
    point_gradient,
    run_packaged,
)

STEPS = 220
SHAPES = [(6, 5), (5,), (4, 3, 2), (7,), (3, 8)]


def make_params(seed: int, transposed: bool = False) -> list[torch.Tensor]:
    """Random float64 tensors with varied norms; `transposed` makes matrices non-contiguous."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for i, shape in enumerate(SHAPES):
        scale = 0.1 * (i + 1)  # weight norms from ~0.2 to ~3: some inside, some outside a clamp
        if transposed and len(shape) == 2:
            t = torch.randn(shape[::-1], generator=gen, dtype=torch.float64).t() * scale
        else:
            t = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        params.append(torch.nn.Parameter(t))
    return params


def reference_lamb(params, groups, steps, base_lrs, hp):
    """The formula, written plainly with fresh tensors."""
    b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]
    w = [p.detach().clone() for p in params]
    m = [torch.zeros_like(x) for x in w]
    v = [torch.zeros_like(x) for x in w]
    index = {id(p): i for i, p in enumerate(params)}
    for t in range(1, steps + 1):
        grads = [point_gradient(w[i], i, t - 1) for i in range(len(w))]
        for group, base in zip(groups, base_lrs):
            for p in group["params"]:
                i = index[id(p)]
                m[i] = b1 * m[i] + (1 - b1) * grads[i]
                v[i] = b2 * v[i] + (1 - b2) * grads[i] ** 2
                r = (m[i] / (1 - b1 ** t)) / (torch.sqrt(v[i] / (1 - b2 ** t)) + eps)
                u = r + group["weight_decay"] * w[i]
                ratio = 1.0
                if group["layer_adaptation"]:
                    wn, un = w[i].norm().item(), u.norm().item()
                    if hp["phi"] == "clamp":
                        phi = min(max(wn, hp["phi_min"]), hp["phi_max"])
                    else:
                        phi = wn
                    ratio = 1.0 if wn == 0 or un == 0 else phi / un
                w[i] = w[i] - oscillating_schedule(t - 1, base) * ratio * u
    return w


CASES = {
    "identity": dict(phi="identity", weight_decay=0.05),
    "clamp": dict(phi="clamp", phi_min=0.5, phi_max=1.5, weight_decay=0.05),
    "no_decay": dict(phi="identity", weight_decay=0.0),
    "excluded_decayed": dict(phi="identity", weight_decay=0.05),  # policy: decay but no trust ratio
    "unfused": dict(phi="identity", weight_decay=0.05),           # non-contiguous tensors
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_the_formula_for_200_steps(monkeypatch, case):
    calls = []
    for kernel in ("_fused_adam_", "_fused_adamw_"):
        original = getattr(torch, kernel)
        monkeypatch.setattr(torch, kernel, lambda *a, _k=original, **kw: (calls.append(1), _k(*a, **kw))[1])
    params = make_params(seed=2, transposed=(case == "unfused"))
    policy = ParamGroupPolicy(excluded_lr_multiplier=0.3, excluded_weight_decay=(case == "excluded_decayed"))
    optimizer = create("lamb", params, policy=policy, lr=0.02, beta1=0.8, beta2=0.95, eps=1e-6, **CASES[case])
    groups = [dict(g) for g in optimizer.param_groups]
    assert [g["layer_adaptation"] for g in groups] == [True, False]
    base_lrs = [g["lr"] for g in groups]
    start = [p.detach().clone() for p in params]
    expected = reference_lamb(params, groups, STEPS, base_lrs, optimizer.defaults)

    run_packaged(optimizer, params, STEPS, base_lrs)

    assert max_relative_error(params, expected) < 1e-10
    assert max_relative_error(params, start) > 1e-2  # it really moved
    if case == "clamp":  # the clamp was active at both ends
        norms = [s.norm().item() for s in start]
        assert min(norms) < 0.5 and max(norms) > 1.5
    contiguous = sum(p.is_contiguous() for p in params)
    assert len(calls) == STEPS * contiguous and (case != "unfused" or contiguous < len(params))


def test_zero_gradients_and_zero_weights_stay_finite():
    zero_w = torch.nn.Parameter(torch.zeros(4, 3))
    zero_g = torch.nn.Parameter(torch.randn(4, 3))
    optimizer = Lamb([zero_w, zero_g], lr=0.1, weight_decay=0.0)
    zero_w.grad = torch.randn(4, 3)
    zero_g.grad = torch.zeros(4, 3)
    before = zero_g.detach().clone()
    optimizer.step()
    # ||w|| = 0: ratio 1, so w = -lr * r with r = g/(|g| + eps) at the first step
    r = zero_w.grad / (zero_w.grad.abs() + 1e-6)
    assert torch.allclose(zero_w.detach(), -0.1 * r, rtol=1e-5)
    # g = 0 and lam = 0: u = 0, ratio 1, nothing moves
    assert torch.equal(zero_g.detach(), before)
    for _ in range(3):
        zero_w.grad = torch.zeros(4, 3)
        zero_g.grad = torch.zeros(4, 3)
        optimizer.step()
    assert all(torch.isfinite(p).all() for p in (zero_w, zero_g))


def test_zero_gradient_with_decay_shrinks_weights_by_the_trust_ratio():
    p = torch.nn.Parameter(torch.randn(6, 2))
    before = p.detach().clone()
    optimizer = Lamb([p], lr=0.1, weight_decay=0.01)
    p.grad = torch.zeros(6, 2)
    optimizer.step()
    # r = 0 so u = lam w and phi(||w||)/||u|| = 1/lam: w <- w - lr w
    assert torch.allclose(p.detach(), 0.9 * before, rtol=1e-6)


def test_state_dict_resume_gives_the_same_parameters():
    assert_resume_is_bit_identical(lambda ps: create("lamb", ps, lr=0.02, weight_decay=0.01), make_params(seed=4))


def test_float32_matches_float64_closely():
    """The fused float32 path follows the float64 formula up to float32 rounding."""
    params64 = make_params(seed=5)
    params32 = [torch.nn.Parameter(p.detach().float()) for p in params64]
    opt64, opt32 = (create("lamb", ps, lr=0.01) for ps in (params64, params32))
    for t in range(20):
        for p64, p32 in zip(params64, params32):
            g = torch.randn(p64.shape, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
            p64.grad, p32.grad = g, g.float()
        opt64.step()
        opt32.step()
    for a, b in zip(params32, params64):
        assert torch.allclose(a.detach().double(), b.detach(), rtol=1e-4, atol=1e-5)


def test_invalid_hyperparameters_fail_by_name():
    p = [torch.nn.Parameter(torch.randn(2, 2))]
    with pytest.raises(ValueError, match="beta2.*\\[0, 1\\)"):
        Lamb(p, beta2=1.0)
    with pytest.raises(ValueError, match="phi"):
        Lamb(p, phi="tanh")
    with pytest.raises(ValueError, match="phi_min"):
        Lamb(p, phi="clamp", phi_min=2.0, phi_max=1.0)


@pytest.mark.parametrize("transposed", [False, True], ids=["fused kernel", "plain foreach ops"])
@pytest.mark.parametrize("case", ["identity", "clamp", "no_decay", "excluded_decayed"])
def test_lamb_multi_tensor_matches_the_formula(transposed, case):
    params = make_params(seed=2, transposed=transposed)
    policy = ParamGroupPolicy(excluded_lr_multiplier=0.3, excluded_weight_decay=(case == "excluded_decayed"))
    optimizer = create("lamb", params, policy=policy, lr=0.02, beta1=0.8, beta2=0.95, eps=1e-6,
                       foreach=True, **CASES[case])
    groups = [dict(g) for g in optimizer.param_groups]
    base_lrs = [g["lr"] for g in groups]
    start = [p.detach().clone() for p in params]
    expected = reference_lamb(params, groups, STEPS, base_lrs, optimizer.defaults)
    run_packaged(optimizer, params, STEPS, base_lrs)
    assert max_relative_error(params, expected) < 1e-10
    assert max_relative_error(params, start) > 1e-2


@pytest.mark.parametrize("foreach", [False, True], ids=["single", "multi"])
def test_lamb_loads_a_state_dict_whose_steps_are_numbers(foreach):
    params = make_params(seed=7)
    optimizer = create("lamb", params, lr=0.01, foreach=foreach)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    run_packaged(optimizer, params, 5, base_lrs)
    saved = copy.deepcopy(optimizer.state_dict())
    for entry in saved["state"].values():
        entry["step"] = float(entry["step"])  # as another implementation may save it
    resumed = [torch.nn.Parameter(p.detach().clone()) for p in params]
    restored = create("lamb", resumed, lr=0.01, foreach=foreach)
    restored.load_state_dict(saved)
    run_packaged(restored, resumed, 5, base_lrs, start=5)
    run_packaged(optimizer, params, 5, base_lrs, start=5)
    for a, b in zip(resumed, params):
        assert torch.equal(a.detach(), b.detach())
    assert all(isinstance(s["step"], torch.Tensor) and float(s["step"]) == 10.0 for s in restored.state.values())
