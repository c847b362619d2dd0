"""The two bodies of each optimizer written here: the multi-tensor one against the naive references
(lars, lamb; the normalized optimizers' files run both bodies), the two against each other,
state dicts passed between them, what the multi-tensor body keeps as state, and the peer-test
defects (a config lost on copies, lamb's numeric step)."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

from nightbench.optimizers import ParamGroupPolicy, create, get_spec
from nightbench.optimizers.memory import parameter_bytes, state_bytes

from . import test_lamb, test_lars
from .conformance import NoisyProblem, group_lrs, make_groups, max_relative_error, relative_error, run_packaged

WRITTEN_HERE = ("nsgd", "nsgd_momentum", "nigt", "nigt_adaptive", "lars", "lamb")


# -- lars and lamb: the multi-tensor body against the formulas ---------------------------------------

@pytest.mark.parametrize("transposed", [False, True], ids=["contiguous", "non-contiguous"])
@pytest.mark.parametrize("momentum,weight_decay", [(0.9, 5e-3), (0.0, 5e-3), (0.9, 0.0)])
def test_lars_multi_tensor_matches_the_formula(transposed, momentum, weight_decay):
    params = test_lars.make_params(seed=1, transposed=transposed)
    policy = ParamGroupPolicy(excluded_lr_multiplier=0.1, excluded_weight_decay=True)
    optimizer = create("lars", params, policy=policy, lr=2.0, momentum=momentum, weight_decay=weight_decay,
                       trust_coefficient=0.02, foreach=True)
    groups = [dict(g) for g in optimizer.param_groups]
    base_lrs = [g["lr"] for g in groups]
    start = [p.detach().clone() for p in params]
    expected = test_lars.reference_lars(params, groups, test_lars.STEPS, base_lrs, momentum, 0.02)
    run_packaged(optimizer, params, test_lars.STEPS, base_lrs)
    assert max_relative_error(params, expected) < 1e-10
    assert max_relative_error(params, start) > 1e-2  # it really moved


@pytest.mark.parametrize("transposed", [False, True], ids=["fused kernel", "plain foreach ops"])
@pytest.mark.parametrize("case", ["identity", "clamp", "no_decay", "excluded_decayed"])
def test_lamb_multi_tensor_matches_the_formula(transposed, case):
    params = test_lamb.make_params(seed=2, transposed=transposed)
    policy = ParamGroupPolicy(excluded_lr_multiplier=0.3, excluded_weight_decay=(case == "excluded_decayed"))
    optimizer = create("lamb", params, policy=policy, lr=0.02, beta1=0.8, beta2=0.95, eps=1e-6,
                       foreach=True, **test_lamb.CASES[case])
    groups = [dict(g) for g in optimizer.param_groups]
    base_lrs = [g["lr"] for g in groups]
    start = [p.detach().clone() for p in params]
    expected = test_lamb.reference_lamb(params, groups, test_lamb.STEPS, base_lrs, optimizer.defaults)
    run_packaged(optimizer, params, test_lamb.STEPS, base_lrs)
    assert max_relative_error(params, expected) < 1e-10
    assert max_relative_error(params, start) > 1e-2


# -- both bodies against each other ---------------------------------------------------------------

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


# -- what the multi-tensor body keeps -------------------------------------------------------------

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


# -- peer-test defects --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(WRITTEN_HERE) + ["sgd", "adam"])
def test_nightbench_config_survives_deepcopy_and_pickle(name):
    model = torch.nn.Linear(3, 2)
    optimizer = create(name, model, lr=0.01)
    config = optimizer.nightbench_config
    assert config["name"] == name and config["hyperparameters"]["lr"] == 0.01
    copied = copy.deepcopy(optimizer)
    unpickled = pickle.loads(pickle.dumps(optimizer))
    for other in (copied, unpickled):
        assert other.nightbench_config == config
        assert type(other) is type(optimizer) and len(other.param_groups) == len(optimizer.param_groups)
    if hasattr(optimizer, "foreach"):
        assert unpickled.foreach == optimizer.foreach
    plain = torch.optim.SGD(model.parameters(), lr=0.1)  # an optimizer built elsewhere copies as before
    assert not hasattr(copy.deepcopy(plain), "nightbench_config")


@pytest.mark.parametrize("foreach", [False, True], ids=["single", "multi"])
def test_lamb_loads_a_state_dict_whose_steps_are_numbers(foreach):
    params = test_lamb.make_params(seed=7)
    optimizer = create("lamb", params, lr=0.01, foreach=foreach)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    run_packaged(optimizer, params, 5, base_lrs)
    saved = copy.deepcopy(optimizer.state_dict())
    for entry in saved["state"].values():
        entry["step"] = float(entry["step"])  # as another implementation may save it
    resumed = [torch.nn.Parameter(p.detach().clone()) for p in params]
    restored = create("lamb", resumed, lr=0.01, foreach=foreach)
    restored.load_state_dict(saved)
    run_packaged(restored, resumed, 5, base_lrs, start=5)
    run_packaged(optimizer, params, 5, base_lrs, start=5)
    for a, b in zip(resumed, params):
        assert torch.equal(a.detach(), b.detach())
    assert all(isinstance(s["step"], torch.Tensor) and float(s["step"]) == 10.0 for s in restored.state.values())
