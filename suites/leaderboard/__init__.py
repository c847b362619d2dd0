"""The leaderboard: every suite x every registered optimizer x seeds, resumable, then the report.

Three parts, each in its own module:
  planner.py     board settings -> the RunPlans of each stage (pure)
  protocols.py   default; tuning -> barrier -> final (which stages, in which order, best lr)
  executor.py    where runs execute: the Executor interface; local.py runs local processes

Finished runs are skipped on restart; an interrupted board loses no finished run.
"""

from __future__ import annotations

import argparse
from typing import Callable
import time

from ..config import ConfigError, parse_set_arguments
from ..outcomes import ExitCode, RunState
from .executor import Executor
from .local import LocalExecutor
from .planner import (DEFAULT_BUDGET, DEFAULT_JOBS, DEFAULT_SEEDS, DEFAULT_TUNED_SEEDS, LOCAL_TUNING_WINDOW, TUNING_SEED, BoardSettings,
                      check_board, tuning_grid, tuning_window)
from .protocols import run_default, run_tuning

RUN_MODULE = "nightbench.suites.cli"  # each local run is `python -m RUN_MODULE run --request FILE`

__all__ = ["LOCAL_TUNING_WINDOW", "RUN_MODULE", "TUNING_SEED", "BoardSettings", "add_leaderboard_arguments",
           "run_leaderboard_from_args", "tuning_grid", "tuning_window"]


def add_leaderboard_arguments(p: argparse.ArgumentParser) -> None:
    """The leaderboard's own options; the plugin, preset, --set and results ones are the parent
    parsers of suites/arguments.py (run_options)."""
    p.add_argument("--suites", nargs="+", default=None, help="default: all suites")
    p.add_argument("--optimizers", nargs="+", default=None,
                   help="names or sets: paper (the paper's four methods and its four baselines), modern, plugin "
                        "(loaded from files and packages), all; default: paper and plugin")
    p.add_argument("--seeds", type=int, default=None, help=f"seeds per (suite, optimizer) "
                   f"(default {DEFAULT_SEEDS}; with --tune {DEFAULT_TUNED_SEEDS})")
    p.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                   help=f"local runs in parallel, one process each (default {DEFAULT_JOBS})")
    p.add_argument("--tune", action="store_true",
                   help="tune before reporting: a budgeted quasi-random search over each optimizer's own search "
                        "space on a tuning seed, the best trial rerun on the reporting seeds")
    p.add_argument("--budget", type=int, default=None,
                   help=f"with --tune: trials per (suite, optimizer), trial 0 the default (default {DEFAULT_BUDGET})")
    p.add_argument("--studies", type=int, default=None,
                   help="with --tune: independent searches (sequence seeds); the median study's choice is reported "
                        "(default 1)")
    p.add_argument("--tuning-only", action="store_true",
                   help="with --tune: stop once each choice is recorded, without the final runs on the reporting "
                        "seeds (a study whose choices ship as a preset's defaults: suites/tuned_defaults.py)")
    p.add_argument("--tune-grid", choices=("full", "local"), default=None,
                   help="with --tune: the paper's lr-grid protocol instead of the search. full: the optimizer's "
                        "whole lr grid; local: its points within 10x of the suite's default lr, plus the default")
    p.add_argument("--report", default=None, help="report path (default <results>/report-<preset>.html)")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.add_argument("--device", default=None, help="for every run: auto (default: cuda when available), cpu, cuda, "
                                                  "cuda:N")
    p.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: processes on this machine (default); slurm: one SLURM job array per stage")
    from .slurm_options import add_slurm_arguments

    add_slurm_arguments(p)


def settings_from_args(args: argparse.Namespace) -> BoardSettings:
    return BoardSettings.create(
        suites=args.suites, optimizers=args.optimizers, preset=args.preset, seeds=args.seeds, tune=args.tune,
        tune_grid=args.tune_grid, budget=args.budget, studies=args.studies, tuning_only=args.tuning_only,
        overrides=parse_set_arguments(args.set), results=args.results, device=args.device,
        optimizer_files=tuple(args.optimizer_file or ()), suite_files=tuple(args.suite_file or ()))


def executor_from_args(args: argparse.Namespace) -> Executor:
    if getattr(args, "executor", "local") == "slurm":
        from .slurm import slurm_executor_from_args

        return slurm_executor_from_args(args)
    if getattr(args, "detach", False):
        raise ConfigError("--detach applies to --executor slurm (local runs end with this process)")
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1 (got {args.jobs})")
    return LocalExecutor(args.jobs, RUN_MODULE, args.results)


def run_leaderboard_from_args(args: argparse.Namespace, after_board: Callable[[], None] | None = None) -> int:
    """Run the board; `after_board` (the command line's report) runs once a waited-for board has ended."""
    settings = settings_from_args(args)
    check_board(settings, here=getattr(args, "executor", "local") != "slurm")
    executor = executor_from_args(args)
    wait = not getattr(args, "detach", False)
    echo = lambda line: print(line, flush=True)  # noqa: E731
    started = time.monotonic()
    try:
        protocol = run_tuning if settings.tune else run_default
        counts = protocol(settings, executor, wait=wait, echo=echo)
    finally:
        executor.close()
    minutes = (time.monotonic() - started) / 60
    verb = "finished" if wait else "submitted"
    print(f"leaderboard {verb} in {minutes:.1f} min: " + ", ".join(f"{k}: {v}" for k, v in counts.items()), flush=True)
    if wait and after_board is not None:
        after_board()
    if counts.get(RunState.FAILED.value):
        return ExitCode.FAILED
    # a run that ended without a result (a SLURM job gone from the queue, say) is not a success:
    # 130, as for Ctrl-C, so that `./run_all.sh && publish` stops; the same command resumes it
    return ExitCode.INTERRUPTED if counts.get(RunState.INTERRUPTED.value) else ExitCode.OK
