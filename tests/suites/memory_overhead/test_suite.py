"""Suite memory_overhead: exact state sizes of every builtin optimizer on the real model families,
the CPU peak-memory measurement, and the `ci` preset end to end through the run engine."""

from __future__ import annotations

import json

import pytest
import torch

from nightbench.optimizers import ParamGroupPolicy, create, get_spec, names
from nightbench.optimizers.memory import state_bytes
from nightbench.suites.base import RunContext
from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.memory_overhead import SUITE
from nightbench.suites.memory_overhead.models import build_model_under_test
from nightbench.suites.memory_overhead.peak import cpu_peak_unavailable_reason, measure_peak_in_subprocess
from nightbench.suites.memory_overhead.presets import PRESETS, validate_config

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


def _small_peak_request(**extra):
    config = validate_config(PRESETS["ci"])
    return {"family": "resnet", "config": config, "device": "cpu", "seed": 0, "optimizer": "sgd",
            "hyperparameters": {}, "policy": {}, **extra}


@pytest.mark.slow
@pytest.mark.skipif(cpu_peak_unavailable_reason() is not None, reason=str(cpu_peak_unavailable_reason()))
def test_peak_measurement_sees_exactly_the_measured_step():
    """A buffer held during the measured step raises its peak by the buffer's size; one held only during
    the warm-up step does not (the high-water mark was reset in between). Each in a fresh subprocess:
    in this long-lived process freed memory is reused without the resident size moving."""
    buffer = 256 * 2**20
    during_step = measure_peak_in_subprocess(_small_peak_request(extra_step_bytes=buffer), timeout_s=120)
    during_warmup = measure_peak_in_subprocess(_small_peak_request(extra_warmup_bytes=buffer), timeout_s=120)
    for result in (during_step, during_warmup):
        assert result["peak_unavailable_reason"] is None, result["peak_unavailable_reason"]
        assert result["peak_step_bytes"] >= result["rss_before_step"] > 0
        assert result["peak_step_increment_bytes"] > 0  # gradients and activations at least
        assert result["optimizer_step_peak_increment_bytes"] >= 0
    # Without the buffer both measure the same step, so the difference is the buffer alone.
    extra = during_step["peak_step_increment_bytes"] - during_warmup["peak_step_increment_bytes"]
    assert 0.9 * buffer <= extra <= 1.1 * buffer


@pytest.mark.slow
def test_a_failing_peak_subprocess_gives_null_figures_with_the_reason():
    result = measure_peak_in_subprocess(_small_peak_request(family="vgg"), timeout_s=120)
    assert result["peak_step_bytes"] is None and result["peak_step_increment_bytes"] is None
    assert "exited with status" in result["peak_unavailable_reason"]
    assert "unknown model family 'vgg'" in result["peak_unavailable_reason"]


def _memory_records(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == "memory"]


def test_ci_preset_end_to_end_through_the_engine(tmp_path):
    """Both families for sgd; the peak subprocess is left out here (the tests below run it) to save time."""
    request = RunRequest(suite="memory_overhead", optimizer="sgd", preset="ci", overrides={"peak_memory": False},
                         results_root=str(tmp_path), progress=False)
    outcome = execute_run(request)
    assert outcome.status == "completed", outcome.summary.get("error")
    records = {r["unit"]: r for r in _memory_records(outcome.run_dir)}
    assert set(records) == {"bert", "resnet"}
    for unit, r in records.items():
        assert r["state_bytes_per_param"] == pytest.approx(4, abs=0.01)  # sgd: one float32 momentum buffer
        assert r["param_copies"] == pytest.approx(1, abs=0.01)
        assert r["state_breakdown"]["momentum_buffer"]["bytes"] == r["param_bytes"]
        assert r["peak_step_bytes"] is None and "peak_memory=false" in r["peak_unavailable_reason"]
        assert r["train_step_time"] > 0 and r["optimizer_step_time"] > 0
        assert outcome.summary["final_metrics"][f"{unit}_state_bytes_per_param"] == r["state_bytes_per_param"]
    again = execute_run(request)  # a finished run is found and nothing is measured again
    assert again.skipped and len(_memory_records(outcome.run_dir)) == 2


@pytest.mark.slow
def test_ci_preset_two_gradient_optimizer_with_the_peak_subprocess(tmp_path):
    two_gradient = [n for n in names() if get_spec(n).gradients_per_step == 2]
    assert two_gradient, "no two-gradient optimizer is registered (nigt_adaptive expected)"
    outcome = execute_run(RunRequest(suite="memory_overhead", optimizer=two_gradient[0], preset="ci",
                                     overrides={"families": ["bert"]}, results_root=str(tmp_path),
                                     progress=False))
    assert outcome.status == "completed", outcome.summary.get("error")
    (record,) = _memory_records(outcome.run_dir)
    assert record["gradients_per_step"] == 2 and record["optimizer_step_time_includes_grad_restore"]
    assert record["state_bytes"] >= 4 * record["params"]  # its momentum
    assert record["peak_unavailable_reason"] is None, record["peak_unavailable_reason"]
    # Params, state and the runtime are resident before the step; the step adds gradients and activations.
    assert record["rss_before_step"] > record["param_bytes"] + record["state_bytes"]
    assert record["peak_step_increment_bytes"] >= record["param_bytes"]  # at least one set of gradients
    assert record["optimizer_step_peak_bytes"] is None  # its step computes its own gradients
    assert outcome.summary["final_metrics"]["bert_peak_step_bytes"] == record["peak_step_bytes"]


def _context(tmp_path, optimizer_name, config, done, logged):
    spec = get_spec(optimizer_name)
    return RunContext(
        config=config, seed=0, device=CPU, cache_dir=str(tmp_path), run_dir=str(tmp_path),
        optimizer_name=optimizer_name, hyperparameters=spec.resolve({}), policy=ParamGroupPolicy(), spec=spec,
        make_optimizer=lambda model, **hp: create(optimizer_name, model, **{**spec.resolve({}), **hp}),
        log=logged.append, done_units=lambda: set(done), set_total_units=lambda n: None,
        progress=lambda n=1: None,
    )


@pytest.mark.slow
def test_resume_skips_logged_units_and_still_summarizes_them(tmp_path):
    earlier = {"kind": "memory", "unit": "bert", "state_bytes_per_param": 8.0, "params": 10}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(earlier) + "\n")
    logged = []
    config = {**PRESETS["ci"], "peak_memory": False}
    summary = SUITE.run(_context(tmp_path, "adam", config, done={"bert"}, logged=logged))
    assert [r["unit"] for r in logged] == ["resnet"]
    assert logged[0]["peak_step_bytes"] is None and "peak_memory=false" in logged[0]["peak_unavailable_reason"]
    assert logged[0]["state_bytes_per_param"] >= 8  # adam: two float32 moments
    assert summary["bert_state_bytes_per_param"] == 8.0
    assert summary["resnet_state_bytes_per_param"] == logged[0]["state_bytes_per_param"]


@pytest.mark.parametrize("key,value,named", [
    ("families", ["vgg"], "families"), ("bert_batch", 1, "bert_batch"), ("resnet_layers", [3, 4], "resnet_layers"),
    ("bert_heads", 3, "bert_hidden"), ("precision", "bf16", "precision"),
])
def test_bad_config_names_the_key(key, value, named):
    with pytest.raises(ValueError, match=named):
        validate_config({**PRESETS["ci"], key: value})


def test_presets_build_the_named_model_families():
    assert set(SUITE.presets) == {"paper", "small", "ci"}
    for preset in SUITE.presets.values():
        assert validate_config(preset)["families"] == ["bert", "resnet"]
    ci = build_model_under_test("resnet", PRESETS["ci"], CPU, seed=0)
    assert "resnet50 family" in ci.description and ci.model.default_cfg["architecture"] == "resnet50"


@pytest.mark.slow
@pytest.mark.skipif(cpu_peak_unavailable_reason() is not None, reason=str(cpu_peak_unavailable_reason()))
def test_both_bodies_are_measured_and_nigt_multi_tensor_needs_at_most_one_tensor_more():
    """The peak worker measures each body of an optimizer written here on its own. NIGT's multi-tensor
    step works in place: its increment over the single-tensor body's is at most one largest tensor."""
    config = validate_config(PRESETS["ci"])
    result = measure_peak_in_subprocess({**_small_peak_request(), "family": "bert", "optimizer": "nigt",
                                         "hyperparameters": {"weight_decay": 0.01}}, timeout_s=300)
    assert result["peak_unavailable_reason"] is None, result["peak_unavailable_reason"]
    unit = build_model_under_test("bert", config, CPU, seed=0)
    largest = max(p.numel() * p.element_size() for p in unit.model.parameters())
    for body in ("single", "multi"):
        assert result[f"peak_step_increment_bytes_{body}"] > 0  # gradients and activations at least
        assert result[f"optimizer_step_peak_increment_bytes_{body}"] >= 0
    assert result["optimizer_step_peak_increment_bytes_multi"] <= result["optimizer_step_peak_increment_bytes_single"] + largest
    assert result["peak_step_increment_bytes_multi"] <= result["peak_step_increment_bytes_single"] + largest
    one_body = measure_peak_in_subprocess({**_small_peak_request(), "family": "bert"}, timeout_s=300)  # torch's sgd
    assert one_body["optimizer_step_peak_increment_bytes_multi"] is not None  # foreach is passed on to torch
