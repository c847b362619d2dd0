"""The leaderboard's protocols, recorded in each run's config and shown in the report.

  default   each optimizer's per-suite default hyperparameters, seeds 0..S-1.
  search    (--tune [--budget N] [--studies K]) N trials per (training suite, optimizer) over the
            optimizer's own search space (search.py), on the tuning seed; trial 0 is the default.
            Each study's best trial on the suite's validation metric (diverged or failed trials
            rank last); the median study's choice is rerun on the reporting seeds. The tuning
            record holds the space, every trial's values and result, and the choice.
  grid      (--tune --tune-grid full|local) one run per learning rate of the optimizer's grid (the
            paper's 1e-5 ... 1 unless its registry entry narrows it) on the tuning seed; the best lr
            on the validation metric (diverged or failed runs rank last) goes to the tuning record.
            --tune-grid local keeps only the grid points within a factor 10 of the suite's default
            lr, plus that default.
  barrier   the final stage is planned only once every tuning run has finished (also across a
            detached board that is started again).
  final     the choice of each tuning rerun on the reporting seeds 0..N-1 (never the tuning seed).
"""

from __future__ import annotations

import math
from typing import Callable

from nightbench.optimizers.search_space import SearchSpaceError

from ..layout import tuning_record_path
from ..plan import RunPlan
from ..outcomes import SUMMARY_STATES, RunState
from ..run_dir import atomic_write_json
from ..summary import read_summary
from .executor import Executor, run_stage
from .planner import TUNING_SEED, BoardSettings, Sweep, default_stage, final_stage, tuned_suites, tuning_stage
from .search import Search, plan_search

Echo = Callable[[str], None]


def _add(counts: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    for key, value in more.items():
        counts[key] = counts.get(key, 0) + value
    return counts


def run_default(settings: BoardSettings, executor: Executor, *, wait: bool, echo: Echo) -> dict[str, int]:
    return run_stage(executor, default_stage(settings), "board", wait=wait, echo=echo)


def _barrier(runs, echo: Echo) -> bool:
    """Whether every tuning run has its result; a failed run has one (it ranks last)."""
    waiting = sum(read_summary(run.run_dir) is None for run in runs)
    if waiting:
        echo(f"[tuning] {waiting} tuning run(s) not finished: the final stage starts once they have "
             "(run the same command again to continue)")
    return not waiting


def plan_searches(settings: BoardSettings) -> tuple[list[Search], list[tuple[str, str]]]:
    """The search of every tuned (suite, optimizer), and the pairs whose space cannot be bound
    (no positive default lr to search around: rerun at their defaults)."""
    searches, untunable = [], []
    for suite in tuned_suites(settings):
        for optimizer in settings.optimizers:
            request_for = lambda seed, protocol, s=suite, o=optimizer, **kw: settings.request(s, o, seed, protocol, **kw)  # noqa: E731
            try:
                searches.append(plan_search(request_for, suite, optimizer, settings.budget, settings.studies,
                                            TUNING_SEED))
            except SearchSpaceError:
                untunable.append((suite, optimizer))
    return searches, untunable


def _values_text(values: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()) or "the default"


def search_record(settings: BoardSettings, search: Search) -> dict:
    """What the search of one (suite, optimizer) tried and chose: the one home of the choice.

    Each study's best trial is its completed trial with the best validation metric (failed and
    diverged trials rank last; ties go to the earlier trial, so the default wins a tie). The
    choice is the median study's best (the lower median for an even count), as in AlgoPerf."""
    suite = search.trials[0].run.suite
    sign = 1.0 if suite.higher_is_better else -1.0
    trials, bests = [], []
    for k in range(settings.studies):
        best = None
        for trial in search.study(k):
            value = _score(trial.run)
            entry = {"study": k, "trial": trial.index, "values": trial.values,
                     "overrides": trial.overrides,
                     "hyperparameters": trial.run.resolved.hyperparameters,
                     "run_dir": str(trial.run.run_dir.relative_to(settings.results)),
                     "status": _recorded_status(trial.run), "value": value}
            trials.append(entry)
            if value is not None and (best is None or sign * value > sign * best["value"]):
                best = entry
        if best is not None:
            bests.append(best)
    bests.sort(key=lambda e: sign * e["value"])
    chosen = bests[(len(bests) - 1) // 2] if bests else None
    return {
        "protocol": "search", "suite": search.suite, "preset": settings.preset, "optimizer": search.optimizer,
        "metric": suite.target_metric, "higher_is_better": suite.higher_is_better, "tuning_seed": TUNING_SEED,
        "budget": settings.budget, "studies": settings.studies, "space": search.space,
        "space_declared": search.declared, "space_dropped": list(search.dropped), "trials": trials,
        "study_bests": [{"study": b["study"], "trial": b["trial"], "value": b["value"]} for b in bests],
        "chosen": None if chosen is None else {k: chosen[k] for k in ("study", "trial", "values", "overrides", "value")},
        "reason": None if chosen else "every trial failed or diverged",
    }


def run_tuning(settings: BoardSettings, executor: Executor, *, wait: bool, echo: Echo) -> dict[str, int]:
    """Tuning (the budgeted search, or the lr grid), the barrier, each choice recorded, then the final seeds."""
    if settings.search:
        units, untunable = plan_searches(settings)
        record_of, why = search_record, "its search space cannot be bound to its defaults"
    else:
        units, untunable = tuning_stage(settings)
        record_of, why = tuning_record, "no positive 'lr' hyperparameter to tune"
    for suite, optimizer in untunable:
        echo(f"[tuning] {suite}/{optimizer}: {why}; its defaults are rerun on the final seeds")
    runs = [run for unit in units for run in unit.runs]
    counts = run_stage(executor, runs, "tuning", wait=wait, echo=echo)
    if not _barrier(runs, echo):
        return counts
    chosen = {}
    for unit in units:
        record = record_of(settings, unit)
        atomic_write_json(tuning_record_path(settings.results, settings.preset, unit.suite, unit.optimizer), record)
        overrides, said = _choice(record)
        if overrides is None:
            echo(f"[tuning] {unit.suite}/{unit.optimizer}: {record['reason']}; no final runs")
            continue
        echo(f"[tuning] {unit.suite}/{unit.optimizer}: {said}")
        chosen[(unit.suite, unit.optimizer)] = overrides
    if settings.tuning_only:
        echo("[tuning] --tuning-only: every choice is recorded; no final runs")
        return counts
    return _add(counts, run_stage(executor, final_stage(settings, chosen, untunable), "final", wait=wait, echo=echo))


def _choice(record: dict) -> tuple[dict | None, str]:
    """The settings a tuning record chose for the final runs (None: none), and how the board says it."""
    if record["protocol"] == "search":
        chosen = record["chosen"]
        if chosen is None:
            return None, ""
        return chosen["overrides"], f"chose trial {chosen['trial']} ({_values_text(chosen['values'])})"
    if record["best_lr"] is None:
        return None, ""
    return {"lr": record["best_lr"]}, f"best lr {record['best_lr']}"


def _recorded_status(run: RunPlan) -> RunState:
    """A tuning run's state as its record keeps it: what its summary says, else failed."""
    summary = read_summary(run.run_dir)
    status = summary.status if summary is not None else RunState.FAILED
    return status if status in SUMMARY_STATES else RunState.FAILED


def _score(run: RunPlan) -> float | None:
    """The run's validation metric if it completed with a finite value, else None (ranks last)."""
    summary = read_summary(run.run_dir)
    if summary is None:
        return None
    value = summary.final_metrics.get(run.suite.target_metric)
    if summary.status != RunState.COMPLETED or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def tuning_record(settings: BoardSettings, sweep: Sweep) -> dict:
    """What the tuning of one (suite, optimizer) tried and chose: the one home of "best lr"."""
    suite = sweep.runs[0].suite
    sign = 1.0 if suite.higher_is_better else -1.0
    tried, best = [], None
    for run in sweep.runs:
        value = _score(run)
        lr = float(run.resolved.hyperparameters["lr"])
        tried.append({"lr": lr, "run_dir": str(run.run_dir.relative_to(settings.results)),
                      "status": _recorded_status(run), "value": value})
        if value is not None and (best is None or sign * value > sign * best[1]):
            best = (lr, value)
    return {
        "protocol": "grid", "suite": sweep.suite, "preset": settings.preset, "optimizer": sweep.optimizer,
        "metric": suite.target_metric, "higher_is_better": suite.higher_is_better, "tuning_seed": TUNING_SEED,
        "grid": settings.tune_grid, "tried": tried,
        "best_lr": best[0] if best else None, "best_value": best[1] if best else None,
        "reason": None if best else "every lr failed or diverged",
    }

