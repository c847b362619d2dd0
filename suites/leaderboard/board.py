"""The leaderboard: every suite x every registered optimizer x seeds, resumable, then the report.

Protocols (recorded in each run's config and shown in the report):
  default   each optimizer's per-suite default hyperparameters, seeds 0..S-1.
  tuning    (--tune) one run per learning rate of the optimizer's grid (the paper's 1e-5 ... 1 unless
            its registry entry narrows it), on a separate tuning seed; the best lr on the suite's
            validation metric is chosen (diverged or failed runs rank last) ...
            At the paper preset the whole grid is tried; at smaller presets (--tune-grid local) only
            the grid points within a factor 10 of the suite's default lr, plus that default, so that
            tuning fits a CPU (about 3 lrs instead of 6).
  final     ... and rerun on seeds 0..N-1 for the reported numbers.
Experiment suites (memory, small-batch variance) are not tuned: they sweep what they need inside.

Each run executes in its own process (`nightbench run`), so a crash in one never takes down the
board; finished runs are skipped on restart; an interrupted board loses no finished run.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from nightbench.optimizers import get_spec, load_optimizer_file
from nightbench.optimizers import names as optimizer_names

from .base import DEFAULT_PRESET
from .catalog import get_suite, suite_names
from .config import ConfigError
from .engine import RunRequest, plan_run
from .run_dir import FINISHED_STATUSES, atomic_write_json, read_summary, safe_name

RUN_MODULE = "nightbench.suites.cli"  # each run is `python -m RUN_MODULE run ...` in its own process
TUNING_SEED = 1000  # distinct from the reporting seeds, so the chosen lr is not scored on its own seed
# Small runs scale poorly across threads, so parallel single-thread runs use the cores best; capped
# because a BERT-Base memory measurement takes ~3 GB per process.
DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))
# --tune-grid local: the grid points within this factor of the suite's default lr (plus the default).
LOCAL_TUNING_WINDOW = 10.0
FULL_GRID_PRESETS = {"paper"}  # presets whose default is the whole registry grid
# Suites whose result does not depend on the seed (measurements, not training): one seed is enough.
SEED_INDEPENDENT_SUITES = {"memory_overhead"}


@dataclass
class PlannedRun:
    request: RunRequest
    run_dir: Path
    label: str


def add_leaderboard_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suites", nargs="+", default=None, help="default: all suites")
    p.add_argument("--optimizers", nargs="+", default=None, help="default: every registered optimizer (plugins too)")
    p.add_argument("--preset", default=DEFAULT_PRESET, help="paper, small (default) or ci")
    p.add_argument("--seeds", type=int, default=None, help="seeds per (suite, optimizer) (default 2; with --tune 3)")
    p.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                   help=f"runs in parallel, one process each, sharing the cores (default {DEFAULT_JOBS})")
    p.add_argument("--tune", action="store_true", help="the paper's protocol: lr grid, pick the best, rerun with seeds")
    p.add_argument("--tune-grid", choices=("full", "local"), default=None,
                   help="full: the optimizer's whole lr grid; local: its points within 10x of the suite's "
                        "default lr, plus the default (default: full at the paper preset, local otherwise)")
    p.add_argument("--optimizer-file", action="append", metavar="FILE", help="a Python file that registers optimizers")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="suite preset overrides for every run")
    p.add_argument("--results", default="results", help="results root (default ./results)")
    p.add_argument("--report", default=None, help="report path (default <results>/report-<preset>.html)")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.add_argument("--device", default=None)


def _request(args, suite: str, optimizer: str, seed: int, protocol: str, overrides: dict) -> RunRequest:
    return RunRequest(suite=suite, optimizer=optimizer, preset=args.preset, seed=seed, overrides=overrides,
                      results_root=args.results, device=args.device, protocol=protocol,
                      optimizer_files=list(args.optimizer_file or []), progress=False)


def _planned(request: RunRequest) -> PlannedRun:
    _, _, _, run_dir, _ = plan_run(request)
    label = f"{request.suite}/{request.optimizer}/{request.protocol}/seed{request.seed}"
    if request.protocol == "tuning":
        label += f"/lr={request.overrides.get('lr')}"
    return PlannedRun(request, run_dir, label)


def _command(request: RunRequest) -> list[str]:
    cmd = [sys.executable, "-m", RUN_MODULE, "run", "--quiet", "--suite", request.suite,
           "--optimizer", request.optimizer, "--preset", request.preset, "--seed", str(request.seed),
           "--results", request.results_root, "--protocol", request.protocol]
    for key, value in request.overrides.items():
        cmd += ["--set", f"{key}={value}"]
    for path in request.optimizer_files:
        cmd += ["--optimizer-file", path]
    if request.device:
        cmd += ["--device", request.device]
    return cmd


def _execute(run: PlannedRun, threads: int, log_dir: Path) -> str:
    """Run one planned run in a child process; record a failure if the child dies without a summary."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / (safe_name(run.label.replace("/", "__")) + ".log")
    # torch sizes its thread pool from OMP_NUM_THREADS: share the cores among parallel runs
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        code = subprocess.run(_command(run.request), stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    summary = read_summary(run.run_dir)
    if summary is None:
        if code < 0 and -code == 2:  # SIGINT: the user interrupted; leave the run resumable
            raise KeyboardInterrupt
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        summary = {"status": "failed", "error": f"the run process exited with status {code} without a summary",
                   "log_tail": tail, "final_metrics": {}}
        if run.run_dir.exists():
            atomic_write_json(run.run_dir / "summary.json", summary)
    return summary.get("status", "failed")


def execute_all(runs: list[PlannedRun], jobs: int, results: Path, stage: str) -> dict[str, int]:
    """Execute runs (skipping finished ones) with `jobs` processes; print one line per run."""
    todo = [r for r in runs if (read_summary(r.run_dir) or {}).get("status") not in FINISHED_STATUSES]
    counts = {"skipped (already finished)": len(runs) - len(todo)}
    print(f"[{stage}] {len(runs)} runs: {len(todo)} to run, {len(runs) - len(todo)} already finished", flush=True)
    if not todo:
        return counts
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_execute, run, threads, results / "_logs"): run for run in todo}
        for done, future in enumerate(as_completed(futures), start=1):
            run = futures[future]
            status = future.result()
            counts[status] = counts.get(status, 0) + 1
            elapsed = time.monotonic() - started
            eta = elapsed / done * (len(todo) - done)
            print(f"[{stage}] {done}/{len(todo)} {status:<9} {run.label}  "
                  f"(elapsed {elapsed / 60:.1f} min, ETA {eta / 60:.1f} min)", flush=True)
    return counts


def _score(run: PlannedRun, metric: str, higher_is_better: bool) -> float:
    summary = read_summary(run.run_dir) or {}
    value = (summary.get("final_metrics") or {}).get(metric)
    if summary.get("status") != "completed" or not isinstance(value, (int, float)) or not math.isfinite(value):
        return -math.inf
    return value if higher_is_better else -value


def plan_default(args, suites: list[str], optimizers: list[str], overrides: dict) -> list[PlannedRun]:
    runs = []
    for suite in suites:
        seeds = 1 if suite in SEED_INDEPENDENT_SUITES else args.seeds
        for optimizer in optimizers:
            for seed in range(seeds):
                runs.append(_planned(_request(args, suite, optimizer, seed, "default", overrides)))
    return runs


def tuning_grid(grid, default_lr: float, window: float | None) -> list[float]:
    """The learning rates to try: the whole grid (window None), else the grid points within a factor
    `window` of the default lr, plus the default itself (so tuning never loses the untuned setting)."""
    if window is None:
        return sorted(set(float(lr) for lr in grid))
    low, high = default_lr / window, default_lr * window
    tolerance = 1e-9  # 1e-3 * 10 is not exactly 1e-2 in floating point
    points = {float(lr) for lr in grid if low * (1 - tolerance) <= lr <= high * (1 + tolerance)}
    points.add(float(default_lr))
    return sorted(points)


def _tuning_window(args) -> float | None:
    grid = args.tune_grid or ("full" if args.preset in FULL_GRID_PRESETS else "local")
    return None if grid == "full" else LOCAL_TUNING_WINDOW


def run_tuning(args, suites: list[str], optimizers: list[str], overrides: dict) -> dict[str, int]:
    """Tuning grid per (training suite, optimizer), choose the best lr, then the final seeds."""
    training = [s for s in suites if get_suite(s).kind == "training"]
    others = [s for s in suites if s not in training]
    window = _tuning_window(args)
    grid_runs: dict[tuple[str, str], list[PlannedRun]] = {}
    untunable: list[tuple[str, str]] = []
    for suite in training:
        for optimizer in optimizers:
            default_request = _request(args, suite, optimizer, TUNING_SEED, "tuning", overrides)
            default_lr = plan_run(default_request)[2].hyperparameters.get("lr")
            if not isinstance(default_lr, (int, float)) or isinstance(default_lr, bool) or default_lr <= 0:
                print(f"[tuning] {suite}/{optimizer}: no positive 'lr' hyperparameter to tune; "
                      f"its defaults are rerun on the final seeds", flush=True)
                untunable.append((suite, optimizer))
                continue
            lrs = tuning_grid(get_spec(optimizer).lr_grid, float(default_lr), window)
            grid_runs[(suite, optimizer)] = [
                _planned(_request(args, suite, optimizer, TUNING_SEED, "tuning", {**overrides, "lr": lr}))
                for lr in lrs
            ]
    counts = execute_all([r for runs in grid_runs.values() for r in runs], args.jobs, Path(args.results), "tuning")
    finals = []
    for (suite_name, optimizer), runs in grid_runs.items():
        suite = get_suite(suite_name)
        best = max(runs, key=lambda r: _score(r, suite.target_metric, suite.higher_is_better))
        if _score(best, suite.target_metric, suite.higher_is_better) == -math.inf:
            print(f"[tuning] {suite_name}/{optimizer}: every lr failed or diverged; no final runs", flush=True)
            continue
        lr = best.request.overrides["lr"]
        print(f"[tuning] {suite_name}/{optimizer}: best lr {lr}", flush=True)
        finals += [_planned(_request(args, suite_name, optimizer, seed, "final", {**overrides, "lr": lr}))
                   for seed in range(args.seeds)]
    for suite_name, optimizer in untunable:
        finals += [_planned(_request(args, suite_name, optimizer, seed, "final", overrides)) for seed in range(args.seeds)]
    finals += plan_default(args, others, optimizers, overrides)
    for key, value in execute_all(finals, args.jobs, Path(args.results), "final").items():
        counts[key] = counts.get(key, 0) + value
    return counts


def run_leaderboard_from_args(args: argparse.Namespace) -> int:
    from .config import parse_set_arguments

    if args.seeds is None:
        args.seeds = 3 if args.tune else 2  # the tuning protocol reports 3 seeds by default
    if args.tune_grid and not args.tune:
        raise ConfigError(f"--tune-grid {args.tune_grid} applies only with --tune (add --tune, or drop --tune-grid)")
    if args.jobs < 1 or args.seeds < 1:
        raise ConfigError(f"--jobs and --seeds must be >= 1 (got jobs={args.jobs}, seeds={args.seeds})")
    for path in args.optimizer_file or []:
        load_optimizer_file(path)
    suites = args.suites or suite_names()
    for s in suites:
        get_suite(s)  # fails early on unknown names, with the known ones
    optimizers = args.optimizers or optimizer_names()
    for o in optimizers:
        get_spec(o)
    overrides = parse_set_arguments(args.set)
    started = time.monotonic()
    if args.tune:
        counts = run_tuning(args, suites, optimizers, overrides)
    else:
        counts = execute_all(plan_default(args, suites, optimizers, overrides), args.jobs, Path(args.results), "board")
    minutes = (time.monotonic() - started) / 60
    print(f"leaderboard finished in {minutes:.1f} min: " + ", ".join(f"{k}: {v}" for k, v in counts.items()), flush=True)
    if not args.no_report:
        from nightbench.reports import build_report

        output = args.report or str(Path(args.results) / f"report-{args.preset}.html")
        path = build_report(Path(args.results), output)
        print(f"report: {Path(path).resolve()}", flush=True)
    return 1 if counts.get("failed") else 0
