"""A report row is one experiment (issue 22, class 1): runs with other hyperparameters never join the
default row, and times from different machines or software are never averaged silently."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nightbench.reports import load_results
from nightbench.reports.profiles import target_costs
from nightbench.reports.tables import benchmark_score_table, leaderboard
from nightbench.suites import catalog
from nightbench.suites.engine import RunRequest, execute_run


@pytest.fixture
def toy_runs(monkeypatch, tmp_path):
    """Two default seeds of sgd on the toy suite, and seed 0 again with `--set lr=0.3`."""
    monkeypatch.setitem(catalog.CATALOG.entries, "toy", "tests.suites.toy_suite")

    def run(seed, **overrides):
        return execute_run(RunRequest(suite="toy", optimizer="sgd", preset="ci", seed=seed, overrides=overrides,
                                      results_root=str(tmp_path), progress=False))
    return tmp_path, [run(0), run(1)], run(0, lr=0.3)


def _final(outcome) -> float:
    return json.loads((Path(outcome.run_dir) / "summary.json").read_text())["final_metrics"]["neg_mse"]


def test_a_run_with_other_hyperparameters_is_a_row_of_its_own(toy_runs):
    root, default, other = toy_runs
    table = leaderboard(load_results(root).runs, "toy").raw.set_index("optimizer")
    assert sorted(table.index) == ["sgd", "sgd [lr=0.3]"]
    assert table.loc["sgd", "runs"] == 2 and table.loc["sgd", "seeds"] == "0, 1"
    assert table.loc["sgd", "mean"] == pytest.approx(sum(map(_final, default)) / 2)
    assert table.loc["sgd [lr=0.3]", "runs"] == 1 and table.loc["sgd [lr=0.3]", "mean"] == pytest.approx(_final(other))


def test_times_from_two_environments_are_not_averaged_and_the_row_says_so(toy_runs):
    root, default, _ = toy_runs
    config = Path(default[1].run_dir) / "config.json"
    value = json.loads(config.read_text())
    value["environment"]["cpu"] = "Another CPU"  # results merged from a second machine
    config.write_text(json.dumps(value))
    runs = load_results(root).runs
    table = leaderboard(runs, "toy")
    row = table.raw.set_index("optimizer").loc["sgd"]
    assert row["environments"] == 2 and math.isnan(row["wall_time_mean_s"]) and math.isnan(row["time_to_target_mean_s"])
    assert row["mean"] == pytest.approx(sum(map(_final, default)) / 2)  # the metric is still averaged
    shown = table.display.set_index("Optimizer").loc["sgd"]
    assert shown["Wall time"] == "2 environments: not averaged" == shown["Time to target"]
    assert any("sgd: its runs come from 2 environments" in note and "Another CPU" in note for note in table.notes)
    # the time-based profile and score compare optimizers within one environment only
    assert len(target_costs(runs, "time")) == 2 and len(target_costs(runs, "steps")) == 1
    assert all(" on cpu " in problem for problem in target_costs(runs, "time").index)
    assert benchmark_score_table(runs) is not None


def test_one_environment_keeps_its_times(toy_runs):
    root, default, _ = toy_runs
    row = leaderboard(load_results(root).runs, "toy").raw.set_index("optimizer").loc["sgd"]
    walls = [json.loads((Path(o.run_dir) / "summary.json").read_text())["wall_time"] for o in default]
    assert row["environments"] == 1 and row["wall_time_mean_s"] == pytest.approx(sum(walls) / 2)
