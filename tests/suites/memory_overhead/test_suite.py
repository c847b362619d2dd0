"""Suite memory_overhead: the `ci` preset end to end through the run engine, and a resumed run."""

from __future__ import annotations

import json

import pytest
import torch

from nightbench.optimizers import ParamGroupPolicy, create, get_spec, names
from nightbench.suites.base import RunContext
from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.memory_overhead import SUITE
from nightbench.suites.memory_overhead.presets import PRESETS

CPU = torch.device("cpu")


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
