"""Performance profiles across suites (Dolan & Moré 2002, as AlgoPerf scores time to target).

For each problem (a suite at a preset with a target) and optimizer, the cost is the median over its
reported seeds of the time (or steps) to reach the target; a seed that never reaches it costs
infinity. rho_o(tau) is the fraction of problems on which optimizer o's cost is within a factor tau
of the best optimizer's cost on that problem.

The benchmark score (AlgoPerf's) is the normalized area under that profile up to r_max = 4:

    B_o = 1 / (r_max - 1) * integral from 1 to r_max of rho_o(tau) d tau

so 1 means fastest on every problem and 0 never within r_max of the best; a missed target is an
infinite ratio and adds nothing. Because rho_o is a step function, the integral is exact: each
problem with ratio r <= r_max adds (r_max - r) / (r_max - 1) / (number of problems).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from nightbench.suites.outcomes import SUMMARY_STATES

from .stats import reported_runs

COST_COLUMNS = {"time": "time_to_target", "steps": "steps_to_target"}
R_MAX = 4.0


def target_costs(runs: pd.DataFrame, measure: str = "time") -> pd.DataFrame:
    """A problems x optimizers table of costs (inf where the target was never reached).

    Only training suites with a target value take part; an optimizer with no run on a problem gets
    NaN there and counts as not solving it in the profile."""
    if measure not in COST_COLUMNS:
        raise ValueError(f"measure must be one of {sorted(COST_COLUMNS)}, got {measure!r}")
    chosen = reported_runs(runs) if len(runs) else runs
    if chosen.empty:
        return pd.DataFrame()
    training = chosen["suite_kind"].fillna("training") == "training" if "suite_kind" in chosen else True
    chosen = chosen[chosen["target_value"].notna() & chosen["status"].isin(SUMMARY_STATES)
                    & training]
    if chosen.empty:
        return pd.DataFrame()
    column = COST_COLUMNS[measure]
    cost = pd.to_numeric(chosen[column], errors="coerce").fillna(math.inf)
    problem = chosen["suite"].astype(str) + " (" + chosen["preset"].astype(str) + ")"
    if measure == "time" and "environment_key" in chosen:
        # times compare only within one machine and software environment: each is its own problem
        environment = chosen["environment_key"].fillna("").astype(str)
        spans = environment.groupby(problem).transform("nunique") > 1
        problem = problem.where(~spans, problem + " on " + environment)
    frame = chosen.assign(problem=problem, cost=cost)
    return frame.pivot_table(index="problem", columns="optimizer", values="cost", aggfunc="median")


def performance_ratios(costs: pd.DataFrame) -> pd.DataFrame:
    """cost / best cost per problem; inf where an optimizer never reached the target or nobody did,
    NaN where it has no run on that problem."""
    values = costs.to_numpy(dtype=float)
    best = np.min(np.where(np.isnan(values), np.inf, values), axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = values / best
    ratio[(values == best) & np.isfinite(best)] = 1.0  # the winner, including a zero-cost winner
    ratio[(best == 0) & (values > 0)] = np.inf
    ratio[np.broadcast_to(np.isinf(best), ratio.shape)] = np.inf  # nobody reached the target
    ratio[np.isnan(values)] = np.nan
    return pd.DataFrame(ratio, index=costs.index, columns=costs.columns)


def profile_curve(ratios: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """rho(tau) per optimizer: the fraction of all problems with ratio <= tau (long format)."""
    rows = []
    n_problems = len(ratios)
    for optimizer in ratios.columns:
        values = ratios[optimizer].to_numpy(dtype=float)
        for tau in taus:
            rows.append({"optimizer": optimizer, "tau": float(tau),
                         "fraction": float(np.sum(values <= tau)) / n_problems if n_problems else math.nan})
    return pd.DataFrame(rows, columns=["optimizer", "tau", "fraction"])


def tau_grid(ratios: pd.DataFrame, points: int = 200) -> np.ndarray:
    """Log-spaced taus from 1 to a bit past the largest finite ratio (at least 10)."""
    finite = ratios.to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    top = max(10.0, float(finite.max()) * 1.5) if finite.size else 10.0
    return np.unique(np.concatenate([np.geomspace(1.0, top, points), finite]))


def benchmark_scores(ratios: pd.DataFrame, r_max: float = R_MAX) -> pd.Series:
    """Per optimizer, the area under its profile from 1 to `r_max` over (r_max - 1): in [0, 1]."""
    if not r_max > 1:
        raise ValueError(f"r_max must be greater than 1, got {r_max!r}")
    values = ratios.to_numpy(dtype=float)
    if values.size == 0:
        return pd.Series(dtype=float, index=ratios.columns)
    within = np.where(np.isfinite(values) & (values <= r_max), r_max - np.maximum(values, 1.0), 0.0)
    return pd.Series(within.sum(axis=0) / (len(ratios) * (r_max - 1)), index=ratios.columns)
