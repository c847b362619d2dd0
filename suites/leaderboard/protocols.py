"""The leaderboard's protocols, recorded in each run's config and shown in the report.

  default   each optimizer's per-suite default hyperparameters, seeds 0..S-1.
  tuning    (--tune) one run per learning rate of the optimizer's grid (the paper's 1e-5 ... 1 unless
            its registry entry narrows it) on a separate tuning seed; the best lr on the suite's
            validation metric is chosen (diverged or failed runs rank last) and written to a tuning
            record (layout.tuning_record_path) ... At the paper preset the whole grid is tried; at
            smaller presets (--tune-grid local) only the grid points within a factor 10 of the
            suite's default lr, plus that default, so that tuning fits a CPU.
  barrier   the final stage is planned only once every tuning run has finished (also across a
            detached board that is started again).
  final     ... and rerun on seeds 0..N-1 for the reported numbers.
"""

from __future__ import annotations

import math
from typing import Callable

from ..layout import tuning_record_path
from ..plan import RunPlan
from ..outcomes import SUMMARY_STATES, RunState
from ..run_dir import atomic_write_json
from ..summary import read_summary
from .executor import Executor, run_stage
from .planner import TUNING_SEED, BoardSettings, Sweep, default_stage, final_stage, tuning_stage

Echo = Callable[[str], None]


def _add(counts: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    for key, value in more.items():
        counts[key] = counts.get(key, 0) + value
    return counts


def run_default(settings: BoardSettings, executor: Executor, *, wait: bool, echo: Echo) -> dict[str, int]:
    return run_stage(executor, default_stage(settings), "board", wait=wait, echo=echo)


def run_tuning(settings: BoardSettings, executor: Executor, *, wait: bool, echo: Echo) -> dict[str, int]:
    """Tuning sweeps, the barrier, the best lr of each sweep recorded, then the final seeds."""
    sweeps, untunable = tuning_stage(settings)
    for suite, optimizer in untunable:
        echo(f"[tuning] {suite}/{optimizer}: no positive 'lr' hyperparameter to tune; "
             "its defaults are rerun on the final seeds")
    counts = run_stage(executor, [run for sweep in sweeps for run in sweep.runs], "tuning", wait=wait, echo=echo)
    # a failed tuning run has its result (it ranks last); only runs with no summary yet hold the barrier
    waiting = sum(read_summary(run.run_dir) is None for sweep in sweeps for run in sweep.runs)
    if waiting:  # the barrier: no final run before every tuning run has its result
        echo(f"[tuning] {waiting} tuning run(s) not finished: the final stage starts once they have "
             "(run the same command again to continue)")
        return counts
    best_lrs = {}
    for sweep in sweeps:
        record = tuning_record(settings, sweep)
        atomic_write_json(tuning_record_path(settings.results, settings.preset, sweep.suite, sweep.optimizer), record)
        if record["best_lr"] is None:
            echo(f"[tuning] {sweep.suite}/{sweep.optimizer}: {record['reason']}; no final runs")
            continue
        echo(f"[tuning] {sweep.suite}/{sweep.optimizer}: best lr {record['best_lr']}")
        best_lrs[(sweep.suite, sweep.optimizer)] = record["best_lr"]
    return _add(counts, run_stage(executor, final_stage(settings, best_lrs, untunable), "final", wait=wait, echo=echo))


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
        summary = read_summary(run.run_dir)
        status = summary.status if summary is not None else RunState.FAILED
        tried.append({"lr": lr, "run_dir": str(run.run_dir.relative_to(settings.results)),
                      "status": status if status in SUMMARY_STATES else RunState.FAILED, "value": value})
        if value is not None and (best is None or sign * value > sign * best[1]):
            best = (lr, value)
    return {
        "suite": sweep.suite, "preset": settings.preset, "optimizer": sweep.optimizer,
        "metric": suite.target_metric, "higher_is_better": suite.higher_is_better, "tuning_seed": TUNING_SEED,
        "grid": settings.tune_grid, "tried": tried,
        "best_lr": best[0] if best else None, "best_value": best[1] if best else None,
        "reason": None if best else "every lr failed or diverged",
    }

