"""One unit (problem, batch size, lr, repeat): its seed, float64 training by every optimizer, two half-batches for two-gradient optimizers, measurements at the reported iterate."""

from __future__ import annotations

import pytest
import torch

from nightbench.optimizers import ParamGroupPolicy, create, names
from nightbench.suites.small_batch_variance.presets import PRESETS, validate_config
from nightbench.suites.small_batch_variance.problems import DTYPE, build_problem
from nightbench.suites.small_batch_variance.units import Unit, run_unit, unit_seed


def test_unit_seeds_depend_on_run_seed_and_key_only():
    a = unit_seed(0, "skewed_quadratic/b1/lr0.01/r0")
    assert a == unit_seed(0, "skewed_quadratic/b1/lr0.01/r0") and 0 <= a < 2 ** 53
    assert a != unit_seed(1, "skewed_quadratic/b1/lr0.01/r0") != unit_seed(0, "skewed_quadratic/b1/lr0.01/r1")


@pytest.mark.parametrize("optimizer", sorted(names()))
def test_every_registered_optimizer_trains_float64_parameters(optimizer):
    params = [torch.ones(3, dtype=DTYPE, requires_grad=True)]
    opt = create(optimizer, params, policy=ParamGroupPolicy(exclude="none"))

    def closure():
        params[0].grad = params[0].detach() * 2 + 0.1
        return torch.tensor(0.0, dtype=DTYPE)

    for _ in range(3):
        opt.step(closure)
    assert params[0].dtype == DTYPE and bool(torch.isfinite(params[0]).all())
    assert not torch.equal(params[0].detach(), torch.ones(3, dtype=DTYPE))


def test_two_gradient_optimizers_get_two_independent_half_batches_per_step():
    config = validate_config(dict(PRESETS["ci"], skewed_steps=5, curve_points=5, measurements=5, variance_draws=2))
    inner = build_problem("skewed_quadratic", config)
    calls = []

    class Recording:
        family, name, measure_name = inner.family, inner.name, inner.measure_name
        initial_params, true_gradient, measure = inner.initial_params, inner.true_gradient, inner.measure

        def sample_gradient(self, params, n, rng):
            calls.append((n, float(params[0].detach())))
            return inner.sample_gradient(params, n, rng)

    def make(params, lr):
        return create("nigt_adaptive", params, policy=ParamGroupPolicy(exclude="none"), lr=lr)

    record = run_unit(Unit("skewed_quadratic", 8, 1.0, 0), Recording(), config, 0, make, gradients_per_step=2)
    training = calls[: 2 * 5]  # then come the variance draws, at the full batch size
    assert [n for n, _ in training] == [4] * 10
    assert all(training[i][1] == training[i + 1][1] for i in range(0, 10, 2))  # both halves at one point
    assert record["status"] == "ok" and len(calls) == 10 + 2 and calls[-1][0] == 8


class ReportsTheMinimum(torch.optim.SGD):
    """Trains like SGD but reports w = 1, the skewed quadratic's minimum (a known reported iterate)."""

    def eval(self):
        self.saved = [p.detach().clone() for g in self.param_groups for p in g["params"]]
        for g in self.param_groups:
            for p in g["params"]:
                p.data.fill_(1.0)

    def train(self):
        for p, saved in zip((p for g in self.param_groups for p in g["params"]), self.saved):
            p.data.copy_(saved)


def test_measurements_are_taken_at_the_reported_iterate_and_training_continues_from_x():
    config = validate_config(dict(PRESETS["ci"], skewed_steps=50, variance_draws=2))
    assert config["skewed_center"] == 1.0 and config["skewed_distance"] == 1.0
    seen = []

    def make(params, lr):
        seen.extend(params)
        return ReportsTheMinimum(params, lr=lr)

    record = run_unit(Unit("skewed_quadratic", 4, 0.01, 0), build_problem("skewed_quadratic", config), config, 0,
                      make, gradients_per_step=1)
    assert record["floor"] == 0.0 and record["final_grad_norm"] == 0.0  # grad F(1) = 0
    assert all(v == 0.0 for _, v in record["curve"])
    assert 0.3 < seen[0].item() - 1.0 < 1.0  # the trained point moved from 2 towards 1 and was restored
