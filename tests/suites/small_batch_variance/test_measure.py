"""The measurements: the fitted exponent, the curve's checkpoints and buckets, the floor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nightbench.suites.small_batch_variance import measure


def test_fit_exponent_recovers_a_power_law_and_brackets_it():
    steps = measure.curve_checkpoints(10_000, 40)
    rng = np.random.default_rng(0)
    curve = [[s, 3.0 * s ** -0.25 * math.exp(rng.normal(0, 0.05))] for s in steps]
    slope, (lo, hi) = measure.fit_exponent(curve, from_step=100)
    assert lo < -0.25 < hi and hi - lo < 0.1
    assert slope == pytest.approx(-0.25, abs=0.05)
    assert measure.fit_exponent(curve[:2]) == (None, None)


def test_curve_floor_and_checkpoints():
    checkpoints = measure.curve_checkpoints(1000, 50)
    assert checkpoints[0] == 1 and checkpoints[-1] == 1000 and len(checkpoints) <= 50
    measurements = [(s, float(s)) for s in range(1, 1001)]
    curve = measure.bucket_curve(measurements, [10, 100, 1000])
    assert curve == [[10, 5.5], [100, 55.5], [1000, 550.5]]  # means of 1..10, 11..100, 101..1000
    assert measure.floor_of(measurements, 1000, 0.25) == pytest.approx(np.mean(range(751, 1001)))
