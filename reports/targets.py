"""When a run first reached its suite's target, computed from its eval records.

Used where a run's summary does not say (older runs, incomplete runs): the first evaluation whose
target metric is at least (or, for lower-is-better metrics, at most) the target value.
"""

from __future__ import annotations

import math
from typing import Any, Iterable


def first_reach(
    eval_records: Iterable[dict[str, Any]], metric: str, target: float, higher_is_better: bool = True
) -> tuple[float, float] | None:
    """(step, time) of the first eval record that meets `target`, or None if none does."""
    ordered = sorted(
        (r for r in eval_records if isinstance(r.get("step"), (int, float))),
        key=lambda r: r["step"],
    )
    for record in ordered:
        value = record.get(metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            continue
        if (value >= target) if higher_is_better else (value <= target):
            time = record.get("time")
            return float(record["step"]), float(time) if isinstance(time, (int, float)) else math.nan
    return None
