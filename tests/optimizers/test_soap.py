"""soap: pytorch_optimizer's SOAP, driven directly, equals the registry entry (through eigenbasis refreshes)."""

from __future__ import annotations

import torch
from pytorch_optimizer import SOAP

from nightbench.optimizers import ParamGroupPolicy, create
from nightbench.optimizers.memory import state_bytes

from .conformance import assert_resume_is_bit_identical, max_relative_error, run_packaged
from .test_lion import make_params, take_steps


def test_registry_entry_equals_the_package_class_driven_directly():
    params, twins = make_params(seed=16), make_params(seed=16)
    ours = create("soap", params, policy=ParamGroupPolicy(excluded_weight_decay=True), lr=0.01, beta1=0.9,
                  beta2=0.97, eps=1e-7, weight_decay=0.05, precondition_frequency=3, max_precondition_dim=5)
    theirs = SOAP(twins, lr=0.01, betas=(0.9, 0.97), eps=1e-7, weight_decay=0.05, precondition_frequency=3,
                  max_precondition_dim=5)
    run_packaged(ours, params, 60, [0.01, 0.01])  # 20 refreshes; dimension 6 > 5 stays unpreconditioned
    run_packaged(theirs, twins, 60, [0.01])
    for a, b in zip(params, twins):
        assert torch.equal(a.detach(), b.detach())
    assert max_relative_error(params, make_params(seed=16)) > 1e-2


def test_state_holds_the_moments_and_the_bases():
    matrix = torch.nn.Parameter(torch.randn(6, 4))
    optimizer = create("soap", [matrix])
    take_steps(optimizer, [matrix], 3)
    # Adam's two moments and, per dimension, GG and Q (6x6 and 4x4 each); nothing else is a tensor
    assert state_bytes(optimizer) == 4 * (2 * 24 + 2 * (36 + 16))


def test_resume():
    assert_resume_is_bit_identical(lambda ps: create("soap", ps, lr=0.01, precondition_frequency=2),
                                   make_params(seed=17))
