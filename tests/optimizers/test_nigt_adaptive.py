"""Conformance of `nigt_adaptive` with a naive Algorithm 2 that stores w_{t-1}; its closure protocol."""

from __future__ import annotations

import io
import math

import pytest
import torch

from nightbench.optimizers import create, get_spec

from .conformance import (
    EXCLUDED_LR_MULTIPLIER,
    SHAPES,
    STEPS,
    BODIES,
    NoisyProblem,
    lr_schedule,
    make_groups,
    relative_error,
)


def norm_of(tensors) -> float:
    return math.sqrt(sum(float((t**2).sum()) for t in tensors))


def naive_algorithm_2(problem, C, g, norm, weight_norm_scaling, weight_decay, momentum_from_mean, steps=STEPS):
    """Algorithm 2 as written, with w_{t-1} kept explicitly; returns (w_{t+1}, x_{t+1}) per step.

    Scalars per unit: one unit of all tensors for 'global', one per tensor for 'layer'. With C or g
    given as 0, g is the running max of the observed half-batch gradient norms and C = C(g).
    """
    n = len(SHAPES)
    units = [list(range(n))] if norm == "global" else [[i] for i in range(n)]
    adapted = list(range(n - 1))
    w = problem.initial()
    w_prev = [wi.clone() for wi in w]  # w_0 = w_1
    m = [torch.zeros_like(wi) for wi in w]  # m_0 = 0
    scalars = [dict(g_hat=0.0, G=None, G_prev=None, eta_prev=None) for _ in units]
    out = []
    for t in range(1, steps + 1):
        beta = [0.0] * n
        for unit, s in zip(units, scalars):
            if t > 1:
                for i in unit:
                    beta[i] = 1 - min(1.0, 1 / (t * s["eta_prev"] ** 2 * s["G_prev"]))
        x = [wi + beta[i] / (1 - beta[i]) * (wi - w_prev[i]) for i, wi in enumerate(w)]
        g1, g2 = problem.grads(x, t - 1, 0), problem.grads(x, t - 1, 1)
        eta = [0.0] * n
        for unit, s in zip(units, scalars):
            observed = max(norm_of(g1[i] for i in unit), norm_of(g2[i] for i in unit))
            s["g_hat"] = g if g > 0 else max(s["g_hat"], observed)
            c = C if C > 0 else math.sqrt(7 / (26 * s["g_hat"] ** (6 / 7)))
            if t == 1:
                D = c ** (-14 / 3)
                s["G"], s["G_prev"], s["eta_prev"] = 3 * s["g_hat"] ** 2 + D, D, c / D ** (2 / 7)
                for i in unit:  # alpha_1 = 1 / (eta_0^2 G_0), which is 1 up to rounding
                    beta[i] = 1 - 1 / (s["eta_prev"] ** 2 * s["G_prev"])
            unit_eta = c / (s["G"] ** 2 * (t + 1) ** 3) ** (1 / 7)
            gap = norm_of(g1[i] - g2[i] for i in unit)
            s["G_prev"], s["eta_prev"] = s["G"], unit_eta
            s["G"] = s["G"] + gap**2 + s["g_hat"] ** 2 * ((t + 1) ** 0.25 - t**0.25)
            for i in unit:
                eta[i] = unit_eta
        direction = [(a + b) / 2 if momentum_from_mean else a for a, b in zip(g1, g2)]
        direction = [d + (weight_decay if i in adapted else 0.0) * xi for i, (d, xi) in enumerate(zip(direction, x))]
        m = [beta[i] * mi + (1 - beta[i]) * d for i, (mi, d) in enumerate(zip(m, direction))]
        if norm == "global":
            dn, wn = [norm_of(m[i] for i in adapted)] * n, [norm_of(w[i] for i in adapted)] * n
        else:
            dn, wn = [float(mi.norm()) for mi in m], [float(wi.norm()) for wi in w]
        lrs = [lr_schedule(t - 1) * (1.0 if i in adapted else EXCLUDED_LR_MULTIPLIER) for i in range(n)]
        ratio = [((wn[i] if weight_norm_scaling and wn[i] > 0 else 1.0) / dn[i] if dn[i] > 0 else 0.0)
                 if i in adapted else 1.0 for i in range(n)]
        w_prev, w = w, [w[i] - lrs[i] * eta[i] * ratio[i] * m[i] for i in range(n)]
        beta_next = [0.0] * n
        for unit, s in zip(units, scalars):
            for i in unit:
                beta_next[i] = 1 - min(1.0, 1 / ((t + 1) * s["eta_prev"] ** 2 * s["G_prev"]))
        x_next = [w[i] + beta_next[i] / (1 - beta_next[i]) * (w[i] - w_prev[i]) for i in range(n)]
        out.append((w, x_next))
    return out


def make_optimizer(params, foreach=None, **hp):
    return create("nigt_adaptive", make_groups(params, hp.get("weight_decay", 0.0)), lr=1.0, foreach=foreach, **hp)


def half_batch_closure(problem, params, step_of, calls):
    """Each call zeroes the grads and loads the next half-batch's gradient at the current params."""

    def closure():
        half = len(calls) % 2
        calls.append([p.clone() for p in params])
        for p, g in zip(params, problem.grads(params, step_of(), half)):
            p.grad = g
        return torch.tensor(float(10 * half + 1))

    return closure


def run(problem, optimizer, params, start, stop, each_step=None):
    current = {"step": start}
    calls: list = []
    closure = half_batch_closure(problem, params, lambda: current["step"], calls)
    for s in range(start, stop):
        current["step"] = s
        for group, multiplier in zip(optimizer.param_groups, (1.0, EXCLUDED_LR_MULTIPLIER)):
            group["lr"] = multiplier * lr_schedule(s)
        loss = optimizer.step(closure)
        assert float(loss) == 6.0  # the mean of the two halves' losses (1 and 11)
        if each_step:
            each_step(s)
    return params, calls


CONFIGS = [  # norm, weight_norm_scaling, weight_decay, C, g, momentum_from_mean
    ("layer", False, 0.0, 0.0, 0.0, False),
    ("layer", True, 0.01, 0.3, 20.0, True),
    ("global", False, 0.01, 0.0, 0.0, False),
    ("global", True, 0.0, 0.0, 15.0, False),
]


@BODIES
@pytest.mark.parametrize("norm,weight_norm_scaling,weight_decay,C,g,momentum_from_mean", CONFIGS)
def test_matches_naive_algorithm_2(norm, weight_norm_scaling, weight_decay, C, g, momentum_from_mean, foreach):
    problem = NoisyProblem(seed=21, noise=0.5)
    hp = dict(norm=norm, weight_norm_scaling=weight_norm_scaling, weight_decay=weight_decay, C=C, g=g,
              momentum_from_mean=momentum_from_mean)
    expected = naive_algorithm_2(problem, **hp)
    params = problem.initial()
    optimizer = make_optimizer(params, foreach=foreach, **hp)
    errors = []
    _, calls = run(problem, optimizer, params, 0, STEPS,
                   each_step=lambda s: errors.append(relative_error(params, expected[s][1])))
    assert max(errors) <= 1e-10, f"x_t drifts from the naive form: {max(errors):.3e}"
    optimizer.eval()
    assert relative_error(params, expected[-1][0]) <= 1e-10
    optimizer.train()
    assert len(calls) == 2 * STEPS
    for first, second in zip(calls[::2], calls[1::2]):  # both halves at the same x_t
        assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_default_C_is_the_documented_formula():
    problem = NoisyProblem(seed=22, noise=0.5)
    g = 12.0
    implicit = problem.initial()
    run(problem, make_optimizer(implicit, C=0.0, g=g), implicit, 0, 20)
    explicit = problem.initial()
    run(problem, make_optimizer(explicit, C=math.sqrt(7 / (26 * g ** (6 / 7))), g=g), explicit, 0, 20)
    assert all(torch.equal(a, b) for a, b in zip(implicit, explicit))


@BODIES
def test_resume_from_state_dict_is_bit_identical(foreach):
    problem = NoisyProblem(seed=23, noise=0.5)
    hp = dict(norm="global", weight_norm_scaling=True, foreach=foreach)
    straight = problem.initial()
    run(problem, make_optimizer(straight, **hp), straight, 0, 60)
    half = problem.initial()
    optimizer = make_optimizer(half, **hp)
    run(problem, optimizer, half, 0, 30)
    buffer = io.BytesIO()
    torch.save({"params": half, "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    params = [p.clone() for p in saved["params"]]
    fresh = make_optimizer(params, **hp)
    fresh.load_state_dict(saved["optimizer"])
    run(problem, fresh, params, 30, 60)
    assert all(torch.equal(a, b) for a, b in zip(params, straight))


def test_state_is_one_momentum_slot_plus_scalars():
    problem = NoisyProblem(seed=24, noise=0.5)
    params = problem.initial()
    optimizer = make_optimizer(params)
    run(problem, optimizer, params, 0, 2)
    for p in params:
        state = optimizer.state[p]
        assert set(state) == {"momentum_buffer", "step_size", "beta_next", "t", "G", "g_hat"}
        assert state["momentum_buffer"].shape == p.shape
        assert all(not isinstance(v, torch.Tensor) for k, v in state.items() if k != "momentum_buffer")
    spec = get_spec("nigt_adaptive")
    assert spec.state_slots == 1 and spec.gradients_per_step == 2 and spec.needs_eval_swap


def test_step_requires_a_closure_and_refuses_eval_mode():
    params = [torch.randn(3, dtype=torch.float64)]
    optimizer = create("nigt_adaptive", params)
    params[0].grad = torch.ones(3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="closure"):
        optimizer.step()
    optimizer.eval()
    with pytest.raises(RuntimeError, match="train"):
        optimizer.step(lambda: 0.0)


@BODIES
@pytest.mark.parametrize("g", [0.0, 5.0])
@pytest.mark.parametrize("norm", ["layer", "global"])
def test_zero_gradients_and_zero_weights_stay_finite(norm, g, foreach):
    params = [torch.zeros(3, 2, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    before = [p.clone() for p in params]
    optimizer = create("nigt_adaptive", params, g=g, norm=norm, weight_norm_scaling=True, foreach=foreach)

    def zero_closure():
        for p in params:
            p.grad = torch.zeros_like(p)
        return 0.0

    for _ in range(3):
        optimizer.step(zero_closure)
    optimizer.eval()
    assert all(torch.equal(p, b) for p, b in zip(params, before))
    optimizer.train()
    grad = torch.randn(3, 2, dtype=torch.float64)

    def closure():
        params[0].grad, params[1].grad = grad.clone(), torch.zeros(4, dtype=torch.float64)
        return 0.0

    for _ in range(3):
        optimizer.step(closure)
    assert all(torch.isfinite(p).all() for p in params)
    assert not torch.equal(params[0], before[0])  # the zero-norm weight still moved


def test_closure_runs_with_grad_on_a_real_model():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))
    optimizer = create("nigt_adaptive", model)
    halves = torch.randn(2, 8, 3).unbind(0)
    calls = []

    def closure():
        optimizer.zero_grad()
        loss = model(halves[len(calls) % 2]).pow(2).mean()
        loss.backward()
        calls.append(float(loss.detach()))
        return loss

    loss = optimizer.step(closure)
    assert len(calls) == 2 and float(loss) == pytest.approx(sum(calls) / 2)


@pytest.mark.parametrize("kwargs,named", [
    ({"lr": -1.0}, "lr"), ({"C": -0.1}, "C"), ({"g": -2.0}, "g"), ({"g": "big"}, "g"),
    ({"momentum_from_mean": "sometimes"}, "momentum_from_mean"), ({"norm": "row"}, "norm"), ({"beta": 0.9}, "beta"),
])
def test_bad_hyperparameters_name_the_culprit(kwargs, named):
    with pytest.raises(ValueError, match=f"'{named}'"):
        create("nigt_adaptive", [torch.zeros(2, requires_grad=True)], **kwargs)


def test_non_finite_gradient_takes_no_step_instead_of_raising():
    """An inf gradient norm must not crash the step (the engine then sees the NaN loss: diverged)."""
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = create("nigt_adaptive", [p])

    def closure():
        p.grad = torch.full_like(p, float("inf"))
        return torch.tensor(float("nan"))

    optimizer.step(closure)
    assert torch.equal(p.detach(), torch.ones(3, dtype=torch.float64))
