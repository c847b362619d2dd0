"""The parity (non-inferiority) test against synthetic seed values with known outcomes, and its power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from nightbench.reports.differences import (CLEARLY_BETTER, MATCHES, TOO_FEW, UNCLEAR, WORSE_BY_MARGIN,
                                            parity_test)
from nightbench.reports.power import (noninferiority_detectable_margin, noninferiority_power,
                                      noninferiority_seeds_needed)

# (ours, theirs, margin, higher_is_better, expected outcome): each decided by hand from the 90% interval
CASES = [
    # equal means, tight seeds: the interval (about ±0.009) stays above -0.01
    ([0.400, 0.410, 0.405], [0.400, 0.410, 0.405], 0.01, True, MATCHES),
    # slightly worse (-0.005) but within the margin, tight seeds
    ([0.395, 0.396, 0.397], [0.400, 0.401, 0.402], 0.01, True, MATCHES),
    # clearly better: the interval clears zero too
    ([0.50, 0.51, 0.52], [0.40, 0.41, 0.42], 0.01, True, CLEARLY_BETTER),
    # far worse: the whole interval below -0.01
    ([0.30, 0.31, 0.305], [0.40, 0.41, 0.405], 0.01, True, WORSE_BY_MARGIN),
    # noisy: the interval straddles -0.01
    ([0.40, 0.45], [0.41, 0.38], 0.01, True, UNCLEAR),
    # the same noisy seeds with a wide margin: a match
    ([0.40, 0.45], [0.41, 0.38], 1.0, True, MATCHES),
    # lower is better (a loss): ours 0.1 lower is clearly better; 0.1 higher is worse by more than 0.01
    ([1.00, 1.01, 1.02], [1.10, 1.11, 1.12], 0.01, False, CLEARLY_BETTER),
    ([1.20, 1.21, 1.22], [1.10, 1.11, 1.12], 0.01, False, WORSE_BY_MARGIN),
    # one seed on a side: no interval
    ([0.40], [0.40, 0.41], 0.01, True, TOO_FEW),
    # exact values (no spread): the difference itself decides
    ([0.5, 0.5], [0.505, 0.505], 0.01, True, MATCHES),
    ([0.5, 0.5], [0.52, 0.52], 0.01, True, WORSE_BY_MARGIN),
]


@pytest.mark.parametrize("ours, theirs, margin, higher, expected", CASES)
def test_parity_outcomes_on_known_cases(ours, theirs, margin, higher, expected):
    assert parity_test(ours, theirs, margin, higher).outcome == expected


@pytest.mark.parametrize("ours, theirs, margin, higher, expected", CASES)
def test_parity_interval_is_the_one_sided_95_percent_bound(ours, theirs, margin, higher, expected):
    test = parity_test(ours, theirs, margin, higher)
    if expected == TOO_FEW or np.ptp(ours) == 0 and np.ptp(theirs) == 0:
        return
    # the lower end of the 90% two-sided interval is scipy's one-sided 95% bound
    one_sided = stats.ttest_ind(ours, theirs, equal_var=False, alternative="greater").confidence_interval(0.95)
    assert test.difference.low == pytest.approx(one_sided.low, rel=1e-9)


def test_noninferiority_power_matches_simulated_welch_tests():
    rng = np.random.default_rng(0)
    sd1, sd2, n, margin, true_difference, trials = 0.01, 0.02, 6, 0.015, 0.0, 20000
    a = rng.normal(true_difference, sd1, (trials, n))
    b = rng.normal(0.0, sd2, (trials, n))
    # the test as run: reject H0 (worse by >= margin) when the one-sided 95% lower bound exceeds -margin
    result = stats.ttest_ind(a + margin, b, axis=1, equal_var=False, alternative="greater")
    simulated = float(np.mean(result.pvalue < 0.05))
    assert noninferiority_power(true_difference, margin, sd1, sd2, n, n) == pytest.approx(simulated, abs=0.02)


def test_detectable_margin_has_the_stated_power_when_equal():
    margin = noninferiority_detectable_margin(0.01, 0.01, 4, 4)
    assert noninferiority_power(0.0, margin, 0.01, 0.01, 4, 4) == pytest.approx(0.8, abs=1e-6)


def test_seeds_needed_for_a_match():
    needed = noninferiority_seeds_needed(0.0, 0.01, 0.01, 0.01)
    assert needed is not None and needed >= 2
    assert noninferiority_power(0.0, 0.01, 0.01, 0.01, needed, needed) >= 0.8
    assert needed == 2 or noninferiority_power(0.0, 0.01, 0.01, 0.01, needed - 1, needed - 1) < 0.8
    # a true loss beyond the margin is never shown to match
    assert noninferiority_seeds_needed(-0.02, 0.01, 0.01, 0.01) is None
    assert noninferiority_seeds_needed(-0.005, 0.01, 0.0, 0.0) == 2
    assert math.isnan(noninferiority_power(0.0, 0.01, 0.01, 0.01, 1, 3))


def test_one_side_without_spread_gives_a_welch_interval_without_scipys_warning():
    import warnings

    from nightbench.reports.differences import compare_seeds

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # `nightbench report` printed scipy's precision-loss warning here
        diff = compare_seeds([0.9861, 0.9861], [0.9749, 0.9777])
    assert diff.low < diff.value < diff.high and diff.value == pytest.approx(0.0098)
