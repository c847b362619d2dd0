"""How many seeds a comparison needs: the power of a two-sided t test of two means.

A t test with df degrees of freedom detects a true difference at level alpha with probability

    power = P(|T| > t_crit),  T ~ noncentral t(df, nc = difference / its standard error),

t_crit the (1 - alpha/2) quantile of the central t with the same df (scipy.stats.nct, scipy.stats.t).

The test is Welch's, the one the report's verdicts use (differences.py), so that what a comparison
says it can detect agrees with what its interval decides. With per-side seed-to-seed standard
deviations s1, s2 and n1, n2 seeds: se = sqrt(s1^2/n1 + s2^2/n2), nc = difference / se, and the
Welch-Satterthwaite df = se^4 / ((s1^2/n1)^2/(n1-1) + (s2^2/n2)^2/(n2-1)) (the usual approximation of
its power). With equal spreads and seed counts this is exactly the pooled (Student) test's power,
df = 2n - 2, which Cohen's tables give. With one noisy side and two seeds df is near 1: the interval
is wide, and so is what 80% power needs. The approximation takes the df as known; Welch's test as run
estimates it, and at 2-3 seeds a side that costs power (simulated, 3 + 3 seeds, equal spreads, a
difference of 3 s.d.: 0.68 where the formula says 0.78; from 6 seeds a side they agree within 0.01),
so at the smallest seed counts "seeds needed" is a lower bound.

The smallest detectable difference inverts power in the difference (scipy.optimize.brentq), the
seeds needed invert it in n = n1 = n2 (bisection: power grows with n).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy import stats

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 100_000  # beyond this, "more than" is the honest answer


def _t_test_power(noncentrality: float, df: float, alpha: float) -> float:
    """P(|T| > t_crit) for T ~ noncentral t(df, noncentrality), the two-sided test at level alpha."""
    critical = stats.t.ppf(1 - alpha / 2, df)
    upper = float(stats.nct.sf(critical, df, noncentrality))
    # The wrong-direction tail vanishes as the noncentrality grows; scipy then returns NaN for it.
    lower = float(np.nan_to_num(stats.nct.cdf(-critical, df, noncentrality), nan=0.0))
    if math.isnan(upper):
        upper = 1.0 if noncentrality > critical else math.nan
    return upper + lower


def _welch_error_and_df(sd1: float, sd2: float, n1: int, n2: int) -> tuple[float, float]:
    """The standard error of the difference in means and the Welch-Satterthwaite df."""
    v1, v2 = sd1 ** 2 / n1, sd2 ** 2 / n2
    return math.sqrt(v1 + v2), (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))


def _welch_defined(sd1: float, sd2: float, n1: int, n2: int) -> bool:
    return n1 >= 2 and n2 >= 2 and not (math.isnan(sd1) or math.isnan(sd2)) and (sd1 > 0 or sd2 > 0)


def welch_power(difference: float, sd1: float, sd2: float, n1: int, n2: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided Welch t test for a true `difference` in means, given each side's
    seed-to-seed standard deviation; NaN with fewer than two seeds on a side or no spread at all."""
    if not _welch_defined(sd1, sd2, n1, n2):
        return math.nan
    error, df = _welch_error_and_df(sd1, sd2, n1, n2)
    return _t_test_power(abs(difference) / error, df, alpha)


def welch_detectable(sd1: float, sd2: float, n1: int, n2: int, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest |difference| Welch's test detects with probability `power` (NaN where it is undefined)."""
    if not _welch_defined(sd1, sd2, n1, n2):
        return math.nan
    error, df = _welch_error_and_df(sd1, sd2, n1, n2)
    return error * _noncentrality_for(power, df, alpha)


def welch_seeds_needed(difference: float, sd1: float, sd2: float, power: float = POWER, alpha: float = ALPHA,
                       max_seeds: int = MAX_SEEDS) -> int | None:
    """The fewest seeds per side (n1 = n2 = n >= 2) with which Welch's test detects `difference` with
    probability `power`, at these standard deviations; None when the difference is 0, when the
    power is undefined, or when more than `max_seeds` would be needed. With no spread on either side
    (exact values) any nonzero difference shows with 2 seeds."""
    if not difference or math.isnan(difference):
        return None
    if sd1 == 0 and sd2 == 0:
        return 2
    if not _welch_defined(sd1, sd2, 2, 2):
        return None
    return _fewest_seeds(lambda n: welch_power(difference, sd1, sd2, n, n, alpha), power, max_seeds)


def _noncentrality_for(power: float, df: float, alpha: float) -> float:
    """The noncentrality at which the two-sided t test with df degrees of freedom has this power."""
    upper = 1.0
    while _t_test_power(upper, df, alpha) < power:
        upper *= 2
    return float(optimize.brentq(lambda nc: _t_test_power(nc, df, alpha) - power, 0.0, upper, xtol=1e-10))


def _fewest_seeds(power_at, power: float, max_seeds: int) -> int | None:
    """The first n in 2..max_seeds with power_at(n) >= power (power_at grows with n), else None."""
    if power_at(max_seeds) < power:
        return None
    low, high = 2, max_seeds
    if power_at(low) >= power:
        return low
    while high - low > 1:
        middle = (low + high) // 2
        if power_at(middle) >= power:
            high = middle
        else:
            low = middle
    return high


# --- non-inferiority (the paper's parity claims) ---------------------------------------------
# H0: ours is worse than the baseline by at least `margin`. The one-sided Welch test at level alpha
# rejects it when the lower end of the two-sided (1 - 2 alpha) interval of (ours - baseline) lies
# above -margin, which is what the claims check. Its power at a true difference d (in the better
# direction) is P(T > t_(1-alpha)), T ~ noncentral t(df, (d + margin) / se).


def _one_sided_power(noncentrality: float, df: float, alpha: float) -> float:
    return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, noncentrality))


def noninferiority_power(difference: float, margin: float, sd1: float, sd2: float, n1: int, n2: int,
                         alpha: float = ALPHA) -> float:
    """Power of the one-sided Welch non-inferiority test at a true `difference` (better-direction units)."""
    if not _welch_defined(sd1, sd2, n1, n2):
        return math.nan
    error, df = _welch_error_and_df(sd1, sd2, n1, n2)
    return _one_sided_power((difference + margin) / error, df, alpha)


def noninferiority_detectable_margin(sd1: float, sd2: float, n1: int, n2: int, power: float = POWER,
                                     alpha: float = ALPHA) -> float:
    """The smallest margin these seeds show non-inferiority within, with probability `power`, when the
    two optimizers are truly equal (NaN where the test is undefined)."""
    if not _welch_defined(sd1, sd2, n1, n2):
        return math.nan
    error, df = _welch_error_and_df(sd1, sd2, n1, n2)
    upper = 1.0
    while _one_sided_power(upper, df, alpha) < power:
        upper *= 2
    return error * float(optimize.brentq(lambda nc: _one_sided_power(nc, df, alpha) - power, -upper, upper,
                                         xtol=1e-10))


def noninferiority_seeds_needed(difference: float, margin: float, sd1: float, sd2: float, power: float = POWER,
                                alpha: float = ALPHA, max_seeds: int = MAX_SEEDS) -> int | None:
    """The fewest seeds per side with which the non-inferiority test succeeds with probability `power`
    if the true difference is `difference` (better-direction units); None when it is worse than
    -margin (no number of seeds shows a match then), undefined, or beyond `max_seeds`. With no
    spread on either side any difference above -margin shows with 2 seeds."""
    if math.isnan(difference) or difference + margin <= 0:
        return None
    if sd1 == 0 and sd2 == 0:
        return 2
    if not _welch_defined(sd1, sd2, 2, 2):
        return None
    return _fewest_seeds(lambda n: noninferiority_power(difference, margin, sd1, sd2, n, n, alpha), power, max_seeds)
