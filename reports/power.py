"""How many seeds a comparison needs: the power of a two-sided two-sample t test.

With n1 and n2 seeds, a true difference of `effect` seed-to-seed standard deviations (Cohen's d)
is detected at level alpha with probability

    power = P(|T| > t_crit),  T ~ noncentral t(df = n1 + n2 - 2, nc = effect / sqrt(1/n1 + 1/n2)),

where t_crit is the (1 - alpha/2) quantile of the central t with the same df (scipy.stats.nct and
scipy.stats.t). The smallest detectable difference inverts this in `effect` (scipy.optimize.brentq),
the seeds needed invert it in n = n1 = n2.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy import stats

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 100_000  # beyond this, "more than" is the honest answer


def two_sample_power(effect: float, n1: int, n2: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided two-sample t test (pooled variance) at standardized difference `effect`."""
    df = n1 + n2 - 2
    if df < 1:
        return math.nan
    noncentrality = abs(effect) / math.sqrt(1 / n1 + 1 / n2)
    critical = stats.t.ppf(1 - alpha / 2, df)
    upper = float(stats.nct.sf(critical, df, noncentrality))
    # The wrong-direction tail vanishes as the noncentrality grows; scipy then returns NaN for it.
    lower = float(np.nan_to_num(stats.nct.cdf(-critical, df, noncentrality), nan=0.0))
    if math.isnan(upper):
        upper = 1.0 if noncentrality > critical else math.nan
    return upper + lower


def detectable_effect(n1: int, n2: int, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest standardized difference detected with probability `power` (NaN below 3 seeds in all)."""
    if n1 + n2 - 2 < 1 or n1 < 1 or n2 < 1:
        return math.nan
    upper = 1.0
    while two_sample_power(upper, n1, n2, alpha) < power:
        upper *= 2
    return float(optimize.brentq(lambda d: two_sample_power(d, n1, n2, alpha) - power, 0.0, upper, xtol=1e-10))


def seeds_needed(effect: float, power: float = POWER, alpha: float = ALPHA, max_seeds: int = MAX_SEEDS) -> int | None:
    """The fewest seeds per side (n1 = n2 = n >= 2) that detect `effect` with probability `power`;
    None when `effect` is 0 or more than `max_seeds` would be needed."""
    if not effect or math.isnan(effect):
        return None
    if math.isinf(effect):
        return 2
    if two_sample_power(effect, max_seeds, max_seeds, alpha) < power:
        return None
    low, high = 2, max_seeds  # power grows with n: bisect for the first n that reaches it
    if two_sample_power(effect, low, low, alpha) >= power:
        return low
    while high - low > 1:
        middle = (low + high) // 2
        if two_sample_power(effect, middle, middle, alpha) >= power:
            high = middle
        else:
            low = middle
    return high


def pooled_std(values_a, values_b) -> float:
    """The seed-to-seed standard deviation pooled over two groups (NaN with no degree of freedom)."""
    groups = [np.asarray(list(v), dtype=float) for v in (values_a, values_b)]
    df = sum(max(len(g) - 1, 0) for g in groups)
    if df < 1:
        return math.nan
    return math.sqrt(sum(float(((g - g.mean()) ** 2).sum()) for g in groups if len(g)) / df)
