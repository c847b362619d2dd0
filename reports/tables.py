"""The report's tables: each one raw (what its CSV download holds) and formatted (what the page shows)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import fmt
from .palette import is_paper_optimizer
from .stats import floor_summary, memory_summary, reported_records, reported_runs, t_interval


@dataclass
class Table:
    """A table for the page: `raw` is downloadable as CSV, `display` holds the shown strings."""

    key: str  # a slug: the element id and the CSV file name
    title: str
    raw: pd.DataFrame
    display: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    numeric: frozenset[str] = frozenset()  # display columns aligned right
    highlight: list[bool] = field(default_factory=list)  # per display row: a paper optimizer


def slug(text: str) -> str:
    """A safe id / file-name fragment from any string read from results."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "table"


def _highlight(optimizers: pd.Series) -> list[bool]:
    return [is_paper_optimizer(str(name)) for name in optimizers]


def _drop_constant(display: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Leave out columns that say the same on every row (the page header already states them)."""
    same = [c for c in columns if c in display.columns and display[c].nunique(dropna=False) <= 1]
    return display.drop(columns=same)


def _not_completed(row) -> str:
    parts = [f"{n} {what}" for n, what in ((row.diverged, "diverged"), (row.failed, "failed"),
                                            (row.incomplete, "incomplete"), (row.damaged, "damaged")) if n]
    return ", ".join(parts) or fmt.MISSING


def _mean(series: pd.Series) -> float:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan


def _hyperparameter_sets(group: pd.DataFrame) -> str:
    """The hyperparameters of a group's runs; distinct sets are all listed (they should agree)."""
    shown = sorted({fmt.hyperparameters(h) for h in group["hyperparameters"] if isinstance(h, dict) and h})
    return " | ".join(shown) if shown else fmt.MISSING


def leaderboard(runs: pd.DataFrame, suite: str) -> Table | None:
    """Per (preset, optimizer): final target metric mean and 95% t-interval over seeds, time to
    target, failures and divergences, hyperparameters and the protocol that produced the numbers."""
    chosen = reported_runs(runs[runs["suite"] == suite]) if len(runs) else runs
    if chosen.empty:
        return None
    rows = []
    for (preset, optimizer), group in chosen.groupby(["preset", "optimizer"], sort=True, dropna=False):
        completed = group[group["status"] == "completed"]
        interval = t_interval(completed["final_value"])
        reached = completed[completed["steps_to_target"].notna()]
        metric = next((m for m in group["target_metric"] if isinstance(m, str)), None)
        target = _mean(group["target_value"])
        rows.append({
            "suite": suite, "preset": preset, "optimizer": optimizer,
            "paper_optimizer": is_paper_optimizer(str(optimizer), str(group["paper"].iloc[0])),
            "protocol": ", ".join(sorted(set(group["protocol"]))),
            "runs": len(group), "completed": len(completed),
            "diverged": int((group["status"] == "diverged").sum()),
            "failed": int((group["status"] == "failed").sum()),
            "incomplete": int((group["status"] == "incomplete").sum()),
            "damaged": int(group["status"].isin(["damaged", "unknown"]).sum()),
            "metric": metric, "higher_is_better": bool(group["higher_is_better"].iloc[0]),
            "target_value": target, "mean": interval.mean, "ci_low": interval.low, "ci_high": interval.high,
            "n": interval.n, "std": interval.std, "reached_target": len(reached),
            "steps_to_target_mean": _mean(reached["steps_to_target"]),
            "time_to_target_mean_s": _mean(reached["time_to_target"]),
            "wall_time_mean_s": _mean(completed["wall_time"]),
            "step_time_median_s": _mean(completed["step_time_median"]),
            "seeds": ", ".join(str(int(s)) for s in sorted(group["seed"].dropna())),
            "hyperparameters": _hyperparameter_sets(group),
            "errors": " | ".join(sorted({str(e) for e in group["error"] if isinstance(e, str) and e})),
        })
    raw = pd.DataFrame(rows)
    higher = bool(raw["higher_is_better"].all())
    raw = raw.sort_values(["preset", "mean", "optimizer"], ascending=[True, not higher, True],
                          na_position="last").reset_index(drop=True)
    metric = raw["metric"].dropna().iloc[0] if raw["metric"].notna().any() else "final metric"
    no_target = raw["target_value"].isna().all()
    display = pd.DataFrame({
        "Optimizer": raw["optimizer"].astype(str),
        "Preset": raw["preset"].astype(str),
        "Protocol": raw["protocol"],
        "Runs": raw["runs"].map(fmt.integer),
        f"Final {metric}, mean [95% CI]": [fmt.mean_ci(r.mean, r.ci_low, r.ci_high, r.n) for r in raw.itertuples()],
        "Reached target": [f"{r.reached_target}/{r.completed}" for r in raw.itertuples()],
        "Steps to target": raw["steps_to_target_mean"].map(fmt.integer),
        "Time to target": raw["time_to_target_mean_s"].map(fmt.seconds),
        "Wall time": raw["wall_time_mean_s"].map(fmt.seconds),
        "Not completed": [_not_completed(r) for r in raw.itertuples()],
        "Hyperparameters": raw["hyperparameters"],
    })
    display = _drop_constant(display, ["Preset"])
    if no_target:
        display = display.drop(columns=["Reached target", "Steps to target", "Time to target"])
    notes = [
        f"Mean over completed seeds of the final {metric} ({'higher' if higher else 'lower'} is better), "
        "with a 95% Student-t interval; a single seed has no interval.",
        "Numbers come from the tuning protocol's 'final' runs where they exist, else from 'default' runs.",
    ]
    if no_target:
        notes.append("This suite has no target value at this preset, so no time to target.")
    else:
        targets = ", ".join(sorted({fmt.number(t) for t in raw["target_value"].dropna()}))
        notes.append(f"Target {metric}: {targets}; steps/time to target are means over the runs that reached it.")
    numeric = frozenset(display.columns) - {"Optimizer", "Preset", "Protocol", "Hyperparameters", "Not completed"}
    return Table(f"leaderboard-{slug(suite)}", f"Leaderboard: {suite}", raw, display, notes, numeric,
                 _highlight(raw["optimizer"]))


def tuning_table(runs: pd.DataFrame, suite: str) -> Table | None:
    """The learning-rate sweep of the tuning protocol: what was tried, what won, what was rerun."""
    suite_runs = runs[runs["suite"] == suite] if len(runs) else runs
    tuning = suite_runs[suite_runs["protocol"] == "tuning"] if len(suite_runs) else suite_runs
    if tuning.empty:
        return None
    rows = []
    for (preset, optimizer), group in tuning.groupby(["preset", "optimizer"], sort=True):
        higher = bool(group["higher_is_better"].iloc[0])
        by_lr = group[group["status"] == "completed"].groupby("lr")["final_value"].mean().dropna()
        best_lr = (by_lr.idxmax() if higher else by_lr.idxmin()) if len(by_lr) else math.nan
        final = suite_runs[(suite_runs["preset"] == preset) & (suite_runs["optimizer"] == optimizer)
                           & (suite_runs["protocol"] == "final")]
        rows.append({
            "suite": suite, "preset": preset, "optimizer": optimizer,
            "lrs_tried": " ".join(fmt.number(lr) for lr in sorted(group["lr"].dropna().unique())),
            "tuning_runs": len(group), "diverged_or_failed": int(group["status"].isin(["diverged", "failed"]).sum()),
            "best_lr_on_tuning_seed": best_lr,
            "best_tuning_value": float(by_lr.get(best_lr, math.nan)) if len(by_lr) else math.nan,
            "final_runs_lr": " ".join(fmt.number(lr) for lr in sorted(final["lr"].dropna().unique())) or None,
            "final_runs": len(final),
        })
    raw = pd.DataFrame(rows)
    display = pd.DataFrame({
        "Optimizer": raw["optimizer"].astype(str), "Preset": raw["preset"].astype(str),
        "LRs tried": raw["lrs_tried"], "Tuning runs": raw["tuning_runs"].map(fmt.integer),
        "Diverged/failed": raw["diverged_or_failed"].map(fmt.integer),
        "Best lr (tuning)": raw["best_lr_on_tuning_seed"].map(fmt.number),
        "Metric at best lr": raw["best_tuning_value"].map(fmt.number),
        "Final runs' lr": raw["final_runs_lr"].fillna(fmt.MISSING),
        "Final runs": raw["final_runs"].map(fmt.integer),
    })
    notes = ["The best lr is chosen on the validation metric of the tuning seed; the reported numbers "
             "come from the 'final' reruns with that setting."]
    display = _drop_constant(display, ["Preset"])
    return Table(f"tuning-{slug(suite)}", f"Learning-rate tuning: {suite}", raw, display, notes,
                 frozenset(display.columns) - {"Optimizer", "Preset", "LRs tried"}, _highlight(raw["optimizer"]))


def memory_table(memory: pd.DataFrame, runs: pd.DataFrame) -> Table | None:
    """Optimizer state per parameter, peak step memory and step times per (model family, optimizer)."""
    summary = memory_summary(reported_records(memory, runs))
    if summary.empty:
        return None
    display = pd.DataFrame({
        "Model": summary["family"].astype(str), "Optimizer": summary["optimizer"].astype(str),
        "Device": summary["device"].astype(str), "Parameters": summary["params"].map(fmt.integer),
        "State bytes / param": summary["state_bytes_per_param"].map(lambda x: fmt.number(x, 3)),
        "Param-sized copies": summary["param_copies"].map(lambda x: fmt.number(x, 3)),
        "Peak step memory": summary["peak_step_bytes"].map(fmt.nbytes),
        "Step increment": summary["peak_step_increment_bytes"].map(fmt.nbytes),
        "Train step": summary["train_step_time"].map(fmt.seconds),
        "Optimizer step": summary["optimizer_step_time"].map(fmt.seconds),
        "Optimizer step / SGD": summary["step_time_ratio_to_sgd"].map(fmt.ratio),
    })
    display = _drop_constant(display, ["Device"])
    notes = ["State bytes per parameter counts each optimizer-state storage once; fp32 momentum is 4 bytes "
             "per parameter (one slot), Adam's two moments 8.",
             "Peak step memory is the process's peak during one training step; the increment is what the step "
             "added to the memory held before it.",
             "Step times are medians; the ratio divides the optimizer step by SGD's on the same model and device."]
    described = dict.fromkeys((f, m) for f, m in zip(summary["family"], summary["model"])
                              if isinstance(m, str) and m != f)
    if described:
        notes.append("Models: " + "; ".join(f"{family} = {model}" for family, model in described))
    return Table("memory", "Memory and step time per optimizer", summary, display, notes,
                 frozenset(display.columns) - {"Model", "Optimizer", "Device"}, _highlight(summary["optimizer"]))


def step_time_ratio_table(memory: pd.DataFrame, runs: pd.DataFrame) -> Table | None:
    """Optimizer step time as a multiple of SGD's, one column per model family."""
    summary = memory_summary(reported_records(memory, runs))
    if summary.empty:
        return None
    raw = summary[["family", "device", "optimizer", "optimizer_step_time", "step_time_ratio_to_sgd"]]
    pivot = raw.pivot_table(index="optimizer", columns="family", values="step_time_ratio_to_sgd",
                            aggfunc="mean", dropna=False)
    display = pd.DataFrame({"Optimizer": pivot.index.astype(str)})
    for family in pivot.columns:
        display[str(family)] = [fmt.ratio(v) for v in pivot[family]]
    notes = ["Median optimizer step time divided by SGD's on the same model family and device."]
    if not (summary["optimizer"] == "sgd").any():
        notes.append("No SGD runs: no ratio can be formed.")
    return Table("step-time-ratio", "Optimizer step time relative to SGD", raw.reset_index(drop=True),
                 display, notes, frozenset(display.columns[1:]), _highlight(display["Optimizer"]))


def floor_table(sbv: pd.DataFrame, runs: pd.DataFrame) -> Table | None:
    """Small-batch suite: gradient-norm floor at the best lr, per problem and optimizer by batch size."""
    summary = floor_summary(reported_records(sbv, runs))
    if summary.empty:
        return None
    batches = sorted(summary["batch_size"].unique())
    rows = []
    for (problem, optimizer), group in summary.groupby(["problem", "optimizer"], sort=True):
        row = {"Problem": str(problem), "Optimizer": str(optimizer)}
        for batch in batches:
            hit = group[group["batch_size"] == batch]
            if hit.empty:
                row[f"batch {batch}"] = fmt.MISSING
            else:
                floor, lr = hit["floor_mean"].iloc[0], hit["best_lr"].iloc[0]
                row[f"batch {batch}"] = f"{fmt.number(floor, 3)} (lr {fmt.number(lr, 2)})"
        rows.append(row)
    display = pd.DataFrame(rows)
    notes = ["Gradient-norm floor (mean over unit seeds) at each optimizer's best learning rate; the lr is "
             "in parentheses. Theory: NSGD without momentum at batch 1 stalls at a floor that a smaller lr "
             "does not remove; momentum (nsgd_momentum, nigt) or larger batches shrink it."]
    measures = summary.groupby("problem")["measure"].first()
    if (measures != "grad_norm").any():
        notes.append("The floor is of each problem's measure: " + "; ".join(
            f"{problem}: {measure.replace('_', ' ')}" for problem, measure in measures.items()) + ".")
    return Table("floors", "Gradient-norm floor by batch size", summary, display, notes,
                 frozenset(display.columns[2:]), _highlight(display["Optimizer"]))


def runs_table(runs: pd.DataFrame) -> Table | None:
    """Every run directory found, with its status and final metric."""
    if runs.empty:
        return None
    raw = runs[["suite", "preset", "optimizer", "run_name", "seed", "protocol", "status", "target_metric",
                "final_value", "steps", "wall_time", "lr", "error", "problems", "run_dir"]].copy()
    raw = raw.sort_values(["suite", "preset", "optimizer", "protocol", "run_name"], na_position="last")
    display = pd.DataFrame({
        "Suite": raw["suite"].astype(str), "Preset": raw["preset"].astype(str),
        "Optimizer": raw["optimizer"].astype(str), "Run": raw["run_name"].astype(str),
        "Seed": raw["seed"].map(fmt.integer), "Protocol": raw["protocol"].astype(str),
        "Status": raw["status"].astype(str),
        "Final metric": [f"{m} = {fmt.number(v)}" if isinstance(m, str) and np.isfinite(v) else fmt.MISSING
                         for m, v in zip(raw["target_metric"], raw["final_value"])],
        "Steps": raw["steps"].map(fmt.integer), "Wall time": raw["wall_time"].map(fmt.seconds),
        "lr": raw["lr"].map(fmt.number),
    })
    return Table("runs", "All runs", raw.reset_index(drop=True), display, [],
                 frozenset({"Seed", "Steps", "Wall time", "lr"}), _highlight(raw["optimizer"]))


def problems_table(problems: pd.DataFrame, runs: pd.DataFrame) -> Table | None:
    """Damaged and incomplete run directories, and failed runs, each with the reason."""
    failed = runs[runs["status"] == "failed"] if len(runs) else runs
    rows = [{"run_dir": r.run_dir, "optimizer": r.optimizer, "status": r.status, "reason": r.reason}
            for r in problems.itertuples()]
    rows += [{"run_dir": r.run_dir, "optimizer": r.optimizer, "status": "failed",
              "reason": str(r.error or "failed (no error recorded)")}
             for r in failed.itertuples() if r.run_dir not in set(problems["run_dir"])]
    if not rows:
        return None
    raw = pd.DataFrame(rows).sort_values("run_dir").reset_index(drop=True)
    display = pd.DataFrame({"Run directory": raw["run_dir"].astype(str), "Optimizer": raw["optimizer"].astype(str),
                            "Status": raw["status"].astype(str), "Reason": raw["reason"].astype(str)})
    return Table("problems", "Damaged, incomplete and failed runs", raw, display,
                 ["Incomplete runs have no summary.json; damaged ones have an unreadable config or summary. "
                  "None of them enter the means above."], frozenset(), [False] * len(display))
