"""Power of a comparison: the test's own formulas (numerical integration, simulation, Cohen's table)
against reports.power and reports.differences, and the verdict text that carries them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from nightbench.reports import compare_seeds, load_results, paper_claims
from nightbench.reports.differences import BETTER, TOO_FEW, UNCLEAR, WELCH, WORSE
from nightbench.reports.power import detectable_effect, seeds_needed, two_sample_power
from nightbench.reports.stats import BCA


def integrated_power(effect: float, n1: int, n2: int, alpha: float = 0.05) -> float:
    """P(|T| > t_crit) with T = (Z + delta) / sqrt(V / df), V ~ chi2(df): integrated over V, no noncentral t."""
    df = n1 + n2 - 2
    delta = effect / math.sqrt(1 / n1 + 1 / n2)
    critical = stats.t.ppf(1 - alpha / 2, df)

    def both_tails(v):
        scale = critical * math.sqrt(v / df)
        return (stats.norm.sf(scale - delta) + stats.norm.cdf(-scale - delta)) * stats.chi2.pdf(v, df)

    # the chi-square mass lies between these quantiles (quad over [0, inf) misses it at large df)
    return integrate.quad(both_tails, stats.chi2.ppf(1e-12, df), stats.chi2.isf(1e-12, df), limit=200)[0]


def simulated_power(effect: float, n: int, trials: int = 20_000, seed: int = 1) -> float:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((trials, n)) + effect
    b = rng.standard_normal((trials, n))
    return float(np.mean(stats.ttest_ind(a, b, axis=1).pvalue < 0.05))


@pytest.mark.parametrize("effect, n1, n2", [(0.5, 64, 64), (1.0, 5, 5), (2.0, 3, 3), (0.8, 10, 4), (3.0, 2, 2)])
def test_power_matches_the_integrated_formula(effect, n1, n2):
    assert two_sample_power(effect, n1, n2) == pytest.approx(integrated_power(effect, n1, n2), abs=1e-6)


def test_power_matches_simulated_t_tests():
    assert two_sample_power(1.0, 10, 10) == pytest.approx(simulated_power(1.0, 10), abs=0.015)


@pytest.mark.parametrize("effect, cohen_n", [(0.2, 393), (0.5, 64), (0.8, 26), (1.0, 17)])
def test_seeds_needed_matches_cohens_table(effect, cohen_n):
    # Cohen (1988), Table 2.4.1: n per group for power 0.80 at a = 0.05 two-sided (his n is rounded)
    assert abs(seeds_needed(effect) - cohen_n) <= 1
    n = seeds_needed(effect)
    assert integrated_power(effect, n, n) >= 0.8 > integrated_power(effect, n - 1, n - 1)


def test_detectable_effect_gives_80_percent_power():
    for n1, n2 in ((2, 2), (3, 3), (5, 2), (20, 20)):
        assert integrated_power(detectable_effect(n1, n2), n1, n2) == pytest.approx(0.8, abs=1e-5)
    assert math.isnan(detectable_effect(1, 1))  # no seed-to-seed spread at all
    assert seeds_needed(0.0) is None


def welch_by_hand(a, b, confidence=0.95):
    a, b = np.asarray(a), np.asarray(b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(va + vb)
    diff = a.mean() - b.mean()
    return diff - half, diff + half


def test_difference_interval_is_welch_below_five_seeds_and_clipped():
    ours, theirs = [0.62, 0.66], [0.61, 0.63]
    diff = compare_seeds(ours, theirs, bounds=(0.0, 1.0))
    assert diff.method == WELCH and diff.value == pytest.approx(0.02)
    assert (diff.low, diff.high) == pytest.approx(welch_by_hand(ours, theirs))
    assert diff.outcome == UNCLEAR
    # near the top of the range: Welch's upper end (about 1.5) would pass the largest possible difference, 1
    wide = compare_seeds([0.98, 1.0], [0.0, 0.1], bounds=(0.0, 1.0))
    low, high = welch_by_hand([0.98, 1.0], [0.0, 0.1])
    assert high > 1 and wide.high == 1.0 and wide.low == pytest.approx(low)


def test_difference_interval_is_bootstrapped_from_five_seeds():
    rng = np.random.default_rng(3)
    ours, theirs = 0.6 + 0.01 * rng.standard_normal(6), 0.5 + 0.01 * rng.standard_normal(5)
    diff = compare_seeds(ours, theirs, bounds=(0.0, 1.0))
    assert diff.method == BCA
    pairs = np.subtract.outer(ours, theirs)
    assert pairs.min() < diff.low < diff.value < diff.high < pairs.max()


def test_outcomes_follow_the_better_direction():
    assert compare_seeds([0.9, 0.91], [0.5, 0.51]).outcome == BETTER
    assert compare_seeds([0.9, 0.91], [0.5, 0.51], higher_is_better=False).outcome == WORSE
    assert compare_seeds([0.01, 0.011, 0.012], [0.5, 0.51, 0.49], higher_is_better=False).outcome == BETTER
    assert compare_seeds([0.9], [0.5, 0.51]).outcome == TOO_FEW


def test_power_figures_come_from_the_pooled_spread():
    ours, theirs = [0.62, 0.66], [0.61, 0.63]
    diff = compare_seeds(ours, theirs)
    pooled = math.sqrt((np.var(ours, ddof=1) + np.var(theirs, ddof=1)) / 2)
    assert diff.spread == pytest.approx(pooled)
    effect = optimize.brentq(lambda d: integrated_power(d, 2, 2) - 0.8, 0.1, 50)
    assert diff.detectable == pytest.approx(effect * pooled, rel=1e-4)
    n = next(n for n in range(2, 10_000) if integrated_power(0.02 / pooled, n, n) >= 0.8)
    assert diff.seeds_needed == n


def test_cannot_tell_says_the_difference_and_the_seeds_it_would_take(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    ours, theirs = [0.62, 0.66], [0.61, 0.63]
    for seed, (a, b) in enumerate(zip(ours, theirs)):
        writer.training_run("resnet50_imagenet", "nigt", seed, a, metric="top1", target=0.5)
        writer.training_run("resnet50_imagenet", "sgd", seed, b, metric="top1", target=0.5)
    r = load_results(tmp_path)
    claim = {c.key: c for c in paper_claims(r.runs, r.sbv, r.memory)}["resnet"]
    low, high = welch_by_hand(ours, theirs)
    pooled = math.sqrt((np.var(ours, ddof=1) + np.var(theirs, ddof=1)) / 2)
    n = next(n for n in range(2, 10_000) if integrated_power(0.02 / pooled, n, n) >= 0.8)
    assert claim.verdict == "cannot tell"
    assert claim.reason == (f"the difference nigt − sgd is +0.02 ± {(high - low) / 2:.2g}, which overlaps zero; "
                            f"about {n} seeds per optimizer would separate a difference this size")
    (comparison,) = claim.comparisons
    assert comparison.difference.detectable_cell().startswith(
        f"{optimize.brentq(lambda d: integrated_power(d, 2, 2) - 0.8, 0.1, 50) * pooled:.2g} (2 + 2 seeds")
