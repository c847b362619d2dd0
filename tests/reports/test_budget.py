"""The budget curve: expected best of k trials against brute-force enumeration, ranks, failed trials."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from nightbench.reports.budget import budget_curves, expected_best, failure_value

TABLES = [
    [0.30, 0.10, 0.25, 0.40, 0.20],
    [0.5, 0.5, 0.1, 0.9],  # ties
    [0.7],
    [0.0, 0.0, 0.35, 0.12, 0.33, 0.34],  # failed trials counted as 0 (an accuracy's worst)
]


def brute_force(values, k, higher_is_better=True):
    """The mean over every order of the trials of the best among the first k."""
    best = max if higher_is_better else min
    orders = list(itertools.permutations(values))
    return sum(best(order[:k]) for order in orders) / len(orders)


@pytest.mark.parametrize("values", TABLES)
@pytest.mark.parametrize("higher", [True, False])
def test_expected_best_matches_enumerating_every_order(values, higher):
    for k in range(1, len(values) + 1):
        assert expected_best(values, k, higher) == pytest.approx(brute_force(values, k, higher), abs=1e-12)


def test_the_ends_of_the_curve_are_the_mean_and_the_best():
    values = TABLES[0]
    assert expected_best(values, 1) == pytest.approx(sum(values) / len(values))
    assert expected_best(values, len(values)) == max(values)
    assert expected_best(values, len(values), higher_is_better=False) == min(values)
    with pytest.raises(ValueError):
        expected_best(values, 0)


def _record(optimizer, values, statuses=None, suite="s", metric="top1"):
    statuses = statuses or ["completed"] * len(values)
    return {"suite": suite, "preset": "small", "optimizer": optimizer, "metric": metric, "higher_is_better": True,
            "trials": [{"study": 0, "trial": i, "values": {}, "hyperparameters": {"lr": 0.1 * (i + 1)},
                        "run_dir": f"{optimizer}/{i}", "status": status, "value": value}
                       for i, (value, status) in enumerate(zip(values, statuses))]}


def test_curves_rank_the_optimizers_at_each_budget_and_count_failures_as_the_worst_value():
    # a: steady; b: one great trial among failures. b overtakes a only at large budgets.
    records = [_record("a", [0.5, 0.52, 0.51, 0.53]),
               _record("b", [None, None, None, 0.9], ["diverged", "failed", "diverged", "completed"])]
    curves = budget_curves(records)
    a = curves[curves["optimizer"] == "a"].set_index("k")
    b = curves[curves["optimizer"] == "b"].set_index("k")
    assert b.loc[1, "expected_best"] == pytest.approx(0.9 / 4)  # failures count as 0 for an accuracy
    assert b.loc[4, "expected_best"] == pytest.approx(0.9)
    assert (a.loc[1, "rank"], b.loc[1, "rank"]) == (1, 2)
    assert (a.loc[4, "rank"], b.loc[4, "rank"]) == (2, 1)
    assert failure_value("top1", True) == 0.0
    assert failure_value("score", True) == -math.inf  # no known range: it never wins
    assert failure_value("loss", False) == math.inf


def test_the_report_shows_the_search_budget_curve_ranks_and_sensitivity(tmp_path, run_writer):
    from nightbench.reports import build_report
    from nightbench.suites.layout import tuning_record_path

    writer = run_writer(tmp_path)
    for optimizer, finals in (("adam", [0.30, 0.32, 0.31]), ("nigt", [0.10, 0.45, 0.33])):
        for trial, final in enumerate(finals):
            writer.training_run("bert_mlm", optimizer, 1000, final, metric="mlm_accuracy", target=0.2,
                                protocol="tuning", lr=1e-3 * (trial + 1), run_name=f"tuning-t{trial}")
        record = {**_record(optimizer, finals, suite="bert_mlm", metric="mlm_accuracy"), "protocol": "search",
                  "preset": writer.preset, "budget": 3, "studies": 1, "space": {"lr": "log-uniform [1e-4, 1e-2]"},
                  "space_declared": optimizer != "nigt", "chosen": {"study": 0, "trial": 1, "values": {"lr": 2e-3},
                                                                    "overrides": {"lr": 2e-3}, "value": finals[1]}}
        path = tuning_record_path(tmp_path, writer.preset, "bert_mlm", optimizer)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    page = build_report(tmp_path, tmp_path / "report.html").read_text()
    for element in ("search-bert_mlm", "budget-curve-bert_mlm", "budget-bert_mlm", "sensitivity-bert_mlm",
                    "trials-bert_mlm"):
        assert f'id="{element}"' in page, element
    assert "declares no space: the lr-only fallback" in page  # nigt's record says it declared none
    assert "lr-bert_mlm" not in page  # the grid's lr figure is not drawn over a search's trials
    assert 'id="tuning-bert_mlm"' not in page and "no tuning record" not in page  # nor the grid's table


def test_a_trials_values_show_the_digits_they_were_drawn_with():
    from nightbench.reports.budget import _values_text

    assert _values_text({"beta2": 0.9998, "lr": 0.0001578}) == "beta2=0.9998, lr=0.0001578"
    assert _values_text({}) == "default"
