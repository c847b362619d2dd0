"""Tables: confidence intervals, protocol selection, time to target, failures, floors, memory, profiles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nightbench.reports import performance_ratios, profile_curve, reported_runs, t_interval
from nightbench.reports import tables


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
