"""The report's tables: each one raw (what its CSV download holds) and formatted (what the page shows)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from nightbench.suites.outcomes import RunState

from . import fmt
from .bounds import metric_range
from .load import BROKEN_STATES, DAMAGED, INCOMPLETE, REACHED, UNKNOWN_REACH
from .palette import is_paper_optimizer
from .profiles import R_MAX, benchmark_scores, performance_ratios, target_costs
from .stats import (BCA, MIN_MAX, PERCENTILE, Interval, floor_summary, interval_caption, memory_summary,
                    reported_records, reported_runs, seed_interval)


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
    caption: str = ""  # shown above the table: how its numbers were made
    downloads: list[tuple[str, str, pd.DataFrame]] = field(default_factory=list)  # (label, file, frame) more CSVs


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
    parts = [f"{n} {what}" for n, what in ((row.diverged, RunState.DIVERGED), (row.failed, RunState.FAILED),
                                            (row.incomplete, INCOMPLETE), (row.damaged, DAMAGED)) if n]
    return ", ".join(parts) or fmt.MISSING


def _mean(series: pd.Series) -> float:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan


def _hyperparameter_sets(group: pd.DataFrame) -> str:
    """The hyperparameters of a group's runs; distinct sets are all listed (they should agree)."""
    shown = sorted({fmt.hyperparameters(h) for h in group["hyperparameters"] if isinstance(h, dict) and h})
    return " | ".join(shown) if shown else fmt.MISSING


def _timed(seconds: float, environments: int) -> str:
    return fmt.seconds(seconds) if environments <= 1 else f"{environments} environments: not averaged"


def _interval_method(interval: Interval) -> str:
    if interval.n == 0:
        return fmt.MISSING
    if interval.method in (BCA, PERCENTILE):
        return f"{interval.method.split()[0]} 95%, {interval.n} seeds"
    if interval.method == MIN_MAX:
        return f"min–max of {interval.n} seeds"
    return interval.method


def _provenance(group: pd.DataFrame) -> str:
    """Which protocol made a row's numbers, and where its settings came from: a shipped study (with
    its budget), hand-picked defaults, or this board's own tuning (its search table gives the budget)."""
    parts = []
    for protocol in sorted(set(group["protocol"])):
        runs = group[group["protocol"] == protocol]
        if protocol == "final":
            parts.append("final (tuned on this board: see its tuning table)")
            continue
        studies = sorted(set(runs["tuned_by"].dropna())) if "tuned_by" in runs else []
        parts.append(f"{protocol} (tuned by {', '.join(studies)})" if studies else f"{protocol} (hand-picked defaults)")
    return "; ".join(parts)


def leaderboard(runs: pd.DataFrame, suite: str) -> Table | None:
    """Per (preset, optimizer): final target metric mean and interval over seeds (stats.seed_interval),
    time to target, failures and divergences, hyperparameters and the protocol behind the numbers."""
    chosen = reported_runs(runs[runs["suite"] == suite]) if len(runs) else runs
    if chosen.empty:
        return None
    rows, intervals = [], []
    metric = next((m for m in chosen["target_metric"] if isinstance(m, str)), None)
    bounds = metric_range(metric)
    for (preset, optimizer), group in chosen.groupby(["preset", "optimizer"], sort=True, dropna=False):
        completed = group[group["status"] == RunState.COMPLETED]
        interval = seed_interval(completed["final_value"], bounds)
        intervals.append(interval)
        reached = completed[completed["target_reached"] == REACHED]
        target = _mean(group["target_value"])
        # times are comparable only within one machine and software environment: never averaged across
        environments = sorted({str(e) for e in completed["environment_key"].dropna()})
        timed = len(environments) <= 1
        rows.append({
            "suite": suite, "preset": preset, "optimizer": optimizer,
            "paper_optimizer": is_paper_optimizer(str(optimizer), str(group["paper"].iloc[0])),
            "protocol": ", ".join(sorted(set(group["protocol"]))), "provenance": _provenance(group),
            "runs": len(group), RunState.COMPLETED.value: len(completed),
            RunState.DIVERGED.value: int((group["status"] == RunState.DIVERGED).sum()),
            RunState.FAILED.value: int((group["status"] == RunState.FAILED).sum()),
            INCOMPLETE: int((group["status"] == INCOMPLETE).sum()),
            DAMAGED: int(group["status"].isin([DAMAGED, RunState.UNKNOWN]).sum()),
            "metric": metric, "higher_is_better": bool(group["higher_is_better"].iloc[0]),
            "target_value": target, "mean": interval.mean, "ci_low": interval.low, "ci_high": interval.high,
            "interval_method": interval.method, "n": interval.n, "std": interval.std,
            "seed_values": " ".join(fmt.number(v) for v in interval.values),
            "reached_target": len(reached),
            "target_unknown": int((completed["target_reached"] == UNKNOWN_REACH).sum()),
            "steps_to_target_mean": _mean(reached["steps_to_target"]),
            "time_to_target_mean_s": _mean(reached["time_to_target"]) if timed else math.nan,
            "wall_time_mean_s": _mean(completed["wall_time"]) if timed else math.nan,
            "step_time_median_s": _mean(completed["step_time_median"]) if timed else math.nan,
            "environments": len(environments), "environment_list": " | ".join(environments),
            "seeds": ", ".join(str(int(s)) for s in sorted(group["seed"].dropna())),
            "hyperparameters": _hyperparameter_sets(group),
            "errors": " | ".join(sorted({str(e) for e in group["error"] if isinstance(e, str) and e})),
        })
    raw = pd.DataFrame(rows)
    higher = bool(raw["higher_is_better"].all())
    order = raw.sort_values(["preset", "mean", "optimizer"], ascending=[True, not higher, True],
                            na_position="last").index
    raw, intervals = raw.loc[order].reset_index(drop=True), [intervals[i] for i in order]
    metric = metric or "final metric"
    no_target = raw["target_value"].isna().all()
    display = pd.DataFrame({
        "Optimizer": raw["optimizer"].astype(str),
        "Preset": raw["preset"].astype(str),
        "Protocol": raw["provenance"],
        "Runs": raw["runs"].map(fmt.integer),
        f"Final {metric}, mean [interval]": [fmt.mean_ci(r.mean, r.ci_low, r.ci_high, r.n)
                                             for r in raw.itertuples()],
        "Interval": [_interval_method(iv) for iv in intervals],
        "Seed values": [", ".join(fmt.number(v, 3) for v in iv.values) or fmt.MISSING for iv in intervals],
        "Reached target": [f"{r.reached_target}/{r.completed}" + (f" ({r.target_unknown} unknown)"
                                                                  if r.target_unknown else "")
                           for r in raw.itertuples()],
        "Steps to target": raw["steps_to_target_mean"].map(fmt.integer),
        "Time to target": [_timed(r.time_to_target_mean_s, r.environments) for r in raw.itertuples()],
        "Wall time": [_timed(r.wall_time_mean_s, r.environments) for r in raw.itertuples()],
        "Not completed": [_not_completed(r) for r in raw.itertuples()],
        "Hyperparameters": raw["hyperparameters"],
    })
    display = _drop_constant(display, ["Preset"])
    if no_target:
        display = display.drop(columns=["Reached target", "Steps to target", "Time to target"])
    caption = (f"Final {metric} ({'higher' if higher else 'lower'} is better): the mean over completed seeds. "
               + interval_caption((iv.method for iv in intervals), bounds))
    notes = ["Numbers come from the tuning protocol's 'final' runs where they exist, else from 'default' runs.",
             "The per-seed CSV has one row per run of this suite (every protocol and status), with all its "
             "final metrics."]
    mixed = raw[raw["environments"] > 1]
    for r in mixed.itertuples():
        notes.append(f"{r.optimizer}: its runs come from {r.environments} environments ({r.environment_list}); "
                     "times from different machines or software are not averaged, so its time columns are empty.")
    if no_target:
        notes.append("This suite has no target value at this preset, so no time to target.")
    else:
        targets = ", ".join(sorted({fmt.number(t) for t in raw["target_value"].dropna()}))
        notes.append(f"Target {metric}: {targets}; steps/time to target are as each run's summary.json records "
                     "them, averaged over the runs that reached it.")
        unknown = raw[raw["target_unknown"] > 0]
        if len(unknown):
            who = ", ".join(f"{r.optimizer} {r.target_unknown}" for r in unknown.itertuples())
            notes.append(f"Target reached unknown for {int(unknown['target_unknown'].sum())} completed run(s) "
                         f"({who}): their summary.json has no steps_to_target (written by an older nightbench). "
                         "They count as not reached here and in the performance profile; rerun them to know.")
    numeric = frozenset(display.columns) - {"Optimizer", "Preset", "Protocol", "Hyperparameters", "Not completed",
                                            "Interval", "Seed values"}
    return Table(f"leaderboard-{slug(suite)}", f"Leaderboard: {suite}", raw, display, notes, numeric,
                 _highlight(raw["optimizer"]), caption,
                 [("Download per-seed CSV", f"seeds-{slug(suite)}.csv", seed_rows(runs, suite))])


SEED_COLUMNS = ["suite", "preset", "optimizer", "protocol", "seed", "run_name", "status", "reported", "lr",
                "target_metric", "final_value", "target_value", "target_reached", "steps_to_target",
                "time_to_target", "steps", "wall_time", "step_time_median", "diverged_step", "error",
                "hyperparameters", "run_dir"]


def seed_rows(runs: pd.DataFrame, suite: str) -> pd.DataFrame:
    """One row per run of `suite`: its seed, status, target-metric value and every final metric
    (columns `final.<name>`); `reported` marks the runs the leaderboard's numbers come from."""
    suite_runs = runs[runs["suite"] == suite] if len(runs) else runs
    if suite_runs.empty:
        return pd.DataFrame(columns=SEED_COLUMNS)
    reported = set(reported_runs(suite_runs)["run_id"])
    frame = suite_runs.assign(reported=suite_runs["run_id"].isin(reported),
                              hyperparameters=suite_runs["hyperparameters"].map(fmt.hyperparameters))
    frame = frame[SEED_COLUMNS].copy()
    finals = pd.DataFrame([m if isinstance(m, dict) else {} for m in suite_runs["final_metrics"]],
                          index=suite_runs.index)
    for name in sorted(finals.columns):
        frame[f"final.{name}"] = pd.to_numeric(finals[name], errors="coerce")
    return frame.sort_values(["preset", "optimizer", "protocol", "seed", "run_name"],
                             na_position="last").reset_index(drop=True)


def _tuning_record(tuning: pd.DataFrame | None, suite: str, preset: str, optimizer: str):
    if tuning is None or tuning.empty:
        return None
    hit = tuning[(tuning["suite"] == suite) & (tuning["preset"] == preset) & (tuning["optimizer"] == optimizer)]
    return hit.iloc[-1] if len(hit) else None


def tuning_table(runs: pd.DataFrame, suite: str, tuning: pd.DataFrame | None = None,
                 searched: Iterable[tuple[str, str]] = ()) -> Table | None:
    """The learning-rate sweep of the tuning protocol: what was tried, what won, what was rerun.

    The winner is the leaderboard's, read from its tuning record (load.load_tuning_records); the
    report does not choose it again. `searched`: the (preset, optimizer) pairs tuned by the budgeted
    search instead, whose trials the search's own tables show (they have no lr-grid record)."""
    suite_runs = runs[runs["suite"] == suite] if len(runs) else runs
    tuning_runs = suite_runs[suite_runs["protocol"] == "tuning"] if len(suite_runs) else suite_runs
    records = tuning[tuning["suite"] == suite] if tuning is not None and len(tuning) else None
    keys = set(zip(tuning_runs["preset"], tuning_runs["optimizer"])) if len(tuning_runs) else set()
    keys |= set(zip(records["preset"], records["optimizer"])) if records is not None else set()
    keys -= set(searched)
    if not keys:
        return None
    rows = []
    for preset, optimizer in sorted(keys, key=lambda k: (str(k[0]), str(k[1]))):
        group = tuning_runs[(tuning_runs["preset"] == preset) & (tuning_runs["optimizer"] == optimizer)]
        record = _tuning_record(records, suite, preset, optimizer)
        tried = record["tried"] if record is not None else []
        lrs = sorted({t["lr"] for t in tried if not math.isnan(t["lr"])} | set(group["lr"].dropna()))
        broken = (sum(t["status"] in BROKEN_STATES for t in tried) if tried else
                  int(group["status"].isin(BROKEN_STATES).sum()))
        final = suite_runs[(suite_runs["preset"] == preset) & (suite_runs["optimizer"] == optimizer)
                           & (suite_runs["protocol"] == "final")]
        if record is None:
            why = "no tuning record (a board from before nightbench wrote them, or tuning not finished)"
        elif math.isnan(record["best_lr"]):
            why = record["reason"] or "the tuning record names no best lr"
        else:
            why = None
        rows.append({
            "suite": suite, "preset": preset, "optimizer": optimizer,
            "lrs_tried": " ".join(fmt.number(lr) for lr in lrs),
            "tuning_runs": len(group) or len(tried), "diverged_or_failed": broken,
            "best_lr_on_tuning_seed": record["best_lr"] if record is not None else math.nan,
            "best_tuning_value": record["best_value"] if record is not None else math.nan,
            "tuning_seed": record["tuning_seed"] if record is not None else None,
            "grid": record["grid"] if record is not None else None,
            "no_best_lr_reason": why,
            "final_runs_lr": " ".join(fmt.number(lr) for lr in sorted(final["lr"].dropna().unique())) or None,
            "final_runs": len(final),
        })
    raw = pd.DataFrame(rows)
    display = pd.DataFrame({
        "Optimizer": raw["optimizer"].astype(str), "Preset": raw["preset"].astype(str),
        "LRs tried": raw["lrs_tried"], "Tuning runs": raw["tuning_runs"].map(fmt.integer),
        "Diverged/failed": raw["diverged_or_failed"].map(fmt.integer),
        "Best lr (tuning)": [fmt.number(lr) if why is None else f"{fmt.MISSING} ({why})"
                             for lr, why in zip(raw["best_lr_on_tuning_seed"], raw["no_best_lr_reason"])],
        "Metric at best lr": raw["best_tuning_value"].map(fmt.number),
        "Final runs' lr": raw["final_runs_lr"].fillna(fmt.MISSING),
        "Final runs": raw["final_runs"].map(fmt.integer),
    })
    notes = ["The best lr is the leaderboard's choice on the validation metric of the tuning seed, as its "
             "tuning record says; the reported numbers come from the 'final' reruns with that setting."]
    display = _drop_constant(display, ["Preset"])
    return Table(f"tuning-{slug(suite)}", f"Learning-rate tuning: {suite}", raw, display, notes,
                 frozenset(display.columns) - {"Optimizer", "Preset", "LRs tried", "Best lr (tuning)"},
                 _highlight(raw["optimizer"]))


SCORE_FORMULA = ("B = 1/(r_max − 1) · ∫ from 1 to r_max of ρ(τ) dτ, with r_max = {r_max:g}: ρ(τ) is the fraction "
                 "of suites on which the optimizer's median {what} to the target is within τ times the best "
                 "optimizer's. A missed target is an infinite ratio and adds nothing, so B = 1 means fastest on "
                 "every suite and B = 0 never within {r_max:g}× of the best.")


def benchmark_score_table(runs: pd.DataFrame, r_max: float = R_MAX) -> Table | None:
    """AlgoPerf's benchmark score per optimizer across the training suites with a target."""
    columns = {}
    for measure, what in (("time", "wall time"), ("steps", "steps")):
        costs = target_costs(runs, measure)
        if not costs.empty:
            columns[measure] = (costs, performance_ratios(costs))
    if not columns:
        return None
    costs, ratios = next(iter(columns.values()))
    optimizers = sorted({str(o) for _, r in columns.values() for o in r.columns})
    raw = pd.DataFrame({"optimizer": optimizers})
    for measure, (_, r) in columns.items():
        raw[f"score_{measure}"] = benchmark_scores(r, r_max).reindex(optimizers).to_numpy()
    finite = np.isfinite(ratios.to_numpy(dtype=float))
    raw["suites"] = len(ratios)
    raw["targets_reached"] = [int(finite[:, list(ratios.columns).index(o)].sum()) if o in ratios.columns else 0
                              for o in optimizers]
    raw["within_r_max"] = [int(((ratios[o] <= r_max) & np.isfinite(ratios[o])).sum()) if o in ratios.columns else 0
                           for o in optimizers]
    first = f"score_{next(iter(columns))}"
    raw = raw.sort_values([first, "optimizer"], ascending=[False, True]).reset_index(drop=True)
    display = pd.DataFrame({"Optimizer": raw["optimizer"]})
    if "score_time" in raw:
        display["Score (wall time)"] = raw["score_time"].map(lambda x: fmt.number(x, 3))
    if "score_steps" in raw:
        display["Score (steps)"] = raw["score_steps"].map(lambda x: fmt.number(x, 3))
    display["Targets reached"] = [f"{r.targets_reached}/{r.suites}" for r in raw.itertuples()]
    display[f"Within {r_max:g}× of the best"] = [f"{r.within_r_max}/{r.suites}" for r in raw.itertuples()]
    caption = "Benchmark score (AlgoPerf): " + SCORE_FORMULA.format(r_max=r_max, what="wall time (or steps)")
    notes = [f"Suites: {', '.join(map(str, ratios.index))}. A suite's cost is the median over the reported seeds "
             "of the time (or steps) to the target as summary.json records it; a seed that never reached it "
             "costs infinity.",
             "An optimizer with no run on a suite counts as not reaching its target there."]
    return Table("benchmark-score", "Benchmark score per optimizer", raw, display, notes,
                 frozenset(display.columns) - {"Optimizer"}, _highlight(raw["optimizer"]), caption)


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
    failed = runs[runs["status"] == RunState.FAILED] if len(runs) else runs
    rows = [{"run_dir": r.run_dir, "optimizer": r.optimizer, "status": r.status, "reason": r.reason}
            for r in problems.itertuples()]
    rows += [{"run_dir": r.run_dir, "optimizer": r.optimizer, "status": RunState.FAILED.value,
              "reason": str(r.error or "failed (no error recorded)")}
             for r in failed.itertuples() if r.run_dir not in set(problems["run_dir"])]
    if not rows:
        return None
    raw = pd.DataFrame(rows).sort_values("run_dir").reset_index(drop=True)
    display = pd.DataFrame({"Run directory": raw["run_dir"].astype(str), "Optimizer": raw["optimizer"].astype(str),
                            "Status": raw["status"].astype(str), "Reason": raw["reason"].astype(str)})
    return Table("problems", "Damaged, incomplete, inconsistent and failed runs", raw, display,
                 ["Incomplete runs have no summary.json; damaged ones have an unreadable config or summary; "
                  "inconsistent ones have files that disagree (`nightbench verify`). "
                  "None of them enter the means above."], frozenset(), [False] * len(display))
