"""The small-batch variance suite end to end on the ci preset: determinism, resume, the run directory.

(The paper's findings are tested in test_findings.py, the pieces of a run in the other files here.)
"""

from __future__ import annotations

import json

import pytest

from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.small_batch_variance import suite as sbv
from nightbench.suites.small_batch_variance.presets import PRESETS

from .helpers import run

RECORD_FIELDS = {"kind", "unit", "problem", "batch_size", "lr", "unit_seed", "floor", "final_grad_norm", "curve",
                 "slope", "slope_ci", "grad_variance"}


def without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


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
