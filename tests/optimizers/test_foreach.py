"""`torch.compile(optimizer.step, fullgraph=True)`: one graph per step, the same parameters as eager.

For the six optimizers written here the whole step, state creation included, compiles without a
graph break (`foreach=None` picks the multi-tensor body under torch.compile: no host reads, no
data-dependent branches). After 20 float32 steps on a tiny model the compiled parameters must match
an eager twin to 1e-6 (relative, per tensor); for NIGT's lean form the reported iterate w_t is compared.

torch's own SGD and Adam (`sgd`, `adam`) are compiled without `fullgraph`: torch's `Optimizer.step`
wrapper (profiling and hooks) is not traced in full, so they compile with graph breaks, which torch
supports; their parameters must match eager to 1e-5 (compiled, torch's Adam computes its bias
corrections as tensors, in another order: float32 rounding, not 1e-6).

The backend defaults to "aot_eager" (dynamo's full-graph capture and AOT tracing, without
generating C++ code: seconds instead of minutes on a 2-core CPU). To run inductor's generated
kernels as well:

    NIGHTBENCH_COMPILE_BACKEND=inductor python -m pytest tests/optimizers/test_compile.py
"""

from __future__ import annotations

import os

import pytest
import torch

from nightbench.optimizers import create, get_spec
from nightbench.optimizers import lamb as lamb_module

BACKEND = os.environ.get("NIGHTBENCH_COMPILE_BACKEND", "aot_eager")
STEPS = 20
WRITTEN_HERE = ("nsgd", "nsgd_momentum", "nigt", "nigt_adaptive", "lars", "lamb")


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))


def gradients(step: int, half: int, model: torch.nn.Module) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 * step + half)
    return [torch.randn(p.shape, generator=gen) for p in model.parameters()]


def train(name: str, compiled: bool, **hyperparameters) -> list[torch.Tensor]:
    """STEPS steps on fixed gradients; the compiled step reads them from buffers filled outside it."""
    torch._dynamo.reset()
    model = tiny_model()
    params = list(model.parameters())
    optimizer = create(name, model, **hyperparameters)
    step = optimizer.step
    if compiled:
        step = torch.compile(optimizer.step, backend=BACKEND, fullgraph=name in WRITTEN_HERE)
    halves = [[torch.zeros_like(p) for p in params] for _ in range(2)]
    calls = [0]

    def closure():  # two-gradient optimizers: the two halves in turn
        for p, g in zip(params, halves[calls[0] % 2]):
            p.grad = g
        calls[0] += 1
        return torch.zeros(())

    for t in range(STEPS):
        with torch.no_grad():
            for half, buffers in enumerate(halves):
                for buffer, g in zip(buffers, gradients(t, half, model)):
                    buffer.copy_(g)
        if get_spec(name).gradients_per_step == 2:
            step(closure)
        else:
            for p, g in zip(params, halves[0]):
                p.grad = g
            step()
    if hasattr(optimizer, "eval"):
        optimizer.eval()  # NIGT: compare the reported iterates
    return [p.detach().clone() for p in params]


def assert_same(compiled: list[torch.Tensor], eager: list[torch.Tensor], tolerance: float = 1e-6) -> None:
    start = [p.detach() for p in tiny_model().parameters()]
    assert max(((a - s).norm() / s.norm()).item() for a, s in zip(eager, start)) > 1e-3  # it trained
    for a, b in zip(compiled, eager):
        assert ((a - b).norm() / b.norm()).item() <= tolerance


@pytest.mark.parametrize("name", WRITTEN_HERE)
def test_full_graph_compiled_step_matches_eager(name, monkeypatch):
    if name == "lamb":  # the fused Adam kernel does not trace: compiled lamb runs the plain foreach ops,
        monkeypatch.setattr(lamb_module, "_fusable", lambda bucket: False)  # and so does its eager twin
    eager = train(name, compiled=False, foreach=True)
    assert_same(train(name, compiled=True), eager)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_torch_builtins_compile_with_graph_breaks_and_match_eager(name):
    assert_same(train(name, compiled=True), train(name, compiled=False), tolerance=1e-5)
