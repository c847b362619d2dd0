"""The eval swap: the trainer swaps to the reported weights only where the registry declares needs_eval_swap."""

from __future__ import annotations

import contextlib
import types

import torch

from nightbench.optimizers import create, get_spec
from nightbench.suites.trainer import Trainer


def test_the_trainer_swaps_only_where_the_registry_declares_it():
    class HasEval(torch.optim.SGD):  # eval()/train() by accident: must not be called
        def eval(self):
            raise AssertionError("eval() called for an optimizer that does not declare needs_eval_swap")

        def train(self):
            raise AssertionError("train() called")

    optimizer = HasEval([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    stub = types.SimpleNamespace(spec=get_spec("sgd"), optimizer=optimizer)
    with Trainer._evaluation_weights(stub):
        pass
    assert isinstance(Trainer._evaluation_weights(stub), contextlib.nullcontext)
    swapping = create("adamw_schedulefree", [torch.nn.Parameter(torch.zeros(1))])
    stub = types.SimpleNamespace(spec=get_spec("adamw_schedulefree"), optimizer=swapping)
    with Trainer._evaluation_weights(stub):
        assert not swapping.param_groups[0]["train_mode"]
    assert swapping.param_groups[0]["train_mode"]
