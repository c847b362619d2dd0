"""The problems: the skewed noise and the nonconvex problem's gradient have the stated mean and variance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nightbench.suites.small_batch_variance.presets import PRESETS
from nightbench.suites.small_batch_variance.problems import DTYPE, RotatedNonconvex, SkewedNoise1D, gradient_variance


P = PRESETS["ci"]["skew_p"]


def test_skewed_noise_has_mean_zero_and_variance_p_1_minus_p_over_batch():
    problem = SkewedNoise1D(P, 1.0, 0.5, 0.3)
    params = problem.initial_params()
    rng = torch.Generator().manual_seed(1)
    for batch in (1, 16):
        samples = [problem.sample_gradient(params, batch, rng)[0][0].item() + 0.2 for _ in range(4000)]
        assert np.mean(samples) == pytest.approx(0.0, abs=4 * math.sqrt(P * (1 - P) / batch / 4000))
        variance = gradient_variance(problem, params, batch, 4000, rng)
        assert variance == pytest.approx(P * (1 - P) / batch, rel=0.1)


def test_nonconvex_gradient_is_exact_and_its_noise_has_variance_sigma2_over_batch():
    problem = RotatedNonconvex(dim=6, sigma=2.0, curvature=2.0, seed=3)
    w = torch.randn(6, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    numeric = torch.zeros(6, dtype=DTYPE)
    for i in range(6):  # central differences of F itself, not of the formula under test
        e = torch.zeros(6, dtype=DTYPE)
        e[i] = 1e-6
        numeric[i] = (problem.value(w + e) - problem.value(w - e)) / 2e-6
    assert torch.allclose(problem.true_gradient([w])[0], numeric, atol=1e-7)
    rng = torch.Generator().manual_seed(2)
    assert gradient_variance(problem, [w], 4, 4000, rng) == pytest.approx(4.0 / 4, rel=0.1)
    assert problem.L == 3.0 and problem.rho == 2.0
