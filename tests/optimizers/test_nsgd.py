"""Conformance of `nsgd` and `nsgd_momentum` with naive implementations of their formulas."""

from __future__ import annotations

import io

import pytest
import torch

from nightbench.optimizers import create, get_spec

from .conformance import (
    EXCLUDED_LR_MULTIPLIER,
    STEPS,
    BODIES,
    NoisyProblem,
    group_lrs,
    lr_schedule,
    make_groups,
    naive_step_factors,
)


def naive_run(problem, beta, base_lr, norm, weight_norm_scaling, weight_decay, steps=STEPS):
    """nsgd (beta=None) or nsgd_momentum from the formulas, all tensors as a list."""
    w = problem.initial()
    m = None
    for t in range(steps):
        grads = problem.grads(w, t)
        grads = [g + (weight_decay if i < len(w) - 1 else 0.0) * wi for i, (g, wi) in enumerate(zip(grads, w))]
        if beta is None:
            direction = grads
        else:
            m = grads if m is None else [beta * mi + (1 - beta) * g for mi, g in zip(m, grads)]
            direction = m
        factors = naive_step_factors(direction, w, norm, weight_norm_scaling)
        w = [wi - lr * r * d for wi, lr, r, d in zip(w, group_lrs(base_lr, t), factors, direction)]
    return w


def packaged_run(name, problem, base_lr, steps=STEPS, start=0, params=None, optimizer=None, foreach=None, **hp):
    params = params if params is not None else problem.initial()
    if optimizer is None:
        optimizer = create(name, make_groups(params, hp.get("weight_decay", 0.0)), lr=base_lr, foreach=foreach, **hp)
        optimizer.param_groups[1]["lr"] = base_lr * EXCLUDED_LR_MULTIPLIER
    for t in range(start, steps):
        for group, multiplier in zip(optimizer.param_groups, (1.0, EXCLUDED_LR_MULTIPLIER)):
            group["lr"] = base_lr * multiplier * lr_schedule(t)
        for p, g in zip(params, problem.grads(params, t)):
            p.grad = g
        optimizer.step()
    return params, optimizer


def assert_close(actual, expected, rel=1e-10):
    scale = max(float(e.abs().max()) for e in expected)
    err = max(float((a - e).abs().max()) for a, e in zip(actual, expected))
    assert err <= rel * scale, f"max abs difference {err:.3e} exceeds {rel:g} x {scale:.3e}"


CONFIGS = [
    ("layer", False, 0.0),
    ("layer", True, 0.01),
    ("global", False, 0.01),
    ("global", True, 0.0),
]


@BODIES
@pytest.mark.parametrize("norm,weight_norm_scaling,weight_decay", CONFIGS)
def test_nsgd_matches_naive_formula(norm, weight_norm_scaling, weight_decay, foreach):
    problem = NoisyProblem(seed=3)
    hp = dict(norm=norm, weight_norm_scaling=weight_norm_scaling, weight_decay=weight_decay)
    got, _ = packaged_run("nsgd", problem, 0.05, foreach=foreach, **hp)
    assert_close(got, naive_run(problem, None, 0.05, **hp))


@BODIES
@pytest.mark.parametrize("norm,weight_norm_scaling,weight_decay", CONFIGS)
def test_nsgd_momentum_matches_naive_formula(norm, weight_norm_scaling, weight_decay, foreach):
    problem = NoisyProblem(seed=4)
    hp = dict(norm=norm, weight_norm_scaling=weight_norm_scaling, weight_decay=weight_decay)
    got, _ = packaged_run("nsgd_momentum", problem, 0.05, beta=0.8, foreach=foreach, **hp)
    assert_close(got, naive_run(problem, 0.8, 0.05, **hp))


@BODIES
@pytest.mark.parametrize("name", ["nsgd", "nsgd_momentum"])
def test_resume_from_state_dict_is_bit_identical(name, foreach):
    problem = NoisyProblem(seed=5)
    hp = dict(norm="global", weight_norm_scaling=True, weight_decay=0.01)
    straight, _ = packaged_run(name, problem, 0.05, steps=60, foreach=foreach, **hp)
    half, optimizer = packaged_run(name, problem, 0.05, steps=30, foreach=foreach, **hp)
    buffer = io.BytesIO()
    torch.save({"params": half, "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    params = [p.clone() for p in saved["params"]]
    fresh = create(name, make_groups(params, 0.01), lr=0.05, foreach=foreach, **hp)
    fresh.load_state_dict(saved["optimizer"])
    resumed, _ = packaged_run(name, problem, 0.05, steps=60, start=30, params=params, optimizer=fresh)
    for a, b in zip(resumed, straight):
        assert torch.equal(a, b)


def test_state_layout_is_one_momentum_slot_or_none():
    problem = NoisyProblem(seed=6)
    _, plain = packaged_run("nsgd", problem, 0.05, steps=2)
    params, momentum = packaged_run("nsgd_momentum", problem, 0.05, steps=2)
    assert all(not s for s in plain.state.values())
    for p in params:
        state = momentum.state[p]
        assert set(state) == {"momentum_buffer"} and state["momentum_buffer"].shape == p.shape
    assert get_spec("nsgd").state_slots == 0 and get_spec("nsgd_momentum").state_slots == 1


def test_beta_zero_momentum_is_nsgd():
    problem = NoisyProblem(seed=7)
    plain, _ = packaged_run("nsgd", problem, 0.05, steps=50)
    momentum, _ = packaged_run("nsgd_momentum", problem, 0.05, steps=50, beta=0.0)
    assert_close(momentum, plain, rel=1e-12)


@BODIES
@pytest.mark.parametrize("name", ["nsgd", "nsgd_momentum"])
@pytest.mark.parametrize("norm", ["layer", "global"])
def test_zero_gradient_gives_zero_step(name, norm, foreach):
    params = [torch.randn(3, 2, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    before = [p.clone() for p in params]
    optimizer = create(name, params, lr=0.1, norm=norm, weight_norm_scaling=True, foreach=foreach)
    for _ in range(3):
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer.step()
    for p, b in zip(params, before):
        assert torch.equal(p, b)


@BODIES
@pytest.mark.parametrize("name", ["nsgd", "nsgd_momentum"])
@pytest.mark.parametrize("norm", ["layer", "global"])
def test_zero_weight_norm_falls_back_to_plain_normalization(name, norm, foreach):
    params = [torch.zeros(3, 2, dtype=torch.float64)]
    grad = torch.randn(3, 2, dtype=torch.float64)
    optimizer = create(name, params, lr=0.1, norm=norm, weight_norm_scaling=True, foreach=foreach)
    params[0].grad = grad.clone()
    optimizer.step()
    assert torch.isfinite(params[0]).all()
    torch.testing.assert_close(params[0], -0.1 * grad / grad.norm(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", ["nsgd", "nsgd_momentum"])
def test_step_runs_the_closure_with_grad_enabled_and_returns_its_loss(name):
    model = torch.nn.Linear(3, 1)
    optimizer = create(name, model, lr=0.01)
    inputs = torch.randn(8, 3)

    def closure():
        optimizer.zero_grad()
        loss = model(inputs).pow(2).mean()
        loss.backward()  # fails if step() ran it under no_grad
        return loss

    loss = optimizer.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0
    assert optimizer.step() is None


@pytest.mark.parametrize("name", ["nsgd", "nsgd_momentum"])
def test_add_param_group_validates_and_repr_is_readable(name):
    optimizer = create(name, [torch.zeros(2, requires_grad=True)], lr=0.01)
    optimizer.add_param_group({"params": [torch.zeros(3, requires_grad=True)], "lr": 0.5})
    assert optimizer.param_groups[1]["lr"] == 0.5 and optimizer.param_groups[1]["norm"] == "layer"
    with pytest.raises(ValueError, match="'lr'"):
        optimizer.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "lr": -1.0})
    text = repr(optimizer)
    assert type(optimizer).__name__ in text and "weight_norm_scaling" in text


BAD_INPUT = [
    ({"lr": -0.1}, "lr"),
    ({"lr": "fast"}, "lr"),
    ({"norm": "per-row"}, "norm"),
    ({"weight_norm_scaling": "maybe"}, "weight_norm_scaling"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"momentum": 0.9}, "momentum"),
]


@pytest.mark.parametrize("kwargs,named", BAD_INPUT + [({"beta": 1.0}, "beta"), ({"beta": -0.1}, "beta")])
def test_bad_hyperparameters_name_the_culprit(kwargs, named):
    with pytest.raises(ValueError, match=f"'{named}'"):
        create("nsgd_momentum", [torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("kwargs,named", BAD_INPUT + [({"beta": 0.9}, "beta")])
def test_nsgd_rejects_bad_input_and_has_no_beta(kwargs, named):
    with pytest.raises(ValueError, match=f"'{named}'"):
        create("nsgd", [torch.zeros(2, requires_grad=True)], **kwargs)
