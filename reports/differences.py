"""Two optimizers' seeds compared: the difference in means, its interval, and what the seeds can detect.

The interval of the difference is Welch's t interval (scipy.stats.ttest_ind, unequal variances)
when either side has fewer than 5 seeds, else the BCa bootstrap interval resampling each side on
its own (scipy.stats.bootstrap); it is clipped to the range a difference of the metric can take.
The power figures are Welch's too (power.py), from each side's seed-to-seed standard deviation: what
the comparison says it could detect, and how many seeds it would take, agree with what its interval
decides (a "cannot tell" never says the seeds it already has would have been enough).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import stats as scipy_stats

from . import fmt
from .bounds import UNBOUNDED, clip, difference_range
from .power import (ALPHA, MAX_SEEDS, POWER, noninferiority_detectable_margin, noninferiority_seeds_needed,
                    welch_detectable, welch_seeds_needed)
from .stats import MIN_SEEDS_FOR_BOOTSTRAP, Interval, bootstrap_interval, seed_interval

WELCH = "Welch t"
NO_SPREAD = "exact (no seed-to-seed spread)"
BETTER, WORSE, UNCLEAR, TOO_FEW = "better", "worse", "unclear", "too few seeds"


@dataclass(frozen=True)
class Difference:
    """mean(ours) - mean(theirs) over seeds, with its interval and the power of the comparison."""

    ours: Interval
    theirs: Interval
    value: float
    low: float  # NaN when a side has fewer than two seeds
    high: float
    method: str
    higher_is_better: bool
    spreads: tuple[float, float]  # each side's seed-to-seed standard deviation (NaN with one seed)
    detectable: float  # smallest |difference| found with probability POWER at these seed counts
    seeds_needed: int | None  # per optimizer, to find a difference of |value| with probability POWER
    confidence: float = 0.95

    @property
    def outcome(self) -> str:
        """BETTER / WORSE when the interval lies on one side of zero, else UNCLEAR or TOO_FEW."""
        if math.isnan(self.low) or math.isnan(self.high):
            return TOO_FEW
        sign = 1 if self.higher_is_better else -1
        low, high = sorted((sign * self.low, sign * self.high))
        if low > 0:
            return BETTER
        if high < 0:
            return WORSE
        return UNCLEAR

    def interval_text(self, digits: int = 2) -> str:
        """'+0.002 ± 0.011' for a symmetric interval, else '+0.002 [−0.009, 0.013]'."""
        value = _signed(self.value, digits)
        if math.isnan(self.low):
            return value
        below, above = self.value - self.low, self.high - self.value
        if math.isclose(below, above, rel_tol=1e-6, abs_tol=1e-12):
            return f"{value} ± {fmt.number(above, digits)}"
        return f"{value} [{_signed(self.low, digits)}, {_signed(self.high, digits)}]"

    def seeds_text(self) -> str:
        """How many seeds per optimizer would detect the observed difference, as a clause."""
        if self.seeds_needed is not None:
            return f"about {self.seeds_needed:,} seeds per optimizer would separate a difference this size"
        if self._one_seed_side():
            return "a side has one seed: no seed-to-seed spread to size a study from"
        if self.value == 0:
            return "the observed difference is zero: no number of seeds would separate it"
        return f"more than {MAX_SEEDS:,} seeds per optimizer would be needed to separate a difference this size"

    def seeds_cell(self) -> str:
        """The same, short, for a table cell."""
        if self.seeds_needed is not None:
            return f"about {self.seeds_needed:,} per optimizer"
        if self._one_seed_side():
            return f"{fmt.MISSING} (a side has one seed)"
        if self.value == 0:
            return "none (difference 0)"
        return f"more than {MAX_SEEDS:,} per optimizer"

    def detectable_cell(self) -> str:
        """The smallest difference detectable at POWER with this run's seeds, for a table cell."""
        if math.isnan(self.detectable):
            return f"{fmt.MISSING} (a side has one seed)" if self._one_seed_side() else f"{fmt.MISSING} (no spread)"
        return (f"{fmt.number(self.detectable, 2)} ({self.ours.n} + {self.theirs.n} seeds, "
                f"s.d. {fmt.number(self.spreads[0], 2)} and {fmt.number(self.spreads[1], 2)})")

    def _one_seed_side(self) -> bool:
        return any(math.isnan(sd) for sd in self.spreads)

    def difference_cell(self) -> str:
        if self.outcome == TOO_FEW:
            return f"{self.interval_text()} (no interval: a side has one seed)"
        return f"{self.interval_text()} ({self.method}, {self.confidence:.0%})"


def _signed(x: float, digits: int) -> str:
    text = fmt.number(x, digits)
    return text if text.startswith(("-", "−")) or x == 0 or math.isnan(x) else "+" + text


def _mean_difference(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def compare_seeds(ours: Iterable[float], theirs: Iterable[float], higher_is_better: bool = True,
                  bounds: tuple[float, float] = UNBOUNDED, confidence: float = 0.95) -> Difference:
    """The difference between two optimizers' seed values of one metric (see the module docstring)."""
    ours_iv, theirs_iv = seed_interval(ours, bounds, confidence), seed_interval(theirs, bounds, confidence)
    a, b = np.asarray(ours_iv.values, dtype=float), np.asarray(theirs_iv.values, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return Difference(ours_iv, theirs_iv, math.nan, math.nan, math.nan, WELCH, higher_is_better,
                          (math.nan, math.nan), math.nan, None, confidence)
    value = float(a.mean() - b.mean())
    spreads = (_seed_spread(a), _seed_spread(b))
    low = high = math.nan
    method = WELCH
    if len(a) >= 2 and len(b) >= 2:
        if np.ptp(a) == 0 and np.ptp(b) == 0:
            low = high = value
            method = NO_SPREAD
        elif min(len(a), len(b)) >= MIN_SEEDS_FOR_BOOTSTRAP:
            low, high, method = bootstrap_interval((a, b), _mean_difference, confidence)
        else:
            with warnings.catch_warnings():  # one side's seeds all equal (a saturated metric): scipy warns
                # of precision loss in a variance that is exactly 0; the interval rests on the other side's spread
                warnings.filterwarnings("ignore", "Precision loss occurred in moment calculation", RuntimeWarning)
                ci = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
            low, high = float(ci.low), float(ci.high)
        limits = difference_range(bounds)
        low, high = clip(low, limits), clip(high, limits)
    detectable = welch_detectable(*spreads, len(a), len(b), POWER, ALPHA)
    needed = welch_seeds_needed(value, *spreads, POWER, ALPHA)
    return Difference(ours_iv, theirs_iv, value, low, high, method, higher_is_better, spreads, detectable, needed,
                      confidence)


def _seed_spread(values: np.ndarray) -> float:
    """The seed-to-seed standard deviation (ddof 1; NaN with one seed)."""
    return float(values.std(ddof=1)) if len(values) >= 2 else math.nan


# --- parity: non-inferiority within a margin ---------------------------------------------------
MATCHES, CLEARLY_BETTER, WORSE_BY_MARGIN = "matches", "matches, clearly better", "worse by more than the margin"
PARITY_CONFIDENCE = 0.90  # the two-sided 90% interval's lower end is the one-sided 95% bound


@dataclass(frozen=True)
class ParityTest:
    """Is `ours` not worse than `theirs` by more than `margin`? (one-sided Welch, alpha = 0.05)"""

    difference: Difference  # with its 90% interval
    margin: float
    detectable_margin: float  # the smallest margin these seeds confirm at POWER if the two are equal
    seeds_needed: int | None  # per optimizer, to confirm the match at the observed difference

    def _better_side(self) -> tuple[float, float]:
        sign = 1 if self.difference.higher_is_better else -1
        low, high = sorted((sign * self.difference.low, sign * self.difference.high))
        return low, high

    @property
    def outcome(self) -> str:
        """MATCHES / CLEARLY_BETTER / WORSE_BY_MARGIN, else UNCLEAR or TOO_FEW."""
        if math.isnan(self.difference.low) or math.isnan(self.difference.high):
            return TOO_FEW
        low, high = self._better_side()
        if low > -self.margin:
            return CLEARLY_BETTER if low > 0 else MATCHES
        if high < -self.margin:
            return WORSE_BY_MARGIN
        return UNCLEAR

    def seeds_text(self) -> str:
        if self.seeds_needed is not None:
            return f"about {self.seeds_needed:,} seeds per optimizer would confirm a match at the observed difference"
        if self.difference._one_seed_side():
            return "a side has one seed: no seed-to-seed spread to size a study from"
        return "at the observed difference no number of seeds would confirm a match"

    def seeds_cell(self) -> str:
        if self.seeds_needed is not None:
            return f"about {self.seeds_needed:,} per optimizer to confirm the match"
        if self.difference._one_seed_side():
            return f"{fmt.MISSING} (a side has one seed)"
        return "none would confirm a match at this difference"

    def detectable_cell(self) -> str:
        if math.isnan(self.detectable_margin):
            return f"{fmt.MISSING} (a side has one seed)" if self.difference._one_seed_side() \
                else f"{fmt.MISSING} (no spread)"
        d = self.difference
        return (f"margin {fmt.number(self.detectable_margin, 2)} ({d.ours.n} + {d.theirs.n} seeds, "
                f"s.d. {fmt.number(d.spreads[0], 2)} and {fmt.number(d.spreads[1], 2)})")


def parity_test(ours: Iterable[float], theirs: Iterable[float], margin: float, higher_is_better: bool = True,
                bounds: tuple[float, float] = UNBOUNDED) -> ParityTest:
    """The non-inferiority test of the paper's "matches" claims (see power.py for its power)."""
    diff = compare_seeds(ours, theirs, higher_is_better, bounds, confidence=PARITY_CONFIDENCE)
    better = diff.value if higher_is_better else -diff.value
    detectable = noninferiority_detectable_margin(*diff.spreads, diff.ours.n, diff.theirs.n, POWER, ALPHA)
    needed = noninferiority_seeds_needed(better, margin, *diff.spreads, POWER, ALPHA)
    return ParityTest(diff, margin, detectable, needed)
