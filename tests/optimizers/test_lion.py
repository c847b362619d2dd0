"""lion against a naive reference written from Chen et al. 2023's Algorithm 2 (float64), and against timm's Lion.

    c = b1 m + (1 - b1) g;  w <- w (1 - lr lam) - lr sign(c);  m <- b2 m + (1 - b2) g
"""

from __future__ import annotations

import pytest
import torch

from nightbench.optimizers import ParamGroupPolicy, create
from nightbench.optimizers.memory import state_bytes

from .conformance import assert_resume_is_bit_identical, max_relative_error, reference_run, run_packaged

STEPS = 200
SHAPES = [(6, 5), (5,), (4, 3, 2), (7,)]
POLICY = ParamGroupPolicy(excluded_lr_multiplier=0.5, excluded_weight_decay=True)


def make_params(seed: int, dtype=torch.float64) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in SHAPES]


def reference_lion(params, groups, base_lrs, b1, b2):
    def update(w, m, g, lr, group):
        c = b1 * m + (1 - b1) * g
        return w * (1 - lr * group["weight_decay"]) - lr * torch.sign(c), b2 * m + (1 - b2) * g
    return reference_run(params, groups, base_lrs, STEPS, update)


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_lion_matches_the_formula(weight_decay):
    params = make_params(seed=4)
    start = [p.detach().clone() for p in params]
    optimizer = create("lion", params, policy=POLICY, lr=0.01, beta1=0.8, beta2=0.95, weight_decay=weight_decay)
    groups = [dict(g) for g in optimizer.param_groups]
    base_lrs = [g["lr"] for g in groups]
    expected = reference_lion(params, groups, base_lrs, 0.8, 0.95)
    run_packaged(optimizer, params, STEPS, base_lrs)
    assert max_relative_error(params, expected) < 1e-12
    assert max_relative_error(params, start) > 1e-2


def test_lion_equals_timms_lion():
    from timm.optim import Lion as TimmLion

    params, twins = make_params(seed=5), make_params(seed=5)
    ours = create("lion", params, lr=0.01, beta1=0.9, beta2=0.99, weight_decay=0.1,
                  policy=ParamGroupPolicy(excluded_weight_decay=True))
    theirs = TimmLion(twins, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)
    run_packaged(ours, params, 50, [0.01, 0.01])
    run_packaged(theirs, twins, 50, [0.01])
    for a, b in zip(params, twins):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-12, atol=1e-12)


def take_steps(optimizer, params, steps: int) -> None:
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn_like(p)
        optimizer.step()


def test_lion_resume_and_state():
    assert_resume_is_bit_identical(lambda ps: create("lion", ps, lr=0.01, weight_decay=0.1), make_params(seed=6))
    params = make_params(seed=7, dtype=torch.float32)
    optimizer = create("lion", params)
    take_steps(optimizer, params, 2)
    assert state_bytes(optimizer) == 4 * sum(p.numel() for p in params)  # one slot: m
