"""The ci preset runs to completion through the engine for every registered builtin optimizer."""

from __future__ import annotations

import json
import math

import pytest

from nightbench.optimizers import names
from nightbench.suites.engine import RunRequest, execute_run


@pytest.mark.parametrize("optimizer", names())
def test_ci_preset_completes_with_finite_metrics(results_root, optimizer):
    outcome = execute_run(RunRequest(suite="bert_mlm", optimizer=optimizer, preset="ci", seed=0,
                                     results_root=str(results_root), progress=False))
    assert outcome.status == "completed", outcome.summary.get("error")
    final = outcome.summary["final_metrics"]
    assert 0.0 <= final["mlm_accuracy"] <= 1.0
    assert math.isfinite(final["mlm_loss"]) and final["eval_masked_tokens"] > 0
    records = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) for r in train)
    assert 0.0 <= outcome.summary["data_wait_fraction"] < 1.0
