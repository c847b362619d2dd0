"""The findings docs/algorithms.md ("nsgd") and the paper predict, as checks on unit records, and the run's summary metrics.

`stalls_at_skew_floor` and `keeps_shrinking` look at the floors of one (problem, batch size)
across learning rates on the skewed quadratic. Without momentum the floor sits near p whatever the
lr (the iterate parks where the noise's sign flips, at w = -p); with momentum it lies well below p
and falls as the lr falls. The tests run them on real runs and on a broken optimizer.

`momentum_rescue` is the one definition of the paper's comparative claim (momentum lowers the
floor nsgd stalls at): the report's claims section gives it the outcome of each momentum variant
against nsgd and shows its verdict. It takes plain outcomes, so it needs no statistics library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from . import measure

RECORD_KIND = "sbv_unit"  # the kind of each unit's record in metrics.jsonl (units.py writes them)


@dataclass(frozen=True)
class Finding:
    holds: bool
    reason: str

    def __bool__(self) -> bool:
        return self.holds


RESCUERS = ("nsgd_momentum", "nigt")  # the momentum variants of normalized SGD
LOWER, HIGHER = "lower", "higher"  # a rescuer's floor against nsgd's; anything else: cannot tell


def rescue_on_problem(outcomes: Iterable[str]) -> bool | None:
    """On one problem: True when every momentum variant's floor is lower than nsgd's, False when
    any is higher, None when the outcomes do not decide (or there are none)."""
    outcomes = list(outcomes)
    if outcomes and all(o == LOWER for o in outcomes):
        return True
    if any(o == HIGHER for o in outcomes):
        return False
    return None


def is_skewed_example(problem: str) -> bool:
    """One of the paper's skewed-noise problems (skewed_flat, skewed_quadratic, or a record's own name)."""
    return "skew" in problem.lower()


def deciding_problems(problems: Iterable[str]) -> list[str]:
    """The problems the verdict rests on: the paper's skewed-noise examples when present, else all."""
    problems = list(problems)
    return [p for p in problems if is_skewed_example(p)] or problems


def momentum_rescue(per_problem: dict[str, Iterable[str]]) -> tuple[bool | None, list[str]]:
    """(verdict, the problems it was decided on) from each problem's rescuer outcomes (LOWER/HIGHER/...):
    True when momentum lowers the floor on every deciding problem, False when it raises it on any,
    None otherwise."""
    deciding = deciding_problems(per_problem)
    verdicts = [rescue_on_problem(per_problem[p]) for p in deciding]
    if verdicts and all(v is True for v in verdicts):
        return True, deciding
    if any(v is False for v in verdicts):
        return False, deciding
    return None, deciding


def unit_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("kind") == RECORD_KIND]


def floors_by_lr(records: Iterable[dict[str, Any]], problem: str, batch_size: int) -> dict[float, float]:
    """{lr: floor averaged over replicates} for one problem and batch size (diverged units: inf)."""
    grouped: dict[float, list[float]] = {}
    for r in unit_records(records):
        if r["problem"] == problem and r["batch_size"] == batch_size:
            floor = r["floor"] if r.get("status") == "ok" and r["floor"] is not None else float("inf")
            grouped.setdefault(float(r["lr"]), []).append(float(floor))
    return {lr: float(np.mean(v)) for lr, v in sorted(grouped.items())}


def stalls_at_skew_floor(floors: dict[float, float], p: float, tolerance: float = 0.25,
                         min_ratio: float = 0.5) -> Finding:
    """Every floor within `tolerance` x p of p, and the smallest lr's floor >= min_ratio x the largest's."""
    if len(floors) < 2:
        return Finding(False, f"need floors at >= 2 learning rates, got {floors}")
    off = {lr: f for lr, f in floors.items() if abs(f - p) > tolerance * p}
    if off:
        return Finding(False, f"floors {off} are not within {tolerance:.0%} of p={p}")
    small, large = floors[min(floors)], floors[max(floors)]
    if small < min_ratio * large:
        return Finding(False, f"floor shrank from {large:.4g} to {small:.4g} as the lr shrank")
    return Finding(True, f"floors {floors} stay near p={p} at every lr")


def keeps_shrinking(floors: dict[float, float], p: float, below: float = 0.5, max_ratio: float = 0.8) -> Finding:
    """The smallest lr's floor < below x p, and < max_ratio x the largest lr's floor."""
    if len(floors) < 2:
        return Finding(False, f"need floors at >= 2 learning rates, got {floors}")
    small, large = floors[min(floors)], floors[max(floors)]
    if not small < below * p:
        return Finding(False, f"floor {small:.4g} at the smallest lr is not below {below} x p = {below * p:.4g}")
    if not small < max_ratio * large:
        return Finding(False, f"floor did not shrink with the lr: {large:.4g} -> {small:.4g} (need < {max_ratio}x)")
    return Finding(True, f"floor falls {large:.4g} -> {small:.4g} as the lr falls, below p={p}")


def summarize(records: Iterable[dict[str, Any]], config: dict[str, Any]) -> dict[str, float]:
    """Flat summary metrics: per problem, the best-lr floor at the smallest and the largest batch size,
    on the skewed quadratic at the smallest batch the floor / p and the smallest-lr / largest-lr floor
    ratio, and per problem and batch size the exponent in T of the best-lr envelope of the curves."""
    records = unit_records(records)
    out: dict[str, float] = {
        "units": float(len(records)),
        "diverged_units": float(sum(r.get("status") != "ok" for r in records)),
    }
    sizes = config["batch_sizes"]
    for problem in config["problems"]:
        for b in sorted({sizes[0], sizes[-1]}):
            floors = floors_by_lr(records, problem, b)
            if floors:
                out[f"floor_{problem}_b{b}"] = min(floors.values())
        for b in sizes:
            slope = envelope_slope(records, problem, b, config["slope_from_fraction"])
            if slope is not None:
                out[f"envelope_slope_{problem}_b{b}"] = slope
    floors = floors_by_lr(records, "skewed_quadratic", sizes[0])
    if len(floors) >= 2 and np.isfinite(list(floors.values())).all():
        out[f"floor_over_p_skewed_quadratic_b{sizes[0]}"] = min(floors.values()) / config["skew_p"]
        out[f"lr_floor_ratio_skewed_quadratic_b{sizes[0]}"] = floors[min(floors)] / floors[max(floors)]
    return {k: float(v) for k, v in out.items() if np.isfinite(v)}


def envelope_slope(records: list[dict[str, Any]], problem: str, batch_size: int,
                   from_fraction: float) -> float | None:
    """Exponent in T of the lower envelope over lrs of the replicate-mean curves: the best lr at each horizon."""
    by_lr: dict[float, list] = {}
    steps = None
    for r in records:
        if r["problem"] == problem and r["batch_size"] == batch_size and r.get("status") == "ok":
            by_lr.setdefault(float(r["lr"]), []).append(r["curve"])
            steps = r["steps"]
    if not by_lr or steps is None:
        return None
    envelope = measure.lower_envelope([measure.mean_curve(c) for c in by_lr.values()])
    slope, _ci = measure.fit_exponent(envelope, from_step=from_fraction * steps)
    return slope
