"""resnet50_imagenet through the engine: the ci preset for every registered optimizer, and sgd's
learning rate dropping at the scaled milestones in a real run."""

from __future__ import annotations

import math

import pytest

from nightbench.optimizers import names
from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.run_dir import read_metrics


def ci_run(tmp_path, optimizer, **overrides):
    return execute_run(RunRequest(suite="resnet50_imagenet", optimizer=optimizer, preset="ci", seed=0,
                                  results_root=str(tmp_path), overrides=overrides, progress=False))


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", names())
def test_ci_preset_completes_with_finite_metrics(tmp_path, optimizer):
    outcome = ci_run(tmp_path, optimizer)
    assert outcome.status == "completed", outcome.summary.get("error")
    summary = outcome.summary
    assert summary["steps"] == 9  # 96 images // batch 16 = 6 steps/epoch, x 1.5 epochs
    final = summary["final_metrics"]
    assert all(math.isfinite(final[k]) for k in ("top1", "top5", "loss"))
    assert 0.0 <= final["top1"] <= final["top5"] <= 1.0
    assert 0.0 <= summary["data_wait_fraction"] < 1.0
    evals = [r for r in read_metrics(outcome.run_dir) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [6, 9]  # every epoch (6 steps) and at the end


def test_sgd_learning_rate_drops_at_the_scaled_milestones_in_a_real_run(tmp_path):
    outcome = ci_run(tmp_path, "sgd", log_every=1, lr=0.2)
    lrs = {r["step"]: r["lr"] for r in read_metrics(outcome.run_dir) if r["kind"] == "train"}
    # ci: 1.5 epochs x 6 steps; milestones 30/90, 60/90, 80/90 of the run -> steps 3, 6, 8;
    # the record of step s carries the lr used by step s (0-based step s - 1)
    expected = [0.2, 0.2, 0.2, 0.02, 0.02, 0.02, 0.002, 0.002, 0.0002]
    assert [lrs[s] for s in range(1, 10)] == pytest.approx(expected)
