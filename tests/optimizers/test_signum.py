"""signum against a naive reference written from Bernstein et al. 2018's Signum (float64).

    m <- b m + (1 - b) g;  w <- w (1 - lr lam) - lr sign(m)
"""

from __future__ import annotations

import pytest
import torch

from nightbench.optimizers import ParamGroupPolicy, create
from nightbench.optimizers.memory import state_bytes

from .conformance import assert_resume_is_bit_identical, max_relative_error, reference_run, run_packaged
from .test_lion import POLICY, STEPS, make_params, take_steps


def reference_signum(params, groups, base_lrs, beta):
    def update(w, m, g, lr, group):
        m = beta * m + (1 - beta) * g
        return w * (1 - lr * group["weight_decay"]) - lr * torch.sign(m), m
    return reference_run(params, groups, base_lrs, STEPS, update)


@pytest.mark.parametrize("momentum,weight_decay", [(0.9, 0.0), (0.7, 0.3), (0.0, 0.1)])
def test_signum_matches_the_formula(momentum, weight_decay):
    params = make_params(seed=8)
    start = [p.detach().clone() for p in params]
    optimizer = create("signum", params, policy=POLICY, lr=0.01, momentum=momentum, weight_decay=weight_decay)
    groups = [dict(g) for g in optimizer.param_groups]
    base_lrs = [g["lr"] for g in groups]
    expected = reference_signum(params, groups, base_lrs, momentum)
    run_packaged(optimizer, params, STEPS, base_lrs)
    assert max_relative_error(params, expected) < 1e-12
    assert max_relative_error(params, start) > 1e-2


def test_signum_is_not_lion():
    """Guards the references: the sign of the momentum and Lion's interpolation (beta1 != beta2) differ
    (with beta1 == beta2 Lion is Signum)."""
    from .test_lion import reference_lion

    params = make_params(seed=8)
    groups = [{"params": params, "weight_decay": 0.0}]
    assert max_relative_error(reference_signum(params, groups, [0.01], 0.9),
                              reference_lion(params, groups, [0.01], 0.5, 0.9)) > 1e-3


def test_signum_resume_and_state():
    assert_resume_is_bit_identical(lambda ps: create("signum", ps, lr=0.01, weight_decay=0.1), make_params(seed=9))
    params = make_params(seed=10, dtype=torch.float32)
    optimizer = create("signum", params, policy=ParamGroupPolicy())
    take_steps(optimizer, params, 2)
    assert state_bytes(optimizer) == 4 * sum(p.numel() for p in params)  # one slot: m
