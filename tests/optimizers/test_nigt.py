"""Conformance of the lean `nigt` with the naive Algorithm 1 that stores w_{t-1}; the x_t/w_t swap."""

from __future__ import annotations

import io
import math

import pytest
import torch

from nightbench.optimizers import create, evaluation_weights, get_spec

from .conformance import (
    EXCLUDED_LR_MULTIPLIER,
    STEPS,
    BODIES,
    NoisyProblem,
    group_lrs,
    lr_schedule,
    make_groups,
    naive_step_factors,
    relative_error,
)


def constant_beta(t: int) -> float:
    return 0.9


def varying_beta(t: int) -> float:
    return 0.5 + 0.45 * math.sin(0.1 * t) ** 2


def naive_nigt(problem, base_lr, beta_of, norm, weight_norm_scaling, weight_decay, steps=STEPS):
    """Algorithm 1 as written: keeps w_t and w_{t-1}, takes the gradient at x_t.

    Returns the reported iterates w_{t+1} and training points x_{t+1} after every step.
    """
    w, w_prev, m = problem.initial(), None, None
    reported, training_points = [], []
    for t in range(1, steps + 1):
        beta = beta_of(t)
        x = w if w_prev is None else [wi + beta / (1 - beta) * (wi - vi) for wi, vi in zip(w, w_prev)]
        grads = problem.grads(x, t - 1)
        grads = [g + (weight_decay if i < len(x) - 1 else 0.0) * xi for i, (g, xi) in enumerate(zip(grads, x))]
        m = grads if m is None else [beta * mi + (1 - beta) * g for mi, g in zip(m, grads)]
        factors = naive_step_factors(m, w, norm, weight_norm_scaling)
        w_prev, w = w, [wi - lr * r * mi for wi, lr, r, mi in zip(w, group_lrs(base_lr, t - 1), factors, m)]
        c_next = beta_of(t + 1) / (1 - beta_of(t + 1))
        reported.append(w)
        training_points.append([wi + c_next * (wi - vi) for wi, vi in zip(w, w_prev)])
    return reported, training_points


def make_optimizer(params, base_lr, foreach=None, **hp):
    return create("nigt", make_groups(params, hp.get("weight_decay", 0.0)), lr=base_lr, foreach=foreach, **hp)


def run(problem, optimizer, params, base_lr, start, stop, beta_of=constant_beta, swap_every=0, each_step=None):
    """Steps start..stop-1 (0-based); group['beta'] holds beta_{t+1} when step t ends."""
    for s in range(start, stop):
        for group, multiplier in zip(optimizer.param_groups, (1.0, EXCLUDED_LR_MULTIPLIER)):
            group["lr"] = base_lr * multiplier * lr_schedule(s)
            group["beta"] = beta_of(s + 2)
        for p, g in zip(params, problem.grads(params, s)):
            p.grad = g
        optimizer.step()
        if each_step:
            each_step(s)
        if swap_every and s % swap_every == 0:
            optimizer.eval()
            optimizer.eval()  # idempotent
            optimizer.train()
    return params


# Weight-norm scaling runs at a smaller lr: at 0.05 (steps of 5% of ||w||, extrapolated 10x) the
# problem turns chaotic and float rounding alone grows to 1e-8 within 200 steps.
CONFIGS = [
    ("layer", False, 0.0, constant_beta, 0.05),
    ("layer", True, 0.01, varying_beta, 0.01),
    ("global", False, 0.01, varying_beta, 0.05),
    ("global", True, 0.0, constant_beta, 0.01),
]


@BODIES
@pytest.mark.parametrize("norm,weight_norm_scaling,weight_decay,beta_of,lr", CONFIGS)
def test_lean_nigt_matches_naive_algorithm_1(norm, weight_norm_scaling, weight_decay, beta_of, lr, foreach):
    problem = NoisyProblem(seed=11)
    hp = dict(norm=norm, weight_norm_scaling=weight_norm_scaling, weight_decay=weight_decay)
    reported, training_points = naive_nigt(problem, lr, beta_of, **hp)
    params = problem.initial()
    optimizer = make_optimizer(params, lr, foreach=foreach, **hp)
    errors = []
    run(problem, optimizer, params, lr, 0, STEPS, beta_of=beta_of,
        each_step=lambda s: errors.append(relative_error(params, training_points[s])))
    assert max(errors) <= 1e-10, f"x_t drifts from the naive form: {max(errors):.3e}"
    optimizer.eval()
    assert relative_error(params, reported[-1]) <= 1e-10  # the reported w_t is the naive w_t
    optimizer.train()
    assert relative_error(params, training_points[-1]) <= 1e-10


@BODIES
def test_swapping_mid_run_leaves_the_float64_trajectory_unchanged(foreach):
    problem = NoisyProblem(seed=12)
    hp = dict(norm="global", weight_norm_scaling=True, weight_decay=0.01, foreach=foreach)
    straight = problem.initial()
    run(problem, make_optimizer(straight, 0.01, **hp), straight, 0.01, 0, STEPS)
    swapped = problem.initial()
    run(problem, make_optimizer(swapped, 0.01, **hp), swapped, 0.01, 0, STEPS, swap_every=7)
    assert relative_error(swapped, straight) <= 1e-12


def test_float32_swap_round_trip_is_within_a_few_ulps():
    problem = NoisyProblem(seed=13)
    params = problem.initial(torch.float32)
    optimizer = make_optimizer(params, 0.05, norm="layer")
    run(problem, optimizer, params, 0.05, 0, 50)
    before = [p.clone() for p in params]
    shifts = [optimizer.state[p]["beta_next"] / (1 - optimizer.state[p]["beta_next"])
              * optimizer.state[p]["step_size"] * optimizer.state[p]["momentum_buffer"] for p in params]
    optimizer.eval()
    assert max(float((p - b).abs().max()) for p, b in zip(params, before)) > 0  # it did move
    optimizer.train()
    eps = torch.finfo(torch.float32).eps
    for p, b, s in zip(params, before, shifts):
        assert bool(((p - b).abs() <= 2 * eps * (b.abs() + s.abs())).all())


def test_step_in_eval_mode_is_refused_and_mode_survives_state_dict():
    problem = NoisyProblem(seed=14)
    params = problem.initial()
    optimizer = make_optimizer(params, 0.05)
    run(problem, optimizer, params, 0.05, 0, 3)
    optimizer.eval()
    with pytest.raises(RuntimeError, match="train"):
        optimizer.step()
    assert all(g["eval_mode"] for g in optimizer.state_dict()["param_groups"])
    with evaluation_weights(optimizer):  # already evaluating: stays put, then back to x_t
        assert all(g["eval_mode"] for g in optimizer.param_groups)
    assert not any(g["eval_mode"] for g in optimizer.param_groups)
    optimizer.step()


def _checkpoint(params, optimizer):
    buffer = io.BytesIO()
    torch.save({"params": params, "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    params = [p.clone() for p in saved["params"]]
    fresh = make_optimizer(params, 0.05, norm="global", weight_norm_scaling=True)
    fresh.load_state_dict(saved["optimizer"])
    return params, fresh


@pytest.mark.parametrize("checkpoint_in_eval_mode", [False, True])
def test_resume_from_state_dict_is_bit_identical(checkpoint_in_eval_mode):
    problem = NoisyProblem(seed=15)
    hp = dict(norm="global", weight_norm_scaling=True)

    def first_half():
        params = problem.initial()
        optimizer = make_optimizer(params, 0.05, **hp)
        run(problem, optimizer, params, 0.05, 0, 30, beta_of=varying_beta)
        if checkpoint_in_eval_mode:
            optimizer.eval()  # the engine checkpoints at w_t
        return params, optimizer

    params, optimizer = first_half()
    if checkpoint_in_eval_mode:
        optimizer.train()
    straight = run(problem, optimizer, params, 0.05, 30, 60, beta_of=varying_beta)
    params, optimizer = _checkpoint(*first_half())
    assert all(g["eval_mode"] == checkpoint_in_eval_mode for g in optimizer.param_groups)
    optimizer.train()
    resumed = run(problem, optimizer, params, 0.05, 30, 60, beta_of=varying_beta)
    for a, b in zip(resumed, straight):
        assert torch.equal(a, b)


def test_state_is_one_momentum_slot_plus_two_floats():
    problem = NoisyProblem(seed=16)
    params = problem.initial()
    optimizer = make_optimizer(params, 0.05)
    run(problem, optimizer, params, 0.05, 0, 2)
    for p in params:
        state = optimizer.state[p]
        assert set(state) == {"momentum_buffer", "step_size", "beta_next"}
        assert state["momentum_buffer"].shape == p.shape
        assert isinstance(state["step_size"], float) and isinstance(state["beta_next"], float)
    spec = get_spec("nigt")
    assert spec.state_slots == 1 and spec.needs_eval_swap and spec.gradients_per_step == 1


def test_beta_zero_is_normalized_sgd():
    problem = NoisyProblem(seed=17)
    nigt = problem.initial()
    run(problem, make_optimizer(nigt, 0.05, beta=0.0), nigt, 0.05, 0, 50, beta_of=lambda t: 0.0)
    nsgd = problem.initial()
    optimizer = create("nsgd", [{"params": nsgd[:-1]}, {"params": nsgd[-1:], "layer_adaptation": False}], lr=0.05)
    for s in range(50):
        for group, multiplier in zip(optimizer.param_groups, (1.0, EXCLUDED_LR_MULTIPLIER)):
            group["lr"] = 0.05 * multiplier * lr_schedule(s)
        for p, g in zip(nsgd, problem.grads(nsgd, s)):
            p.grad = g
        optimizer.step()
    assert relative_error(nigt, nsgd) <= 1e-12


@BODIES
@pytest.mark.parametrize("norm", ["layer", "global"])
def test_zero_gradients_and_zero_weights_stay_finite(norm, foreach):
    params = [torch.zeros(3, 2, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    before = [p.clone() for p in params]
    optimizer = create("nigt", params, lr=0.1, norm=norm, weight_norm_scaling=True, foreach=foreach)
    for _ in range(3):
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer.step()
    optimizer.eval()
    for p, b in zip(params, before):
        assert torch.equal(p, b)
    optimizer.train()
    grad = torch.randn(3, 2, dtype=torch.float64)
    fresh = [torch.zeros(3, 2, dtype=torch.float64)]
    optimizer = create("nigt", fresh, lr=0.1, beta=0.9, norm=norm, weight_norm_scaling=True, foreach=foreach)
    fresh[0].grad = grad
    optimizer.step()  # ||w_1|| = 0: r = 1/||m||; x_2 = w_2 - c a_1 m = -(1 + c) lr m/||m||
    torch.testing.assert_close(fresh[0], -10 * 0.1 * grad / grad.norm(), rtol=1e-12, atol=0)


def test_closure_runs_with_grad_and_its_loss_is_returned():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))
    optimizer = create("nigt", model, lr=0.01)
    inputs = torch.randn(8, 3)

    def closure():
        optimizer.zero_grad()
        loss = model(inputs).pow(2).mean()
        loss.backward()
        return loss

    assert isinstance(optimizer.step(closure), torch.Tensor)
    assert "NIGT" in repr(optimizer) and "eval_mode" in repr(optimizer)


@pytest.mark.parametrize("kwargs,named", [
    ({"lr": -1e-3}, "lr"), ({"beta": 1.0}, "beta"), ({"beta": -0.5}, "beta"), ({"beta": "high"}, "beta"),
    ({"norm": "row"}, "norm"), ({"weight_norm_scaling": 3}, "weight_norm_scaling"), ({"nesterov": True}, "nesterov"),
])
def test_bad_hyperparameters_name_the_culprit(kwargs, named):
    with pytest.raises(ValueError, match=f"'{named}'"):
        create("nigt", [torch.zeros(2, requires_grad=True)], **kwargs)
