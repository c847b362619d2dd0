"""Tables: confidence intervals, protocol selection, time to target, failures, floors, memory, profiles.

Also: a row is one experiment (runs with other hyperparameters never join the default row, times from
different environments are never averaged silently), the tuning table reads the tuning record's best
lr rather than working it out again, and the interval method switches at five seeds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nightbench.reports import load_results
from nightbench.reports import performance_ratios, profile_curve, reported_runs, t_interval
from nightbench.reports import tables
from nightbench.reports.profiles import target_costs
from nightbench.reports.stats import BCA, MIN_MAX
from nightbench.reports.tables import benchmark_score_table, leaderboard
from nightbench.suites import catalog
from nightbench.suites.engine import RunRequest, execute_run


def test_t_interval_matches_the_t_table():
    # [1, 2, 3]: mean 2, s = 1, t(0.975, df=2) = 4.303 from a printed t table
    iv = t_interval([1.0, 2.0, 3.0])
    assert iv.mean == 2.0 and iv.n == 3 and iv.std == pytest.approx(1.0)
    assert iv.high - iv.mean == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)
    assert iv.mean - iv.low == pytest.approx(iv.high - iv.mean)


def test_t_interval_matches_scipy_interval():
    values = [0.350, 0.352, 0.349, 0.361]
    iv = t_interval(values, confidence=0.9)
    low, high = stats.t.interval(0.9, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (iv.low, iv.high) == pytest.approx((low, high))


def test_t_interval_edge_cases():
    single = t_interval([0.7])
    assert single.mean == 0.7 and single.n == 1 and math.isnan(single.low) and not single.has_interval
    assert t_interval([]).n == 0 and math.isnan(t_interval([]).mean)
    assert t_interval([1.0, float("nan"), 3.0]).n == 2  # non-finite values are not seeds
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0], confidence=95)


def _row(table, optimizer):
    return table.raw.set_index("optimizer").loc[optimizer]


def test_leaderboard_mean_and_ci_from_written_values(synthetic, synthetic_results):
    # issue 14: with fewer than 5 seeds the interval is the seeds' min-max (it was a Student-t interval)
    table = tables.leaderboard(synthetic_results.runs, "bert_mlm")
    for optimizer in ("adam", synthetic.evil):
        values = synthetic.final_values[("bert_mlm", optimizer, "default")]
        row = _row(table, optimizer)
        assert row["mean"] == pytest.approx(np.mean(values))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((min(values), max(values)))
        assert row["n"] == len(values)


def test_final_protocol_wins_over_default(synthetic, synthetic_results):
    table = tables.leaderboard(synthetic_results.runs, "bert_mlm")
    nigt = _row(table, "nigt")
    assert nigt["protocol"] == "final"
    assert nigt["mean"] == pytest.approx(np.mean(synthetic.final_values[("bert_mlm", "nigt", "final")]))
    assert "lr=0.01" in nigt["hyperparameters"]
    chosen = reported_runs(synthetic_results.runs)
    assert not (chosen["protocol"] == "tuning").any()


def test_leaderboard_counts_failures_and_divergences(synthetic_results):
    table = tables.leaderboard(synthetic_results.runs, "resnet50_imagenet")
    sgd, nigt = _row(table, "sgd"), _row(table, "nigt")
    assert (sgd["diverged"], sgd["failed"], sgd["completed"]) == (1, 0, 2)
    assert (nigt["diverged"], nigt["failed"], nigt["completed"]) == (0, 1, 2)
    assert sgd["damaged"] == 1 and sgd["incomplete"] == 0  # the unreadable summary
    assert "boom" in nigt["errors"]
    shown = table.display.set_index("Optimizer")
    assert shown.loc["sgd", "Not completed"] == "1 diverged, 1 damaged"
    assert shown.loc["adam", "Not completed"] == "1 incomplete"  # the empty run directory


def test_time_to_target_means_over_reaching_runs(synthetic_results):
    # eval metric = final * step / 50 at steps 10..50; target 0.6; time = 0.1 * step + 0.01
    table = tables.leaderboard(synthetic_results.runs, "resnet50_imagenet")
    nigt = _row(table, "nigt")
    expected_steps = [next(s for s in range(10, 51, 10) if f * s / 50 >= 0.6) for f in (0.62, 0.66)]
    assert nigt["reached_target"] == 2
    assert nigt["steps_to_target_mean"] == pytest.approx(np.mean(expected_steps))
    assert nigt["time_to_target_mean_s"] == pytest.approx(np.mean([0.1 * s + 0.01 for s in expected_steps]))
    bert = _row(tables.leaderboard(synthetic_results.runs, "bert_mlm"), "nigt")
    assert bert["steps_to_target_mean"] == 40  # 0.4 * 40 / 50 = 0.32 >= 0.3


def test_single_seed_is_shown_without_interval(tmp_path, run_writer):
    run_writer(tmp_path).training_run("bert_mlm", "adam", 0, 0.5, metric="mlm_accuracy", target=0.3)
    from nightbench.reports import load_results

    table = tables.leaderboard(load_results(tmp_path).runs, "bert_mlm")
    cell = table.display.filter(like="mean [interval]").iloc[0, 0]
    assert cell == "0.5 (1 seed, no interval)"


def test_tuning_table_picks_best_lr(synthetic_results):
    table = tables.tuning_table(synthetic_results.runs, "bert_mlm", synthetic_results.tuning)
    adam, nigt = _row(table, "adam"), _row(table, "nigt")
    assert adam["best_lr_on_tuning_seed"] == pytest.approx(1e-3)  # 0.33, 0.35, 0.20 at 1e-4, 1e-3, 1e-2
    assert nigt["best_lr_on_tuning_seed"] == pytest.approx(1e-2)
    assert adam["diverged_or_failed"] == 1 and nigt["final_runs"] == 3
    assert tables.tuning_table(synthetic_results.runs, "resnet50_imagenet") is None


def test_floor_table_uses_best_lr(synthetic, synthetic_results):
    table = tables.floor_table(synthetic_results.sbv, synthetic_results.runs)
    raw = table.raw.set_index(["optimizer", "batch_size"])
    sbv = synthetic_results.sbv
    # the fixture doubles every floor at lr 0.1, so lr 0.01 is best everywhere
    assert set(raw["best_lr"]) == {0.01}
    at_best = sbv[(sbv["optimizer"] == "nsgd") & (sbv["batch_size"] == 1) & (sbv["lr"] == 0.01)]["floor"]
    assert raw.loc[("nsgd", 1), "floor_mean"] == pytest.approx(at_best.mean())
    assert raw.loc[("nsgd", 1), "n"] == 3
    assert raw.loc[("nsgd", 1), "floor_mean"] > 5 * raw.loc[("nigt", 1), "floor_mean"]


def test_memory_table_and_step_time_ratio(synthetic, synthetic_results):
    memory = tables.memory_table(synthetic_results.memory, synthetic_results.runs).raw
    adam = memory[(memory["optimizer"] == "adam") & (memory["family"] == "resnet")].iloc[0]
    assert adam["state_bytes_per_param"] == 8.0 and adam["param_copies"] == 2.0
    expected_ratio = synthetic.step_time["adam"] / synthetic.step_time["sgd"]
    assert adam["step_time_ratio_to_sgd"] == pytest.approx(expected_ratio)
    ratios = tables.step_time_ratio_table(synthetic_results.memory, synthetic_results.runs)
    shown = ratios.display.set_index("Optimizer")
    assert shown.loc["adam", "bert"] == f"{expected_ratio:.2f}×"
    assert "Models: bert = bert model <tiny>" in " ".join(tables.memory_table(synthetic_results.memory,
                                                                               synthetic_results.runs).notes)


def test_memory_summary_accepts_the_minimal_record_format():
    from nightbench.reports import memory_summary

    records = pd.DataFrame([{"run_id": "r", "optimizer": o, "model": "m", "params": 10, "state_bytes": b,
                             "state_bytes_per_param": b / 10, "step_time": t}
                            for o, b, t in (("sgd", 40, 0.5), ("adam", 80, 1.5))])
    summary = memory_summary(records).set_index("optimizer")
    assert summary.loc["adam", "family"] == "m"
    assert summary.loc["adam", "step_time_ratio_to_sgd"] == pytest.approx(3.0)
    assert math.isnan(summary.loc["adam", "peak_step_bytes"])


def test_problems_table_lists_damaged_and_failed(synthetic_results):
    table = tables.problems_table(synthetic_results.problems, synthetic_results.runs)
    statuses = table.raw.set_index("run_dir")["status"]
    assert statuses["resnet50_imagenet/ci/nigt/default-lr0.001-seed2"] == "failed"
    assert statuses["bert_mlm/ci/adam/broken_config"] == "damaged"
    assert len(table.raw) == 5


def test_performance_profile_by_hand():
    costs = pd.DataFrame({"a": [10.0, 40.0, math.inf], "b": [20.0, 20.0, math.inf], "c": [math.inf, 80.0, math.inf]},
                         index=["p1", "p2", "p3"])
    ratios = performance_ratios(costs)
    assert ratios.loc["p1"].tolist() == [1.0, 2.0, math.inf]
    assert ratios.loc["p2"].tolist() == [2.0, 1.0, 4.0]
    assert all(math.isinf(v) for v in ratios.loc["p3"])  # nobody reached the target
    curve = profile_curve(ratios, np.array([1.0, 2.0, 4.0])).set_index(["optimizer", "tau"])["fraction"]
    assert curve[("a", 1.0)] == pytest.approx(1 / 3) and curve[("a", 2.0)] == pytest.approx(2 / 3)
    assert curve[("c", 2.0)] == 0.0 and curve[("c", 4.0)] == pytest.approx(1 / 3)


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


def test_leaderboard_switches_method_at_five_seeds_and_says_so(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    five = [0.990, 0.995, 1.0, 1.0, 0.985]
    for seed, value in enumerate(five):
        writer.training_run("resnet50_imagenet", "lars", seed, value, metric="top1", target=0.5)
    for seed, value in enumerate([0.9451, 1.0]):  # the 2-seed example that ran past 1
        writer.training_run("resnet50_imagenet", "sgd", seed, value, metric="top1", target=0.5)
    table = tables.leaderboard(load_results(tmp_path).runs, "resnet50_imagenet")
    raw = table.raw.set_index("optimizer")
    assert raw.loc["lars", "interval_method"] == BCA and raw.loc["sgd", "interval_method"] == MIN_MAX
    assert (raw.loc["sgd", "ci_low"], raw.loc["sgd", "ci_high"]) == (0.9451, 1.0)
    assert (raw[["ci_low", "ci_high"]] <= 1.0).all().all() and (raw[["ci_low", "ci_high"]] >= 0.0).all().all()
    assert "BCa bootstrap" in table.caption and "min–max" in table.caption and "[0, 1]" in table.caption
    shown = table.display.set_index("Optimizer")
    assert shown.loc["sgd", "Interval"] == "min–max of 2 seeds"
    assert shown.loc["sgd", "Seed values"] == "0.945, 1"
    assert shown.loc["lars", "Interval"] == "BCa 95%, 5 seeds"


def _tuning_runs(writer, optimizer, values):
    tried = []
    for lr, value in zip((1e-4, 1e-3, 1e-2), values):
        path = writer.training_run("bert_mlm", optimizer, 0, value, metric="mlm_accuracy", target=0.3,
                                   protocol="tuning", lr=lr)
        tried.append((lr, path, "completed", value))
    return tried


def test_best_lr_is_the_tuning_records_not_recomputed(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    # the runs alone would pick 1e-2 (0.40); the leaderboard's record says 1e-4 (say, a tie rule of its own)
    tried = _tuning_runs(writer, "nigt", (0.30, 0.38, 0.40))
    writer.tuning_record("bert_mlm", "nigt", tried, metric="mlm_accuracy", best_lr=1e-4, best_value=0.30)
    _tuning_runs(writer, "adam", (0.33, 0.35, 0.20))  # no record: an older board
    r = load_results(tmp_path)
    table = tables.tuning_table(r.runs, "bert_mlm", r.tuning)
    raw = table.raw.set_index("optimizer")
    assert raw.loc["nigt", "best_lr_on_tuning_seed"] == 1e-4 and raw.loc["nigt", "best_tuning_value"] == 0.30
    assert math.isnan(raw.loc["adam", "best_lr_on_tuning_seed"])
    shown = table.display.set_index("Optimizer")
    assert shown.loc["adam", "Best lr (tuning)"].startswith("— (no tuning record")
    assert shown.loc["nigt", "LRs tried"] == "0.0001 0.001 0.01"


def test_a_record_without_a_best_lr_shows_its_reason(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    path = writer.training_run("bert_mlm", "nigt", 0, 0.0, metric="mlm_accuracy", target=0.3, protocol="tuning",
                               lr=1.0, status="diverged")
    writer.tuning_record("bert_mlm", "nigt", [(1.0, path, "diverged", None)], metric="mlm_accuracy",
                         reason="every learning rate diverged")
    r = load_results(tmp_path)
    shown = tables.tuning_table(r.runs, "bert_mlm", r.tuning).display.set_index("Optimizer")
    assert shown.loc["nigt", "Best lr (tuning)"] == "— (every learning rate diverged)"
    assert shown.loc["nigt", "Diverged/failed"] == "1"


def test_runs_without_target_fields_are_unknown_and_noted(synthetic_results):
    table = tables.leaderboard(synthetic_results.runs, "bert_mlm")
    adam = table.raw.set_index("optimizer").loc["adam"]
    assert adam["reached_target"] == 0 and adam["target_unknown"] == 3
    assert table.display.set_index("Optimizer").loc["adam", "Reached target"] == "0/3 (3 unknown)"
    assert any("no steps_to_target" in n and "adam 3" in n for n in table.notes)
