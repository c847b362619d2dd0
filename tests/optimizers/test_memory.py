"""State memory: every builtin keeps exactly its declared number of parameter-sized slots.

The count lives in one place, each optimizer's registry entry (`state_slots`); these tests measure
the state against it, and the README's optimizer table against it.

The counting (`nightbench.optimizers.memory`) is tested here too, since the memory_overhead suite
reports what it says.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from nightbench.optimizers import create, get_spec, specs
from nightbench.optimizers.memory import parameter_bytes, state_bytes, state_tensor_summary

from .builtins import NOT_PARAMETER_SHAPED, PARAMETER_SHAPED

README = Path(__file__).resolve().parents[2] / "README.md"

# Per parameter tensor, at most this many 0-dim tensors or Python numbers (step counts, norms, ...).
MAX_SCALARS_PER_TENSOR = 8
SHAPES = [(16, 8), (8,), (4, 3, 3, 3), (4,), (10, 16), (10,)]


def make_params(dtype=torch.float32) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in SHAPES]


def run_steps(name: str, params: list[torch.nn.Parameter], steps: int = 3) -> torch.optim.Optimizer:
    """A few steps with random gradients; the closure serves optimizers that want two gradients."""
    optimizer = create(name, params)
    calls = []

    def closure():
        calls.append(1)
        for p in params:
            p.grad = torch.randn_like(p)
        return torch.tensor(1.0)

    for _ in range(steps):
        optimizer.step(closure)
    assert len(calls) == steps * get_spec(name).gradients_per_step
    return optimizer


def test_every_builtin_declares_its_state_slots():
    undeclared = [s.name for s in specs() if s.source == "builtin" and not isinstance(s.state_slots, int)]
    assert not undeclared, f"declare state_slots=N in the registration of {undeclared}"


def test_the_readme_table_gives_the_declared_slots():
    """Every builtin has a row; where the row's count is a number, it is the declared one (the
    optimizers whose state is not parameter-shaped describe theirs in words)."""
    rows = dict(re.findall(r"^\| `(\w+)` \|[^|]*\| ([^|]*)\|", README.read_text(), flags=re.MULTILINE))
    builtin = {s.name: s.state_slots for s in specs() if s.source == "builtin"}
    assert set(builtin) <= set(rows), "the README's optimizer table misses a builtin"
    numeric = {name: int(m.group(1)) for name in builtin if (m := re.match(r"\s*(\d+)", rows[name]))}
    assert set(builtin) - set(numeric) <= set(NOT_PARAMETER_SHAPED)
    assert numeric == {name: builtin[name] for name in numeric}


@pytest.mark.parametrize("name", PARAMETER_SHAPED)
def test_state_holds_exactly_the_declared_slots(name):
    slots = get_spec(name).state_slots  # an unregistered builtin fails here, by name
    params = make_params()
    optimizer = run_steps(name, params)

    large = 0
    scalars_per_param = []
    for p in params:
        state = optimizer.state.get(p, {})
        scalars = 0
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                assert value.shape == p.shape and value.dtype == p.dtype, (name, key)
                large += value.numel() * value.element_size()
            else:
                scalars += 1
        scalars_per_param.append(scalars)
    assert large == slots * parameter_bytes(optimizer)
    assert max(scalars_per_param) <= MAX_SCALARS_PER_TENSOR
    # state_bytes adds only the 0-dim tensors (at most 8 bytes each) to the slots
    extra = state_bytes(optimizer) - slots * parameter_bytes(optimizer)
    assert 0 <= extra <= 8 * MAX_SCALARS_PER_TENSOR * len(params)


@pytest.mark.parametrize("name", ["lars", "lamb"])
def test_slots_follow_the_parameter_dtype(name):
    params = make_params(torch.float64)
    optimizer = run_steps(name, params)
    assert parameter_bytes(optimizer) == 8 * sum(p.numel() for p in params)
    slot_bytes = sum(row["bytes"] for row in state_tensor_summary(optimizer).values() if row["tensors"])
    assert slot_bytes == get_spec(name).state_slots * parameter_bytes(optimizer)


class _HandMadeState(torch.optim.Optimizer):
    """An optimizer whose state is set by hand, to test the counting itself."""

    def __init__(self, params):
        super().__init__(params, {"lr": 0.1})

    def step(self, closure=None):
        return None


def test_counting_dedupes_shared_storages_and_walks_nested_values():
    a, b = torch.nn.Parameter(torch.zeros(10)), torch.nn.Parameter(torch.zeros(6))
    optimizer = _HandMadeState([a, b])
    shared = torch.zeros(16)  # 64 bytes, referenced from both parameters' state as views
    optimizer.state[a] = {"view": shared[:10], "step": torch.tensor(3.0), "lr_seen": 0.5,
                          "history": [torch.zeros(2, dtype=torch.float64), {"deep": torch.zeros(3)}]}
    optimizer.state[b] = {"view": shared[10:], "copy": torch.zeros(6), "count": 7}
    expected = 64 + 4 + 16 + 12 + 24  # shared once, step, history float64, deep, copy
    assert state_bytes(optimizer) == expected
    assert parameter_bytes(optimizer) == 64
    summary = state_tensor_summary(optimizer)
    assert summary["view"] == {"tensors": 2, "scalar_tensors": 0, "python_scalars": 0, "numel": 16,
                               "bytes": 64, "dtypes": ["torch.float32"]}
    assert summary["step"]["scalar_tensors"] == 1 and summary["step"]["bytes"] == 4
    assert summary["lr_seen"]["python_scalars"] == 1 and summary["lr_seen"]["bytes"] == 0
    assert summary["history"]["tensors"] == 2 and summary["history"]["bytes"] == 16 + 12
    assert summary["history"]["dtypes"] == ["torch.float64", "torch.float32"]


def test_an_optimizer_without_state_holds_zero_bytes():
    optimizer = _HandMadeState([torch.nn.Parameter(torch.zeros(3))])
    assert state_bytes(optimizer) == 0 and state_tensor_summary(optimizer) == {}
