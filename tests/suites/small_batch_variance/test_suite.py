"""The small-batch variance suite: the paper's findings on the ci preset, and the suite's mechanics.

Findings (Cutkosky & Mehta 2020, Sections 2-4), on the skewed quadratic at batch 1, ci preset,
seed 0: nsgd parks at a floor near p whatever the lr; nsgd_momentum and nigt end well below p and
lower still at a 10x smaller lr. nsgd_momentum/nigt with beta = 0 ARE nsgd, so they must fail the
momentum check: that is how we know the check can fail.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nightbench.suites.small_batch_variance import suite as sbv
from nightbench.optimizers import ParamGroupPolicy, create, names
from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.run_dir import read_metrics
from nightbench.suites.small_batch_variance import findings, measure
from nightbench.suites.small_batch_variance.presets import PRESETS, SuiteConfigError, validate_config
from nightbench.suites.small_batch_variance.problems import (
    DTYPE, RotatedNonconvex, SkewedNoise1D, build_problem, gradient_variance,
)
from nightbench.suites.small_batch_variance.units import Unit, run_unit, unit_seed

P = PRESETS["ci"]["skew_p"]
RECORD_FIELDS = {"kind", "unit", "problem", "batch_size", "lr", "unit_seed", "floor", "final_grad_norm", "curve",
                 "slope", "slope_ci", "grad_variance"}


def run(tmp_path, optimizer, seed=0, **overrides):
    """One run of the suite on the ci preset through the engine; returns (outcome, unit records)."""
    outcome = execute_run(RunRequest(suite="small_batch_variance", optimizer=optimizer, preset="ci", seed=seed,
                                     overrides=overrides, results_root=str(tmp_path), progress=False))
    assert outcome.status == "completed", outcome.summary.get("error")
    return outcome, [r for r in read_metrics(outcome.run_dir) if r.get("kind") == "sbv_unit"]


def without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


BATCH1_SWEEP = {"problems": ["skewed_quadratic"], "batch_sizes": [1]}  # ci lrs: run lr x {1, 0.1}


# ---- the findings ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_nsgd_stalls_near_p_at_batch_1_whatever_the_lr_and_drifts_on_the_flat_problem(tmp_path):
    _, records = run(tmp_path, "nsgd", problems=["skewed_flat", "skewed_quadratic"], batch_sizes=[1, 256])
    floors = findings.floors_by_lr(records, "skewed_quadratic", 1)
    assert sorted(floors) == pytest.approx([1e-3, 1e-2])
    assert findings.stalls_at_skew_floor(floors, P), floors
    assert not findings.keeps_shrinking(floors, P), floors
    # A large batch is the paper's remedy without momentum: the floor falls far below p.
    assert min(findings.floors_by_lr(records, "skewed_quadratic", 256).values()) < 0.25 * P
    # On the flat problem nsgd drifts at E[g/|g|] = 1 - 2p lr per step (the paper's Section 2 argument).
    for lr, drift in findings.floors_by_lr(records, "skewed_flat", 1).items():
        assert drift == pytest.approx(1 - 2 * P, abs=0.1), (lr, drift)


@pytest.mark.parametrize("optimizer", ["nsgd_momentum", "nigt"])
def test_momentum_keeps_shrinking_at_batch_1(tmp_path, optimizer):
    _, records = run(tmp_path, optimizer, **BATCH1_SWEEP)
    floors = findings.floors_by_lr(records, "skewed_quadratic", 1)
    assert findings.keeps_shrinking(floors, P), floors
    assert not findings.stalls_at_skew_floor(floors, P), floors


@pytest.mark.parametrize("optimizer", ["nsgd_momentum", "nigt"])
def test_momentum_check_fails_without_momentum(tmp_path, optimizer):
    """beta = 0 turns both into nsgd: the check that passes above must flag it."""
    _, records = run(tmp_path, optimizer, beta=0.0, **BATCH1_SWEEP)
    floors = findings.floors_by_lr(records, "skewed_quadratic", 1)
    verdict = findings.keeps_shrinking(floors, P)
    assert not verdict, floors
    assert "not below" in verdict.reason
    assert findings.stalls_at_skew_floor(floors, P), floors


def test_criteria_on_hand_made_floors():
    assert findings.stalls_at_skew_floor({1e-2: 0.19, 1e-3: 0.2}, 0.2)
    assert not findings.stalls_at_skew_floor({1e-2: 0.19, 1e-3: 0.05}, 0.2)  # shrank: not a stall
    assert not findings.stalls_at_skew_floor({1e-2: 0.19}, 0.2)  # one lr proves nothing
    assert findings.keeps_shrinking({1e-2: 0.08, 1e-3: 0.03}, 0.2)
    assert not findings.keeps_shrinking({1e-2: 0.03, 1e-3: 0.029}, 0.2)  # low but not falling with the lr
    assert not findings.keeps_shrinking({1e-2: 0.08, 1e-3: math.inf}, 0.2)  # a diverged unit


# ---- problems and measurements ----------------------------------------------------------------------

def test_skewed_noise_has_mean_zero_and_variance_p_1_minus_p_over_batch():
    problem = SkewedNoise1D(P, 1.0, 0.5, 0.3)
    params = problem.initial_params()
    rng = torch.Generator().manual_seed(1)
    for batch in (1, 16):
        samples = [problem.sample_gradient(params, batch, rng)[0][0].item() + 0.2 for _ in range(4000)]
        assert np.mean(samples) == pytest.approx(0.0, abs=4 * math.sqrt(P * (1 - P) / batch / 4000))
        variance = gradient_variance(problem, params, batch, 4000, rng)
        assert variance == pytest.approx(P * (1 - P) / batch, rel=0.1)


def test_nonconvex_gradient_is_exact_and_its_noise_has_variance_sigma2_over_batch():
    problem = RotatedNonconvex(dim=6, sigma=2.0, curvature=2.0, seed=3)
    w = torch.randn(6, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    numeric = torch.zeros(6, dtype=DTYPE)
    for i in range(6):  # central differences of F itself, not of the formula under test
        e = torch.zeros(6, dtype=DTYPE)
        e[i] = 1e-6
        numeric[i] = (problem.value(w + e) - problem.value(w - e)) / 2e-6
    assert torch.allclose(problem.true_gradient([w])[0], numeric, atol=1e-7)
    rng = torch.Generator().manual_seed(2)
    assert gradient_variance(problem, [w], 4, 4000, rng) == pytest.approx(4.0 / 4, rel=0.1)
    assert problem.L == 3.0 and problem.rho == 2.0


def test_fit_exponent_recovers_a_power_law_and_brackets_it():
    steps = measure.curve_checkpoints(10_000, 40)
    rng = np.random.default_rng(0)
    curve = [[s, 3.0 * s ** -0.25 * math.exp(rng.normal(0, 0.05))] for s in steps]
    slope, (lo, hi) = measure.fit_exponent(curve, from_step=100)
    assert lo < -0.25 < hi and hi - lo < 0.1
    assert slope == pytest.approx(-0.25, abs=0.05)
    assert measure.fit_exponent(curve[:2]) == (None, None)


def test_curve_floor_and_checkpoints():
    checkpoints = measure.curve_checkpoints(1000, 50)
    assert checkpoints[0] == 1 and checkpoints[-1] == 1000 and len(checkpoints) <= 50
    measurements = [(s, float(s)) for s in range(1, 1001)]
    curve = measure.bucket_curve(measurements, [10, 100, 1000])
    assert curve == [[10, 5.5], [100, 55.5], [1000, 550.5]]  # means of 1..10, 11..100, 101..1000
    assert measure.floor_of(measurements, 1000, 0.25) == pytest.approx(np.mean(range(751, 1001)))


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


# ---- runs: determinism, resume, bad input, the run directory ------------------------------------------

SMALL_MIX = {"problems": ["skewed_quadratic", "nonconvex", "digits_mlp"], "batch_sizes": [1, 4],
             "lr_multipliers": [1.0], "skewed_steps": 300, "nonconvex_steps": 100, "mlp_steps": 20}


@pytest.mark.parametrize("optimizer", ["nigt", "nigt_adaptive"])
def test_same_seed_gives_identical_records_and_another_seed_does_not(tmp_path, optimizer):
    _, first = run(tmp_path / "a", optimizer, **SMALL_MIX)
    _, second = run(tmp_path / "b", optimizer, **SMALL_MIX)
    _, other = run(tmp_path / "c", optimizer, seed=1, **SMALL_MIX)
    assert len(first) == 6 and without_time(first) == without_time(second)
    assert [r["floor"] for r in other] != [r["floor"] for r in first]


def test_resume_skips_finished_units_and_ends_identical(tmp_path, monkeypatch):
    full, records = run(tmp_path / "full", "nsgd_momentum", **SMALL_MIX)
    # A run killed after three units: its directory has config and three records, no summary.
    killed = execute_run(RunRequest(suite="small_batch_variance", optimizer="nsgd_momentum", preset="ci",
                                    overrides=SMALL_MIX, results_root=str(tmp_path / "killed"), progress=False))
    (killed.run_dir / "summary.json").unlink()
    lines = (killed.run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    kept = [json.loads(line) for line in lines[:3]]
    kept[-1]["time"] = 1000.0  # as if the killed session had worked 1000 s before its third record
    (killed.run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    calls = []
    original = sbv.run_unit
    monkeypatch.setattr(sbv, "run_unit", lambda unit, *a, **k: calls.append(unit.key) or original(unit, *a, **k))
    resumed, resumed_records = run(tmp_path / "killed", "nsgd_momentum", **SMALL_MIX)
    assert calls == [r["unit"] for r in records[3:]]
    assert without_time(resumed_records) == without_time(records)
    assert resumed.summary["final_metrics"] == full.summary["final_metrics"]
    # the clock continues: the earlier session's time counts in wall_time and the new records follow it
    assert all(r["time"] >= 1000.0 for r in resumed_records[3:])
    assert resumed.summary["wall_time"] >= 1000.0


@pytest.mark.parametrize("key, value, expected", [
    ("skew_p", 0.7, "skew_p=0.7: expected a number in (0, 0.5)"),
    ("batch_sizes", [0, 4], "batch_sizes=0: expected an integer in [1, 65536]"),
    ("problems", ["skewed_flat", "rosenbrock"], "expected distinct names from"),
    ("lr_multipliers", [], "expected a non-empty list"),
    ("skewed_steps", 2.5, "expected an integer in [1, inf]"),
])
def test_bad_config_values_fail_naming_the_key_and_what_is_accepted(key, value, expected):
    with pytest.raises(SuiteConfigError, match="small_batch_variance") as info:
        validate_config({**PRESETS["ci"], key: value})
    assert expected in str(info.value)


def test_bad_config_value_through_the_engine_names_the_key(tmp_path):
    try:
        outcome = execute_run(RunRequest(suite="small_batch_variance", optimizer="nsgd", preset="ci",
                                         overrides={"skew_p": 0.7}, results_root=str(tmp_path), progress=False))
    except ValueError as exc:  # an engine that validates before starting the run
        message = str(exc)
    else:
        assert outcome.status == "failed"
        message = outcome.summary["error"]
    assert "skew_p" in message and "(0, 0.5)" in message


@pytest.mark.slow
def test_ci_preset_end_to_end_writes_a_readable_run_directory(tmp_path):
    outcome, records = run(tmp_path, "nsgd")
    config = json.loads((outcome.run_dir / "config.json").read_text())
    assert config["suite"] == "small_batch_variance" and config["suite_config"]["batch_sizes"] == [1, 16, 256]
    ci = PRESETS["ci"]
    assert len(records) == len(ci["problems"]) * len(ci["batch_sizes"]) * len(ci["lr_multipliers"])
    for r in records:
        assert RECORD_FIELDS <= set(r) and r["status"] == "ok"
        assert 3 <= len(r["curve"]) <= ci["curve_points"] and r["grad_variance"] > 0
    metrics = outcome.summary["final_metrics"]
    assert metrics["units"] == len(records) and metrics["diverged_units"] == 0
    for problem in ci["problems"]:
        assert metrics[f"floor_{problem}_b256"] < metrics[f"floor_{problem}_b1"], problem
    assert metrics["floor_over_p_skewed_quadratic_b1"] == pytest.approx(1.0, abs=0.25)
