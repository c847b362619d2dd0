"""adafactor: torch.optim.Adafactor, driven directly, equals the registry entry; its state is factored."""

from __future__ import annotations

import torch

from nightbench.optimizers import ParamGroupPolicy, create, get_spec
from nightbench.optimizers.memory import state_bytes

from .conformance import assert_resume_is_bit_identical, max_relative_error, run_packaged
from .test_lion import make_params, take_steps


def test_registry_entry_equals_torchs_adafactor():
    params, twins = make_params(seed=14), make_params(seed=14)
    ours = create("adafactor", params, policy=ParamGroupPolicy(excluded_weight_decay=True), lr=0.05,
                  beta2_decay=-0.7, d=1.5, eps2=1e-4, weight_decay=0.02)
    theirs = torch.optim.Adafactor(twins, lr=0.05, beta2_decay=-0.7, d=1.5, eps=(None, 1e-4), weight_decay=0.02)
    run_packaged(ours, params, 150, [0.05, 0.05])
    run_packaged(theirs, twins, 150, [0.05])
    for a, b in zip(params, twins):
        assert torch.equal(a.detach(), b.detach())
    assert max_relative_error(params, make_params(seed=14)) > 1e-2


def test_state_is_factored_for_matrices():
    matrix, vector = torch.nn.Parameter(torch.randn(64, 32)), torch.nn.Parameter(torch.randn(32))
    optimizer = create("adafactor", [matrix, vector])
    take_steps(optimizer, [matrix, vector], 2)
    # a row and a column of second moments for the matrix, a full one for the vector, two 0-dim step counts
    assert state_bytes(optimizer) == 4 * ((64 + 32) + 32 + 2)
    assert get_spec("adafactor").state_slots == 0


def test_resume():
    assert_resume_is_bit_identical(lambda ps: create("adafactor", ps, lr=0.01, weight_decay=0.1), make_params(seed=15))
