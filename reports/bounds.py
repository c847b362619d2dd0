"""The range each metric can take, so that no interval is drawn outside it.

An accuracy is a fraction of examples (0 to 1); a loss, a gradient norm or a time is never
negative. A metric this file does not recognise is taken as unbounded: its intervals are shown
unclipped, which is never wrong, only less tight.
"""

from __future__ import annotations

import math
import re

UNIT_INTERVAL = (0.0, 1.0)
NON_NEGATIVE = (0.0, math.inf)
UNBOUNDED = (-math.inf, math.inf)

# Metrics the project's suites report, by name.
KNOWN_RANGES = {
    "mlm_accuracy": UNIT_INTERVAL,
    "train_mlm_accuracy": UNIT_INTERVAL,
    "top1": UNIT_INTERVAL,
    "top5": UNIT_INTERVAL,
    "accuracy": UNIT_INTERVAL,
    "loss": NON_NEGATIVE,
    "mlm_loss": NON_NEGATIVE,
    "floor": NON_NEGATIVE,
    "grad_norm": NON_NEGATIVE,
}
# Other names by their form (a user's suite reporting 'val_accuracy' or 'top3', say).
FRACTION_NAME = re.compile(r"(^|_)(accuracy|acc|top\d+|precision|recall|f1)($|_)")
NON_NEGATIVE_NAME = re.compile(r"(^|_)(loss|perplexity|norm|floor|time|seconds|bytes)($|_)")


def metric_range(metric: str | None) -> tuple[float, float]:
    """(lowest, highest) value `metric` can take; (-inf, inf) when not known."""
    if not isinstance(metric, str):
        return UNBOUNDED
    name = metric.strip().lower()
    if name in KNOWN_RANGES:
        return KNOWN_RANGES[name]
    if FRACTION_NAME.search(name):
        return UNIT_INTERVAL
    if NON_NEGATIVE_NAME.search(name):
        return NON_NEGATIVE
    return UNBOUNDED


def difference_range(bounds: tuple[float, float]) -> tuple[float, float]:
    """The range of a difference of two such values: [low - high, high - low]."""
    low, high = bounds
    return (low - high, high - low)


def clip(value: float, bounds: tuple[float, float]) -> float:
    """`value` moved inside `bounds` (NaN stays NaN)."""
    if math.isnan(value):
        return value
    return min(max(value, bounds[0]), bounds[1])


def describe(bounds: tuple[float, float]) -> str:
    """'[0, 1]', '[0, ∞)' or '' for an unbounded metric."""
    low, high = bounds
    if math.isinf(low) and math.isinf(high):
        return ""
    left = "(−∞" if math.isinf(low) else f"[{low:g}"
    right = "∞)" if math.isinf(high) else f"{high:g}]"
    return f"{left}, {right}"
