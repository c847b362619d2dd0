"""The statistics behind the tables: intervals over seeds, which runs a number comes from, floors.

Kept apart from formatting so tables, figures and the claims all compute a number the same way.

An interval over seeds (`seed_interval`) follows the number of seeds: with 5 or more, a 95% BCa
bootstrap interval of the mean (scipy.stats.bootstrap); with 2 to 4, the lowest to the highest
seed, since a Student-t interval with one to three degrees of freedom is wider than the data and
runs outside the metric's range; with one, none. Every interval is clipped to the metric's range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from nightbench.suites.outcomes import RunState

from .bounds import NON_NEGATIVE, UNBOUNDED, clip, describe

REPORTED_PROTOCOLS = ("final", "default")  # "final" runs (after tuning) win over "default" ones
MIN_SEEDS_FOR_BOOTSTRAP = 5
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # the same results always give the same intervals

# Interval methods, as the tables name them.
BCA, PERCENTILE, MIN_MAX, STUDENT_T, SINGLE, NO_SEEDS = (
    "BCa bootstrap", "percentile bootstrap", "min–max", "Student t", "one seed", "no seeds")


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with an interval; low/high are NaN when n < 2.

    `method` says how the interval was made (BCA, PERCENTILE, MIN_MAX, STUDENT_T, ...) and
    `values` holds the seeds' values it came from."""

    mean: float
    low: float
    high: float
    n: int
    std: float
    method: str = STUDENT_T
    values: tuple[float, ...] = ()

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and not math.isnan(self.low)

    def overlaps(self, other: "Interval") -> bool:
        return not (self.high < other.low or other.high < self.low)


def _finite(values: Iterable[float]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)


def t_interval(values: Iterable[float], confidence: float = 0.95) -> Interval:
    """Mean and Student-t interval over the finite values (seeds are few, so not a z interval)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    x = _finite(values)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, math.nan)
    std = float(x.std(ddof=1))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, std)


def bootstrap_interval(samples: tuple[np.ndarray, ...], statistic, confidence: float) -> tuple[float, float, str]:
    """(low, high, method) of a BCa bootstrap interval of `statistic` over independent samples;
    the percentile interval where BCa cannot be formed (its acceleration needs some spread)."""
    if all(np.ptp(s) == 0 for s in samples):  # every resample gives the same value
        value = float(statistic(*samples, axis=-1))
        return value, value, BCA
    for method in ("BCa", "percentile"):
        with np.errstate(invalid="ignore", divide="ignore"):
            result = scipy_stats.bootstrap(samples, statistic, confidence_level=confidence, method=method,
                                           n_resamples=BOOTSTRAP_RESAMPLES, vectorized=True,
                                           rng=np.random.default_rng(BOOTSTRAP_SEED))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return low, high, BCA if method == "BCa" else PERCENTILE
    return math.nan, math.nan, PERCENTILE


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def seed_interval(values: Iterable[float], bounds: tuple[float, float] = UNBOUNDED,
                  confidence: float = 0.95) -> Interval:
    """The mean over seeds and an interval that respects the metric (see the module docstring)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    x = _finite(values)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan, NO_SEEDS)
    mean, shown = float(x.mean()), tuple(float(v) for v in x)
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, math.nan, SINGLE, shown)
    std = float(x.std(ddof=1))
    if n < MIN_SEEDS_FOR_BOOTSTRAP:
        low, high, method = float(x.min()), float(x.max()), MIN_MAX
    else:
        low, high, method = bootstrap_interval((x,), _mean, confidence)
    return Interval(mean, clip(low, bounds), clip(high, bounds), n, std, method, shown)


def interval_caption(methods: Iterable[str], bounds: tuple[float, float] = UNBOUNDED,
                     confidence: float = 0.95) -> str:
    """One sentence naming how the intervals of a table were made."""
    used = set(methods)
    level = f"{confidence:.0%}"
    parts = []
    if used & {BCA, PERCENTILE}:
        kinds = " or ".join(m for m in (BCA, PERCENTILE) if m in used)
        parts.append(f"with {MIN_SEEDS_FOR_BOOTSTRAP} or more seeds, the {level} {kinds} interval of the mean "
                     f"(scipy.stats.bootstrap, {BOOTSTRAP_RESAMPLES:,} resamples)")
    if MIN_MAX in used:
        parts.append(f"with 2 to {MIN_SEEDS_FOR_BOOTSTRAP - 1} seeds, the lowest to the highest seed (min–max, "
                     "not a confidence interval), every seed's value listed")
    if SINGLE in used:
        parts.append("a single seed has no interval")
    if not parts:
        return ""
    text = "Intervals: " + "; ".join(parts) + "."
    shown = describe(bounds)
    if shown:
        text += f" Clipped to the metric's range {shown}."
    return text


def reported_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose numbers a table reports: per (suite, preset, optimizer) the 'final' runs of the
    tuning protocol when there are any, else the 'default' ones. Tuning runs only feed the LR sweep."""
    if runs.empty:
        return runs
    keep = []
    for _, group in runs.groupby(["suite", "preset", "optimizer"], dropna=False, sort=True):
        for protocol in REPORTED_PROTOCOLS:
            chosen = group[group["protocol"] == protocol]
            if len(chosen):
                keep.append(chosen)
                break
    return pd.concat(keep) if keep else runs.iloc[0:0]


def reported_records(records: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The experiment records (sbv/memory rows) that belong to reported runs."""
    if records.empty or runs.empty:
        return records
    return records[records["run_id"].isin(set(reported_runs(runs)["run_id"]))]


def floor_summary(sbv: pd.DataFrame) -> pd.DataFrame:
    """Gradient-norm floor per (problem, optimizer, batch size) at that optimizer's best lr.

    The best lr is the one with the lowest mean floor over unit seeds (and run seeds): the theory's
    point is that NSGD's floor at batch 1 does not go away whatever the lr.
    """
    columns = ["problem", "optimizer", "batch_size", "best_lr", "n", "floor_mean", "ci_low", "ci_high",
               "floor_min", "floor_max", "floor_median_all_lrs", "lrs_tried", "slope_median", "measure",
               "diverged_units"]
    needed = {"problem", "optimizer", "batch_size", "lr", "floor"}
    if sbv.empty or not needed <= set(sbv.columns):
        return pd.DataFrame(columns=columns)
    data = sbv.copy()
    for col in ("batch_size", "lr", "floor"):
        data[col] = pd.to_numeric(data[col], errors="coerce")
    for col in ("slope", "measure", "status"):
        if col not in data.columns:
            data[col] = np.nan
    data["slope"] = pd.to_numeric(data["slope"], errors="coerce")
    data = data.dropna(subset=["batch_size", "lr"])
    rows = []
    for (problem, optimizer, batch), group in data.groupby(["problem", "optimizer", "batch_size"], sort=True):
        by_lr = group.groupby("lr")["floor"].mean().dropna()
        if by_lr.empty:
            continue
        best_lr = float(by_lr.idxmin())
        at_best = group[group["lr"] == best_lr]
        interval = seed_interval(at_best["floor"], NON_NEGATIVE)
        rows.append({
            "problem": problem, "optimizer": optimizer, "batch_size": int(batch), "best_lr": best_lr,
            "n": interval.n, "floor_mean": interval.mean, "ci_low": interval.low, "ci_high": interval.high,
            "floor_min": float(at_best["floor"].min()), "floor_max": float(at_best["floor"].max()),
            "floor_median_all_lrs": float(group["floor"].median()), "lrs_tried": int(group["lr"].nunique()),
            "slope_median": float(at_best["slope"].median()) if at_best["slope"].notna().any() else math.nan,
            "measure": next((str(m) for m in group["measure"] if isinstance(m, str)), "grad_norm"),
            "diverged_units": int((group["status"] == RunState.DIVERGED).sum()),
        })
    return pd.DataFrame(rows, columns=columns)


def floor_samples(sbv: pd.DataFrame, problem: str, optimizer: str, batch_size: int) -> list[float]:
    """The floors at the best lr of one (problem, optimizer, batch size), one per unit seed."""
    summary = floor_summary(sbv)
    row = summary[(summary["problem"] == problem) & (summary["optimizer"] == optimizer)
                  & (summary["batch_size"] == batch_size)]
    if row.empty:
        return []
    data = sbv[(sbv["problem"] == problem) & (sbv["optimizer"] == optimizer)
               & (pd.to_numeric(sbv["batch_size"], errors="coerce") == batch_size)
               & (pd.to_numeric(sbv["lr"], errors="coerce") == row["best_lr"].iloc[0])]
    return [float(v) for v in pd.to_numeric(data["floor"], errors="coerce").dropna()]


def memory_summary(memory: pd.DataFrame) -> pd.DataFrame:
    """Per (model family, device, optimizer): state bytes per parameter, peak step memory, step times,
    and the optimizer step time as a multiple of SGD's on the same family and device.

    The family is the record's 'family' (the memory suite's short key) or else its 'model'; the
    optimizer step time is 'optimizer_step_time' or else the generic 'step_time'."""
    columns = ["family", "device", "optimizer", "model", "params", "state_bytes", "state_bytes_per_param",
               "param_copies", "peak_step_bytes", "peak_step_increment_bytes", "train_step_time",
               "optimizer_step_time", "step_time_ratio_to_sgd"]
    if memory.empty or not {"optimizer"} <= set(memory.columns) or not {"family", "model"} & set(memory.columns):
        return pd.DataFrame(columns=columns)
    data = memory.copy()
    for col in ("family", "model", "device"):
        if col not in data.columns:
            data[col] = None
    data["family"] = data["family"].fillna(data["model"]).astype(str)
    data["device"] = data["device"].fillna("").astype(str)
    for col in columns[4:-1] + ["step_time"]:
        data[col] = pd.to_numeric(data[col], errors="coerce") if col in data.columns else np.nan
    data["optimizer_step_time"] = data["optimizer_step_time"].fillna(data["step_time"])
    data["train_step_time"] = data["train_step_time"].fillna(data["step_time"])
    summary = (data.groupby(["family", "device", "optimizer"], sort=True)
               .agg(model=("model", "first"), params=("params", "max"), state_bytes=("state_bytes", "mean"),
                    state_bytes_per_param=("state_bytes_per_param", "mean"),
                    param_copies=("param_copies", "mean"), peak_step_bytes=("peak_step_bytes", "mean"),
                    peak_step_increment_bytes=("peak_step_increment_bytes", "mean"),
                    train_step_time=("train_step_time", "median"),
                    optimizer_step_time=("optimizer_step_time", "median"))
               .reset_index())
    sgd = summary[summary["optimizer"] == "sgd"].set_index(["family", "device"])["optimizer_step_time"]
    summary["step_time_ratio_to_sgd"] = [
        row.optimizer_step_time / sgd.get((row.family, row.device), math.nan) for row in summary.itertuples()
    ]
    return summary[columns]
