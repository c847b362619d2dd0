"""How numbers look on the page: one place, so every table shows a quantity the same way."""

from __future__ import annotations

import math
from typing import Any

MISSING = "—"


def _bad(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def number(x: Any, digits: int = 4) -> str:
    """A number with `digits` significant digits; '—' for missing, 'inf' kept visible."""
    if _bad(x):
        return MISSING
    if isinstance(x, (int, float)) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}g}" if isinstance(x, (int, float)) else str(x)


def integer(x: Any) -> str:
    return MISSING if _bad(x) else f"{int(round(x)):,}"


def seconds(x: Any) -> str:
    """Durations as s / min / h, whichever reads best."""
    if _bad(x):
        return MISSING
    if x < 1:
        return f"{x * 1000:.3g} ms"
    if x < 120:
        return f"{x:.3g} s"
    if x < 7200:
        return f"{x / 60:.3g} min"
    return f"{x / 3600:.3g} h"


def nbytes(x: Any) -> str:
    if _bad(x):
        return MISSING
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(x) >= size:
            value = x / size
            return f"{value:.0f} {unit}" if abs(value) >= 100 else f"{value:.3g} {unit}"
    return f"{x:.0f} B"


def ratio(x: Any) -> str:
    """'1.20×', '0.0031×': three significant digits, never rounded to a misleading 0.00×."""
    if _bad(x):
        return MISSING
    return f"{x:.2f}×" if 0.1 <= abs(x) < 100 else f"{x:.3g}×"


def mean_ci(mean: float, low: float, high: float, n: int, digits: int = 4) -> str:
    """'70.91 [70.52, 71.30]', or a mean marked as a single seed, or '—' when no run finished."""
    if n == 0 or _bad(mean):
        return MISSING
    if n == 1 or _bad(low):
        return f"{number(mean, digits)} (1 seed, no interval)"
    return f"{number(mean, digits)} [{number(low, digits)}, {number(high, digits)}]"


def hyperparameters(values: Any) -> str:
    """'lr=0.001, beta=0.9' from a resolved hyperparameter dict."""
    if not isinstance(values, dict) or not values:
        return MISSING
    return ", ".join(f"{k}={number(v) if isinstance(v, float) else v}" for k, v in sorted(values.items()))
