"""Shared helper for the small_batch_variance tests: one run of the suite on the ci preset."""

from __future__ import annotations

from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.run_dir import read_metrics


def run(tmp_path, optimizer, seed=0, **overrides):
    """One run of the suite on the ci preset through the engine; returns (outcome, unit records)."""
    outcome = execute_run(RunRequest(suite="small_batch_variance", optimizer=optimizer, preset="ci", seed=seed,
                                     overrides=overrides, results_root=str(tmp_path), progress=False))
    assert outcome.status == "completed", outcome.summary.get("error")
    return outcome, [r for r in read_metrics(outcome.run_dir) if r.get("kind") == "sbv_unit"]
