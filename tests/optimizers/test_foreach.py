"""The multi-tensor ("foreach") bodies: the same steps as the single-tensor bodies, state dicts passed
between the two, what a multi-tensor body keeps as state, non-finite gradients; and, what those bodies
are built for, `torch.compile(optimizer.step, fullgraph=True)`: one graph per step, the same
parameters as eager. (lars and lamb's multi-tensor bodies against the formulas: test_lars.py,
test_lamb.py; the normalized optimizers' files run both bodies.)

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

    NIGHTBENCH_COMPILE_BACKEND=inductor python -m pytest tests/optimizers/test_foreach.py -k compile
"""

from __future__ import annotations

import io
import os

import pytest
import torch

from nightbench.optimizers import create, get_spec
from nightbench.optimizers import lamb as lamb_module
from nightbench.optimizers.memory import parameter_bytes, state_bytes

from .conformance import NoisyProblem, group_lrs, make_groups, relative_error

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


CASES = [
    ("nsgd", {"lr": 0.05, "norm": "global", "weight_decay": 0.01}),
    ("nsgd_momentum", {"lr": 0.05, "weight_norm_scaling": True, "weight_decay": 0.01}),
    ("nigt", {"lr": 0.01, "weight_norm_scaling": True, "weight_decay": 0.01}),
    ("nigt", {"lr": 0.05, "norm": "global"}),
    ("nigt_adaptive", {"lr": 1.0, "weight_decay": 0.01}),
    ("nigt_adaptive", {"lr": 1.0, "norm": "global", "momentum_from_mean": True, "g": 20.0}),
    ("lars", {"lr": 1.0, "weight_decay": 1e-3, "trust_coefficient": 0.02}),
    ("lamb", {"lr": 0.02, "weight_decay": 0.01, "phi": "clamp", "phi_max": 1.5}),
]


def run_noisy(name, hp, foreach, steps, params=None, optimizer=None, start=0, problem=None):
    """`steps` steps on the conformance problem (both halves for nigt_adaptive), lr scheduled per step."""
    problem = problem or NoisyProblem(seed=31, noise=0.4)
    params = params if params is not None else problem.initial()
    optimizer = optimizer or create(name, make_groups(params, hp.get("weight_decay", 0.0)), foreach=foreach, **hp)
    two = get_spec(name).gradients_per_step == 2
    for t in range(start, start + steps):
        for group, lr in zip(optimizer.param_groups, group_lrs(hp["lr"], t)[-2:]):
            group["lr"] = lr
        halves = iter((0, 1))

        def closure():
            for p, g in zip(params, problem.grads(params, t, next(halves) if two else None)):
                p.grad = g
            return 0.0

        if two:
            optimizer.step(closure)
        else:
            closure()
            optimizer.step()
    return params, optimizer


def reported(optimizer, params):
    """The reported iterate (w_t for NIGT's lean form), as copies."""
    if hasattr(optimizer, "eval"):
        optimizer.eval()
    out = [p.detach().clone() for p in params]
    if hasattr(optimizer, "train"):
        optimizer.train()
    return out


@pytest.mark.parametrize("name,hp", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_both_bodies_take_the_same_steps(name, hp):
    single, opt_single = run_noisy(name, hp, False, 200)
    multi, opt_multi = run_noisy(name, hp, True, 200)
    start = NoisyProblem(seed=31).initial()
    assert relative_error(reported(opt_multi, multi), reported(opt_single, single)) <= 1e-10
    assert relative_error(single, start) > 1e-2  # the comparison is not between two standing runs


@pytest.mark.parametrize("name,hp", CASES[::2], ids=[n for n, _ in CASES[::2]])
@pytest.mark.parametrize("first,second", [(False, True), (True, False)], ids=["single->multi", "multi->single"])
def test_a_state_dict_of_one_body_resumes_in_the_other(name, hp, first, second):
    straight, opt_straight = run_noisy(name, hp, first, 40)
    half, optimizer = run_noisy(name, hp, first, 20)
    buffer = io.BytesIO()
    torch.save({"params": half, "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    params = [p.clone() for p in saved["params"]]
    other = create(name, make_groups(params, hp.get("weight_decay", 0.0)), foreach=second, **hp)
    other.load_state_dict(saved["optimizer"])
    run_noisy(name, hp, second, 20, params=params, optimizer=other, start=20)
    assert relative_error(reported(other, params), reported(opt_straight, straight)) <= 1e-10


SCALARS = {"nsgd": 0, "nsgd_momentum": 0, "nigt": 2, "nigt_adaptive": 5, "lars": 0, "lamb": 1}  # 0-dim per tensor


@pytest.mark.parametrize("name", WRITTEN_HERE)
def test_multi_tensor_state_is_the_slots_plus_0_dim_scalars(name):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.LayerNorm(5), torch.nn.Linear(5, 2))
    params = list(model.parameters())
    _, optimizer = run_noisy_model(name, model, steps=3)
    slots = get_spec(name).state_slots
    for p in params:
        state = optimizer.state[p]
        big = [v for v in state.values() if isinstance(v, torch.Tensor) and v.dim() > 0]
        small = [v for v in state.values() if isinstance(v, torch.Tensor) and v.dim() == 0]
        assert len(big) == slots and all(v.shape == p.shape for v in big)
        assert len(small) == SCALARS[name] and len(state) == len(big) + len(small), sorted(state)
        assert all(v.dtype == torch.float32 for v in small if v is not state.get("step"))
    # The scalars cost at most 4 bytes each per tensor (fewer where a value is shared).
    extra = state_bytes(optimizer) - slots * parameter_bytes(optimizer)
    assert 0 <= extra <= 4 * SCALARS[name] * len(params)


def run_noisy_model(name, model, steps):
    optimizer = create(name, model, foreach=True)
    x = torch.randn(8, 6)

    def closure():
        optimizer.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss

    for _ in range(steps):
        if get_spec(name).gradients_per_step == 2:
            optimizer.step(closure)
        else:
            closure()
            optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("name", ["nsgd_momentum", "nigt", "lars"])
def test_multi_tensor_non_finite_gradient_shows_in_the_parameters_and_does_not_raise(name):
    """No host read decides to skip: a NaN gradient propagates, and the training loss reports it."""
    p = torch.nn.Parameter(torch.ones(3, 2))
    optimizer = create(name, [p], foreach=True)
    p.grad = torch.full_like(p, float("nan"))
    optimizer.step()
    assert not torch.isfinite(p).all()
