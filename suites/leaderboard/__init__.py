"""The leaderboard: every suite x every registered optimizer x seeds, resumable, then the report.

Three parts, each in its own module:
  planner.py     board settings -> the RunPlans of each stage (pure)
  protocols.py   default; tuning -> barrier -> final (which stages, in which order, best lr)
  executor.py    where runs execute: the Executor interface; local.py runs local processes

Finished runs are skipped on restart; an interrupted board loses no finished run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..config import ConfigError, parse_set_arguments
from .executor import Executor
from .local import LocalExecutor
from .planner import DEFAULT_JOBS, LOCAL_TUNING_WINDOW, TUNING_SEED, BoardSettings, tuning_grid, tuning_window
from .protocols import run_default, run_tuning

RUN_MODULE = "nightbench.suites.cli"  # each local run is `python -m RUN_MODULE run --request FILE`

__all__ = ["LOCAL_TUNING_WINDOW", "RUN_MODULE", "TUNING_SEED", "BoardSettings", "add_leaderboard_arguments",
           "run_leaderboard_from_args", "tuning_grid", "tuning_window"]


def add_leaderboard_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suites", nargs="+", default=None, help="default: all suites")
    p.add_argument("--optimizers", nargs="+", default=None,
                   help="names or sets: paper (the default: the mission's eight), modern, plugin, all")
    p.add_argument("--preset", default="small", help="paper, small (default) or ci")
    p.add_argument("--seeds", type=int, default=None, help="seeds per (suite, optimizer) (default 2; with --tune 3)")
    p.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                   help=f"local runs in parallel, one process each (default {DEFAULT_JOBS})")
    p.add_argument("--tune", action="store_true", help="the paper's protocol: lr grid, pick the best, rerun with seeds")
    p.add_argument("--tune-grid", choices=("full", "local"), default=None,
                   help="full: the optimizer's whole lr grid; local: its points within 10x of the suite's "
                        "default lr, plus the default (default: full at the paper preset, local otherwise)")
    p.add_argument("--optimizer-file", action="append", metavar="FILE", help="a Python file that registers optimizers")
    p.add_argument("--suite-file", action="append", metavar="FILE", help="a Python file that defines a suite")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="suite preset overrides for every run")
    p.add_argument("--results", default="results", help="results root (default ./results)")
    p.add_argument("--report", default=None, help="report path (default <results>/report-<preset>.html)")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.add_argument("--device", default=None)
    p.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: processes on this machine (default); slurm: one SLURM job array per stage")
    from .slurm_options import add_slurm_arguments

    add_slurm_arguments(p)


def settings_from_args(args: argparse.Namespace) -> BoardSettings:
    return BoardSettings.create(
        suites=args.suites, optimizers=args.optimizers, preset=args.preset, seeds=args.seeds, tune=args.tune,
        tune_grid=args.tune_grid, overrides=parse_set_arguments(args.set), results=args.results, device=args.device,
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


def run_leaderboard_from_args(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
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
    if wait and not args.no_report:
        from nightbench.reports import build_report

        output = args.report or str(Path(args.results) / f"report-{args.preset}.html")
        path = build_report(Path(args.results), output)
        print(f"report: {Path(path).resolve()}", flush=True)
    return 1 if counts.get("failed") else 0
