"""Intervals over seeds that respect the metric: min-max below 5 seeds, BCa bootstrap from 5, clipped to the range."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from nightbench.reports import seed_interval
from nightbench.reports.stats import BCA, MIN_MAX, SINGLE, interval_caption


@pytest.mark.parametrize("values", [[0.61, 0.63], [0.30, 0.31, 0.29], [0.9451, 0.99, 1.0, 0.97]])
def test_two_to_four_seeds_give_min_max_with_the_values(values):
    iv = seed_interval(values, (0.0, 1.0))
    assert iv.method == MIN_MAX
    assert (iv.low, iv.high) == (min(values), max(values))
    assert iv.mean == pytest.approx(np.mean(values)) and iv.values == tuple(values)


def test_one_seed_has_no_interval():
    iv = seed_interval([0.7], (0.0, 1.0))
    assert iv.method == SINGLE and iv.n == 1 and math.isnan(iv.low) and not iv.has_interval


def exact_bca(x: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """BCa from the exact bootstrap distribution (all n^n resamples), after Efron & Tibshirani (1993), ch. 14."""
    n = len(x)
    means = x[np.array(list(itertools.product(range(n), repeat=n)))].mean(axis=1)
    z0 = stats.norm.ppf(np.mean(means < x.mean()))
    jackknife = np.array([np.delete(x, i).mean() for i in range(n)])
    d = jackknife.mean() - jackknife
    a = (d ** 3).sum() / (6 * ((d ** 2).sum()) ** 1.5)
    z = stats.norm.ppf([(1 - confidence) / 2, (1 + confidence) / 2])
    levels = stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    low, high = np.percentile(means, levels * 100)
    return float(low), float(high)


def test_five_or_more_seeds_give_the_bca_bootstrap_interval():
    x = np.array([1.0, 1.2, 1.3, 1.5, 2.0, 4.0])  # skewed: BCa, percentile and t intervals all differ
    iv = seed_interval(x)
    assert iv.method == BCA
    low, high = exact_bca(x)
    assert (iv.low, iv.high) == pytest.approx((low, high), abs=0.1)  # Monte Carlo error of 9,999 resamples
    percentile_high = np.percentile(x[np.array(list(itertools.product(range(6), repeat=6)))].mean(axis=1), 97.5)
    assert abs(iv.high - percentile_high) > 0.25  # not the plain percentile interval
    assert iv.low > x.mean() - stats.t.ppf(0.975, 5) * stats.sem(x) + 0.3  # nor a t interval
    assert seed_interval(x) == iv  # a fixed resampling seed: the same results give the same report


def test_identical_seeds_give_a_point_interval():
    iv = seed_interval([0.5] * 6, (0.0, 1.0))
    assert (iv.low, iv.high) == (0.5, 0.5)


def test_intervals_are_clipped_to_the_metric_range():
    # a near-perfect accuracy: resamples cannot leave [0, 1], and neither may the interval
    iv = seed_interval([1.0, 1.0, 0.98, 1.0, 0.99, 1.0, 1.0], (0.0, 1.0))
    assert 0.0 <= iv.low <= iv.high <= 1.0
    # a range that cuts into the data is applied as well
    clipped = seed_interval([0.2, 0.5, 0.9], (0.3, 0.8))
    assert (clipped.low, clipped.high) == (0.3, 0.8)


def test_caption_names_the_method_and_the_range():
    text = interval_caption([MIN_MAX, BCA], (0.0, 1.0))
    assert "min–max" in text and "BCa bootstrap" in text and "scipy.stats.bootstrap" in text and "[0, 1]" in text
    assert "bootstrap" not in interval_caption([MIN_MAX])
