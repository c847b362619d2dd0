"""Power of a comparison: the test's own formulas (numerical integration, simulation, Cohen's table)
against reports.power and reports.differences, and the verdict text that carries them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from nightbench.reports import compare_seeds, load_results, paper_claims
from nightbench.reports.differences import BETTER, NO_SPREAD, TOO_FEW, UNCLEAR, WELCH, WORSE
from nightbench.reports.power import welch_detectable, welch_power, welch_seeds_needed
from nightbench.reports.stats import BCA


def integrated_power(noncentrality: float, df: float, alpha: float = 0.05) -> float:
    """P(|T| > t_crit) with T = (Z + nc) / sqrt(V / df), V ~ chi2(df): integrated over V, no noncentral t."""
    critical = stats.t.ppf(1 - alpha / 2, df)

    def both_tails(v):
        scale = critical * math.sqrt(v / df)
        return (stats.norm.sf(scale - noncentrality) + stats.norm.cdf(-scale - noncentrality)) * stats.chi2.pdf(v, df)

    # the chi-square mass lies between these quantiles (quad over [0, inf) misses it at large df)
    return integrate.quad(both_tails, stats.chi2.ppf(1e-12, df), stats.chi2.isf(1e-12, df), limit=200)[0]


def welch_by_formula(difference: float, sd1: float, sd2: float, n1: int, n2: int) -> float:
    """Welch's power written out here: se and the Welch-Satterthwaite df by hand, then integrated."""
    v1, v2 = sd1 ** 2 / n1, sd2 ** 2 / n2
    df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
    return integrated_power(difference / math.sqrt(v1 + v2), df)


def pooled_power(effect: float, n: int) -> float:
    """The pooled (Student) test's power at n seeds a side and Cohen's d = effect."""
    return integrated_power(effect / math.sqrt(2 / n), 2 * n - 2)


def simulated_welch_power(difference: float, sd1: float, sd2: float, n: int, trials: int = 40_000) -> float:
    rng = np.random.default_rng(1)
    a = difference + sd1 * rng.standard_normal((trials, n))
    b = sd2 * rng.standard_normal((trials, n))
    return float(np.mean(stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05))


@pytest.mark.parametrize("difference, sd1, sd2, n1, n2", [
    (0.5, 1.0, 1.0, 64, 64), (1.0, 1.0, 1.0, 5, 5), (2.0, 0.5, 1.5, 3, 3), (0.8, 1.0, 2.0, 10, 4),
    (3.0, 1.0, 1.0, 2, 2), (0.05, 0.002, 0.024, 2, 2), (0.1, 0.0, 0.05, 3, 3)])
def test_welch_power_matches_the_integrated_formula(difference, sd1, sd2, n1, n2):
    assert welch_power(difference, sd1, sd2, n1, n2) == pytest.approx(
        welch_by_formula(difference, sd1, sd2, n1, n2), abs=1e-6)


@pytest.mark.parametrize("difference, sd1, sd2, n", [(1.5, 1.0, 2.0, 6), (1.0, 0.5, 1.5, 10), (1.0, 1.0, 1.0, 10)])
def test_welch_power_matches_simulated_welch_tests(difference, sd1, sd2, n):
    assert welch_power(difference, sd1, sd2, n, n) == pytest.approx(
        simulated_welch_power(difference, sd1, sd2, n), abs=0.015)


@pytest.mark.parametrize("effect, cohen_n", [(0.2, 393), (0.5, 64), (0.8, 26), (1.0, 17)])
def test_with_equal_spreads_the_seeds_needed_match_cohens_table(effect, cohen_n):
    # Cohen (1988), Table 2.4.1: n per group for power 0.80 at a = 0.05 two-sided (his n is rounded);
    # with equal spreads and seed counts Welch's df is the pooled test's 2n - 2
    n = welch_seeds_needed(effect, 1.0, 1.0)
    assert abs(n - cohen_n) <= 1
    assert pooled_power(effect, n) >= 0.8 > pooled_power(effect, n - 1)


def test_the_detectable_difference_has_80_percent_power():
    for sd1, sd2, n1, n2 in ((1.0, 1.0, 2, 2), (0.2, 1.0, 3, 3), (1.0, 1.0, 5, 2), (0.002, 0.024, 2, 2)):
        detectable = welch_detectable(sd1, sd2, n1, n2)
        assert welch_by_formula(detectable, sd1, sd2, n1, n2) == pytest.approx(0.8, abs=1e-5)
    assert math.isnan(welch_detectable(1.0, 1.0, 1, 5))  # a side with one seed has no spread
    assert math.isnan(welch_detectable(0.0, 0.0, 3, 3))  # no spread at all: nothing to size from
    assert welch_seeds_needed(0.0, 1.0, 1.0) is None


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


def test_power_figures_come_from_each_sides_spread():
    ours, theirs = [0.62, 0.66], [0.61, 0.63]
    diff = compare_seeds(ours, theirs)
    sds = (np.std(ours, ddof=1), np.std(theirs, ddof=1))
    assert diff.spreads == pytest.approx(sds)
    detectable = optimize.brentq(lambda d: welch_by_formula(d, *sds, 2, 2) - 0.8, 1e-4, 50)
    assert diff.detectable == pytest.approx(detectable, rel=1e-4)
    n = next(n for n in range(2, 10_000) if welch_by_formula(0.02, *sds, n, n) >= 0.8)
    assert diff.seeds_needed == n
    assert diff.detectable_cell().startswith(f"{detectable:.2g} (2 + 2 seeds, s.d. 0.028 and 0.014)")


def test_cannot_tell_never_says_the_seeds_at_hand_would_suffice():
    """The verdict's interval and the power figures are the same test: when the interval overlaps
    zero, the detectable difference exceeds the observed one and more seeds are needed than used.
    (The pooled test's power broke this: nigt 0.9749, 0.9777 vs sgd 0.766, 0.7994, a 2-seed small
    board's ResNet top-1, read "cannot tell ... about 2 seeds per optimizer would separate" it.)"""
    board = compare_seeds([0.9749, 0.9777], [0.766, 0.7994], bounds=(0.0, 1.0))
    assert board.outcome == UNCLEAR and board.seeds_needed > 2 and board.detectable > board.value
    rng = np.random.default_rng(7)
    unclear = 0
    for _ in range(300):
        n = int(rng.integers(2, 5))
        sd1, sd2 = rng.uniform(0.001, 0.05, size=2)
        ours = 0.5 + rng.uniform(-0.05, 0.05) + sd1 * rng.standard_normal(n)
        theirs = 0.5 + sd2 * rng.standard_normal(n)
        diff = compare_seeds(ours, theirs)
        if diff.outcome == UNCLEAR:
            unclear += 1
            assert diff.detectable > abs(diff.value)
            assert diff.seeds_needed is None or diff.seeds_needed > n
    assert unclear > 30  # the property was exercised


def test_cannot_tell_says_the_difference_and_the_seeds_it_would_take(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    ours, theirs = [0.62, 0.66], [0.61, 0.63]
    for seed, (a, b) in enumerate(zip(ours, theirs)):
        writer.training_run("resnet50_imagenet", "nigt", seed, a, metric="top1", target=0.5)
        writer.training_run("resnet50_imagenet", "sgd", seed, b, metric="top1", target=0.5)
    r = load_results(tmp_path)
    claim = {c.key: c for c in paper_claims(r.runs, r.sbv, r.memory)}["resnet"]
    low, high = welch_by_hand(ours, theirs)
    sds = (np.std(ours, ddof=1), np.std(theirs, ddof=1))
    n = next(n for n in range(2, 10_000) if welch_by_formula(0.02, *sds, n, n) >= 0.8)
    assert claim.verdict == "cannot tell"
    assert claim.reason == (f"the difference nigt − sgd is +0.02 ± {(high - low) / 2:.2g}, which overlaps zero; "
                            f"about {n} seeds per optimizer would separate a difference this size; "
                            "resnet50_imagenet declares no parity margin at preset ci, so the difference was tested "
                            "against zero")
    (comparison,) = claim.comparisons
    assert comparison.difference.detectable_cell().startswith(
        f"{optimize.brentq(lambda d: welch_by_formula(d, *sds, 2, 2) - 0.8, 1e-4, 50):.2g} (2 + 2 seeds")


def test_exact_values_need_two_seeds_for_any_nonzero_difference():
    diff = compare_seeds([0.5, 0.5], [0.4, 0.4])
    assert diff.method == NO_SPREAD and diff.low == diff.high == pytest.approx(0.1)
    assert diff.seeds_needed == 2 and welch_seeds_needed(0.1, 0.0, 0.0) == 2
    assert compare_seeds([0.5, 0.5], [0.5, 0.5]).seeds_needed is None  # no difference to separate
