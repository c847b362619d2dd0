"""Turning a unit's measurements into its record: curve, floor, fitted exponent in T.

Measurements are (step, value) pairs of the true gradient norm (or the drift on the flat
problem) at the reported iterate. The curve keeps at most `points` of them: at log-spaced
checkpoints, each the mean of the measurements since the previous checkpoint, so the curve is
smooth enough to fit and still shows the early transient.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats


def measurement_steps(total_steps: int, count: int, curve_points: int) -> list[int]:
    """Steps at which to measure: `count` evenly spaced ones plus the log-spaced curve checkpoints."""
    every = max(1, total_steps // max(1, count))
    steps = set(range(every, total_steps + 1, every)) | set(curve_checkpoints(total_steps, curve_points))
    return sorted(steps)


def curve_checkpoints(total_steps: int, points: int) -> list[int]:
    """About `points` distinct steps in [1, total_steps], log-spaced, always ending at total_steps."""
    raw = np.unique(np.round(np.geomspace(1, total_steps, num=max(2, points))).astype(int))
    return [int(s) for s in raw if 1 <= s <= total_steps]


def bucket_curve(measurements: Sequence[tuple[int, float]], checkpoints: Sequence[int]) -> list[list[float]]:
    """[[checkpoint, mean of the measurements in (previous checkpoint, checkpoint]], ...]; empty buckets skipped."""
    curve, i, previous = [], 0, 0
    ordered = sorted(measurements)
    for c in checkpoints:
        values = []
        while i < len(ordered) and ordered[i][0] <= c:
            if ordered[i][0] > previous:
                values.append(ordered[i][1])
            i += 1
        if values:
            curve.append([int(c), float(np.mean(values))])
        previous = c
    return curve


def floor_of(measurements: Sequence[tuple[int, float]], total_steps: int, fraction: float) -> float:
    """Mean of the measurements taken in the final `fraction` of the run (the last one if none)."""
    start = total_steps * (1.0 - fraction)
    tail = [v for s, v in measurements if s > start]
    if not tail:
        tail = [max(measurements)[1]]
    return float(np.mean(tail))


def fit_exponent(curve: Sequence[Sequence[float]], from_step: float = 1.0,
                 confidence: float = 0.95) -> tuple[float | None, list[float] | None]:
    """Least-squares slope of log(value) against log(step) for steps >= from_step, with its CI.

    Returns (None, None) when fewer than 3 positive points remain (nothing to fit).
    The interval is the usual t-interval of an ordinary least-squares slope; it assumes
    independent residuals, which consecutive checkpoints of one run only roughly are.
    """
    pts = [(s, v) for s, v in curve if s >= from_step and v > 0 and math.isfinite(v)]
    if len(pts) < 3:
        return None, None
    x = np.log([s for s, _ in pts])
    y = np.log([v for _, v in pts])
    fit = stats.linregress(x, y)
    slope = float(fit.slope)
    half = float(stats.t.ppf(0.5 + confidence / 2, len(pts) - 2) * fit.stderr)
    if not math.isfinite(half):
        return slope, None
    return slope, [slope - half, slope + half]


def lower_envelope(curves: Sequence[Sequence[Sequence[float]]]) -> list[list[float]]:
    """At each step present in every curve, the smallest value: the best lr at each horizon."""
    if not curves:
        return []
    by_step = [dict((int(s), v) for s, v in c) for c in curves]
    common = set(by_step[0]).intersection(*by_step[1:])
    return [[s, min(d[s] for d in by_step)] for s in sorted(common)]


def mean_curve(curves: Sequence[Sequence[Sequence[float]]]) -> list[list[float]]:
    """Pointwise mean of curves over the steps they share (replicates of one setting)."""
    if not curves:
        return []
    by_step = [dict((int(s), v) for s, v in c) for c in curves]
    common = set(by_step[0]).intersection(*by_step[1:])
    return [[s, float(np.mean([d[s] for d in by_step]))] for s in sorted(common)]
