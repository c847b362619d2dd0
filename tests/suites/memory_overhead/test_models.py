"""The models under test at their real sizes (BERT-Base, ResNet-50): each builtin's state there is its declared slots."""

from __future__ import annotations

import pytest
import torch

from nightbench.optimizers import create, get_spec, names
from nightbench.optimizers.memory import state_bytes
from nightbench.suites.memory_overhead.models import build_model_under_test
from nightbench.suites.memory_overhead.presets import PRESETS
from tests.optimizers.builtins import PARAMETER_SHAPED


CPU = torch.device("cpu")

# Besides the slots an optimizer may keep a few scalars (a step count, a norm, G_t): at most this many
# bytes per parameter tensor, plus this many per param group.
SCALAR_BYTES_PER_TENSOR = 16

SCALAR_BYTES_PER_GROUP = 64


@pytest.fixture(scope="module")
def real_models():
    """BERT-Base and ResNet-50 at their real sizes, each with one fixed random gradient per parameter."""
    built = {}
    for family in ("bert", "resnet"):
        unit = build_model_under_test(family, PRESETS["small"], CPU, seed=0)
        params = [p for p in unit.model.parameters() if p.requires_grad]
        generator = torch.Generator().manual_seed(1)
        grads = [torch.randn(p.shape, generator=generator) for p in params]
        built[family] = (unit, params, grads)
    yield built
    built.clear()


@pytest.mark.slow
@pytest.mark.parametrize("family,expected_params", [("bert", (109e6, 111e6)), ("resnet", (25.5e6, 25.6e6))])
@pytest.mark.parametrize("optimizer_name", PARAMETER_SHAPED)  # the others: tests/optimizers/test_<name>.py
def test_state_bytes_per_parameter_on_the_real_models(real_models, family, expected_params, optimizer_name):
    """After steps on fixed random gradients (no forward/backward: fast), the state is exactly the
    declared slots (the registry's `state_slots`; docs/algorithms.md says what each holds) in float32,
    plus bounded scalars."""
    assert optimizer_name in names(), f"builtin optimizer '{optimizer_name}' is not registered"
    unit, params, grads = real_models[family]
    n_params = sum(p.numel() for p in params)
    assert expected_params[0] <= n_params <= expected_params[1]  # BERT-Base 110M, ResNet-50 25.6M
    optimizer = create(optimizer_name, unit.model)
    for _ in range(2):  # a slot created lazily at the second step is counted too
        if get_spec(optimizer_name).gradients_per_step == 2:
            signs = iter((1.0, -0.5))  # two different gradients, as two half-batches give

            def closure():
                sign = next(signs)
                for p, g in zip(params, grads):
                    p.grad = g * sign
                return torch.zeros(())

            optimizer.step(closure)
        else:
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()
    measured = state_bytes(optimizer)
    slots = get_spec(optimizer_name).state_slots
    scalar_bound = SCALAR_BYTES_PER_TENSOR * len(params) + SCALAR_BYTES_PER_GROUP * len(optimizer.param_groups)
    assert slots * 4 * n_params <= measured <= slots * 4 * n_params + scalar_bound, (
        f"{optimizer_name} on {family}: {measured / n_params:.4f} bytes/param, expected {slots * 4} "
        f"(+ at most {scalar_bound} scalar bytes)")
    for p in params:
        p.grad = None
