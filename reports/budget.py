"""The budgeted search's records (load.Results.searches) -> budget curves, ranks per budget, and the trials table.

Budget curve (Dodge et al. 2019, "Show Your Work"; computed exactly, without replacement): given the
N trials of one (suite, optimizer) with validation metrics v_1 <= ... <= v_N (sorted so the best is
last), the expected best of the first k trials in a uniformly random order is

    E[best of k] = sum_{i=k}^{N} v_i * C(i-1, k-1) / C(N, k)

(v_i is the best of k exactly when it is drawn with k - 1 of the i - 1 trials below it). At k = N it
is the best trial, at k = 1 the mean. Dodge et al.'s with-replacement form differs; this is the
form over the trials that ran. A diverged or failed trial counts as the worst value the metric can
take (0 for an accuracy: it never wins while any trial learned anything), or -inf where the metric
has no lower bound (the curve then starts where some trial always succeeds). Every study's trials
are pooled (each run once). The ranking at each k comes from these expectations (1 = best).
"""

from __future__ import annotations

import json
import math
from math import comb
from typing import Any, Sequence

import pandas as pd

from . import fmt
from .bounds import metric_range
from .tables import Table, _highlight, slug



def expected_best(values: Sequence[float], k: int, higher_is_better: bool = True) -> float:
    """The expected best of k trials drawn without replacement from `values` (exact)."""
    n = len(values)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n} (got {k})")
    ordered = sorted(values) if higher_is_better else sorted(values, reverse=True)
    total = 0.0
    for i in range(k, n + 1):  # i is 1-based: ordered[i - 1] is the i-th worst
        weight = comb(i - 1, k - 1) / comb(n, k)
        if weight:
            total += ordered[i - 1] * weight
    return total


def failure_value(metric: str | None, higher_is_better: bool) -> float:
    """What a diverged or failed trial counts as: the worst value the metric can take."""
    low, high = metric_range(metric or "")
    worst = low if higher_is_better else high
    return worst if math.isfinite(worst) else (-math.inf if higher_is_better else math.inf)


def trial_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per distinct trial run: suite, preset, optimizer, study, trial, its values and its metric."""
    rows = []
    for record in records:
        seen = set()
        for trial in record["trials"]:
            if not isinstance(trial, dict) or trial.get("run_dir") in seen:
                continue
            seen.add(trial.get("run_dir"))
            value = trial.get("value")
            hps = trial.get("hyperparameters") if isinstance(trial.get("hyperparameters"), dict) else {}
            rows.append({"suite": record.get("suite"), "preset": record.get("preset"),
                         "optimizer": record.get("optimizer"), "metric": record.get("metric"),
                         "higher_is_better": record.get("higher_is_better", True),
                         "study": trial.get("study"), "trial": trial.get("trial"),
                         "values": trial.get("values") or {}, "lr": hps.get("lr"),
                         "status": trial.get("status"),
                         "value": float(value) if isinstance(value, (int, float)) else math.nan})
    return pd.DataFrame(rows)


def budget_curves(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Per (suite, preset, optimizer) and k = 1..N: the expected best metric and the rank at k."""
    rows = []
    trials = trial_frame(records)
    if trials.empty:
        return pd.DataFrame(columns=["suite", "preset", "optimizer", "k", "expected_best", "rank"])
    for (suite, preset, optimizer), group in trials.groupby(["suite", "preset", "optimizer"], sort=True):
        higher = bool(group["higher_is_better"].iloc[0])
        worst = failure_value(group["metric"].iloc[0], higher)
        values = [v if math.isfinite(v) else worst for v in group["value"]]
        for k in range(1, len(values) + 1):
            rows.append({"suite": suite, "preset": preset, "optimizer": optimizer, "k": k,
                         "expected_best": expected_best(values, k, higher), "higher_is_better": higher})
    curves = pd.DataFrame(rows)
    # rank among the optimizers that ran at least k trials on that suite and preset (1 = best)
    better = curves["expected_best"].where(curves["higher_is_better"], -curves["expected_best"])
    curves["rank"] = better.groupby([curves["suite"], curves["preset"], curves["k"]]).rank(ascending=False,
                                                                                         method="min")
    return curves


def _values_text(values: dict) -> str:
    """A trial's drawn values at the 4 significant digits they were drawn with (3 would show β2 = 0.9998 as 1)."""
    return ", ".join(f"{k}={fmt.number(v) if isinstance(v, float) else v}" for k, v in values.items()) or "default"


def search_table(records: list[dict[str, Any]], suite: str) -> Table | None:
    """What each optimizer's search on `suite` ran: its space, budget, studies, and the choice."""
    own = [r for r in records if r.get("suite") == suite]
    if not own:
        return None
    rows = []
    for r in sorted(own, key=lambda r: (str(r.get("preset")), str(r.get("optimizer")))):
        chosen = r.get("chosen") or {}
        space = "; ".join(f"{k}: {v}" for k, v in (r.get("space") or {}).items())
        if not r.get("space_declared", True):
            space += " (declares no space: the lr-only fallback)"
        rows.append({"optimizer": r.get("optimizer"), "preset": r.get("preset"), "budget": r.get("budget"),
                     "studies": r.get("studies"), "space": space,
                     "chosen": (f"trial {chosen.get('trial')} (study {chosen.get('study')}): "
                                f"{_values_text(chosen.get('values') or {})}") if chosen else
                               f"{fmt.MISSING} ({r.get('reason') or 'no choice'})",
                     "chosen_value": chosen.get("value", math.nan) if chosen else math.nan,
                     "record": r.get("record")})
    raw = pd.DataFrame(rows)
    display = pd.DataFrame({
        "Optimizer": raw["optimizer"].astype(str), "Preset": raw["preset"].astype(str),
        "Trials": raw["budget"].map(fmt.integer), "Studies": raw["studies"].map(fmt.integer),
        "Search space": raw["space"], "Chosen (tuning seed)": raw["chosen"],
        "Its metric": raw["chosen_value"].map(fmt.number),
    })
    notes = ["Budgeted quasi-random search (nightbench leaderboard --tune --budget N): N trials per optimizer, "
             "each the whole schedule on the tuning seed, drawn from one scrambled Halton sequence mapped into "
             "each optimizer's own space; trial 0 is the optimizer's default. The chosen trial (the median "
             "study's best on the validation metric) is rerun on the reporting seeds, which exclude the "
             "tuning seed."]
    return Table(f"search-{slug(suite)}", f"Tuning search: {suite}", raw, display, notes,
                 frozenset({"Trials", "Studies", "Its metric"}), _highlight(raw["optimizer"]))


def trials_table(records: list[dict[str, Any]], suite: str) -> Table | None:
    """Every trial of the search on `suite`: its values, status and metric (the sensitivity data)."""
    trials = trial_frame([r for r in records if r.get("suite") == suite])
    if trials.empty:
        return None
    trials = trials.sort_values(["preset", "optimizer", "study", "trial"]).reset_index(drop=True)
    display = pd.DataFrame({
        "Optimizer": trials["optimizer"].astype(str), "Preset": trials["preset"].astype(str),
        "Trial": [f"{t}" if s == 0 else f"{t} (study {s})" for s, t in zip(trials["study"], trials["trial"])],
        "Values": [_values_text(v) for v in trials["values"]], "Status": trials["status"].astype(str),
        "Metric": trials["value"].map(fmt.number),
    })
    raw = trials.assign(values=[json.dumps(v, sort_keys=True) for v in trials["values"]])
    return Table(f"trials-{slug(suite)}", f"Every tuning trial: {suite}", raw, display,
                 ["Trial 0 is each optimizer's default. Values are what the trial drew (warmup_fraction is the "
                  "suite's warmup as a fraction of its schedule)."],
                 frozenset({"Metric"}), _highlight(trials["optimizer"]))


def budget_table(records: list[dict[str, Any]], suite: str) -> Table | None:
    """The expected best metric and the rank at each budget k, one column per k."""
    curves = budget_curves([r for r in records if r.get("suite") == suite])
    if curves.empty:
        return None
    rows = []
    for (preset, optimizer), group in curves.groupby(["preset", "optimizer"], sort=True):
        row = {"Optimizer": str(optimizer), "Preset": str(preset)}
        for k, best, rank in zip(group["k"], group["expected_best"], group["rank"]):
            row[f"k={k}"] = f"{fmt.number(best)} (#{int(rank)})"
        rows.append(row)
    display = pd.DataFrame(rows).fillna(fmt.MISSING)
    return Table(f"budget-{slug(suite)}", f"Expected best metric after k trials: {suite}", curves, display,
                 ["Expected best validation metric of k trials in a random order of the trials that ran (exact, "
                  "without replacement; a diverged or failed trial counts as the metric's worst value), with the "
                  "optimizer's rank among those searched at that budget in parentheses."],
                 frozenset(c for c in display.columns if c.startswith("k=")), _highlight(display["Optimizer"]))
