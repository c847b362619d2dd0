"""AlgoPerf's benchmark score: the normalized area under the performance profile up to r_max = 4."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from nightbench.reports import benchmark_scores, performance_ratios, tables

R_MAX = 4.0


def area_by_integration(ratios: list[float], r_max: float = R_MAX) -> float:
    """(1 / (r_max - 1)) * integral over [1, r_max] of rho(tau), rho counted from the ratios directly."""
    def rho(tau):
        return sum(1 for r in ratios if r <= tau) / len(ratios)

    breaks = sorted({r for r in ratios if 1 < r < r_max})
    return integrate.quad(rho, 1, r_max, points=breaks or None, limit=200)[0] / (r_max - 1)


def test_score_by_hand_and_by_integration():
    costs = pd.DataFrame({"a": [10.0, 40.0, math.inf], "b": [20.0, 20.0, math.inf], "c": [math.inf, 80.0, 30.0],
                          "d": [35.0, 20.0 * 4.5, 30.0 * 1.5]}, index=["p1", "p2", "p3"])
    ratios = performance_ratios(costs)  # a: 1, 2, inf   b: 2, 1, inf   c: inf, 4, 1   d: 3.5, 4.5, 1.5
    scores = benchmark_scores(ratios)
    by_hand = {"a": (3 + 2) / 9, "b": (2 + 3) / 9, "c": (0 + 3) / 9, "d": (0.5 + 0 + 2.5) / 9}
    for optimizer, expected in by_hand.items():
        assert scores[optimizer] == pytest.approx(expected)
        assert scores[optimizer] == pytest.approx(area_by_integration(list(ratios[optimizer])), abs=1e-6)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_missed_targets_and_missing_runs_add_nothing():
    costs = pd.DataFrame({"a": [5.0, math.inf], "b": [math.nan, 8.0]}, index=["p1", "p2"])
    scores = benchmark_scores(performance_ratios(costs))
    assert scores["a"] == pytest.approx(0.5) and scores["b"] == pytest.approx(0.5)  # best where it reached
    assert benchmark_scores(performance_ratios(pd.DataFrame({"a": [math.inf]}, index=["p"])))["a"] == 0.0
    with pytest.raises(ValueError, match="r_max"):
        benchmark_scores(performance_ratios(costs), r_max=1.0)


def test_score_table_from_written_runs(synthetic, synthetic_results):
    table = tables.benchmark_score_table(synthetic_results.runs)
    raw = table.raw.set_index("optimizer")
    # time to target = 0.1 * (first eval step at the target) + 0.01, eval every 10 steps of 50, rising to
    # `final`: the first step s in 10..50 with final * s / 50 >= target; the suite cost is the median over seeds
    def cost(finals, target):
        steps = [next((s for s in range(10, 51, 10) if f * s / 50 >= target), None) for f in finals]
        return float(np.median([0.1 * s + 0.01 if s else math.inf for s in steps]))

    bert_final = synthetic.final_values[("bert_mlm", "nigt", "final")]
    bert = {"nigt": cost(bert_final, 0.3), synthetic.evil: cost(synthetic.final_values[("bert_mlm", synthetic.evil,
                                                                                        "default")], 0.3),
            "adam": math.inf}  # adam's summaries do not say when it reached the target: unknown counts as never
    resnet = {"nigt": cost([0.62, 0.66, 0.0], 0.6), "sgd": cost([0.61, 0.63, 0.0], 0.6)}
    for optimizer in raw.index:
        ratios = []
        for suite in (bert, resnet):
            best = min(suite.values())
            ratios.append(suite.get(optimizer, math.inf) / best)
        assert raw.loc[optimizer, "score_time"] == pytest.approx(area_by_integration(ratios), abs=1e-6), optimizer
    assert raw.loc["nigt", "score_time"] == 1.0 and raw.loc["adam", "score_time"] == 0.0
    assert "r_max = 4" in table.caption and "infinite" in table.caption
    assert list(table.display["Optimizer"])[0] == "nigt"  # best first
