"""The leaderboard's planning: board settings -> the RunPlans of each stage. Pure: no processes, no files.

    default stage   every suite x optimizer x seed, at each optimizer's per-suite defaults
    tuning stage    per (training suite, optimizer), one run per learning rate on the tuning seed
    final stage     the best lr of each tuning sweep on the reporting seeds, plus the suites
                    that are not tuned (experiment suites sweep what they need inside)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from nightbench.optimizers import get_spec, load_optimizer_file
from nightbench.optimizers import expand_names

from ..base import DEFAULT_PRESET, TrainingSuite
from ..catalog import get_suite, load_suite_file, suite_names
from ..config import ConfigError
from ..plan import RunPlan, RunRequest, plan_run

TUNING_SEED = 1000  # distinct from the reporting seeds, so the chosen lr is not scored on its own seed
DEFAULT_SEEDS, DEFAULT_TUNED_SEEDS = 2, 3
# Parallel one-thread runs use the cores best; capped because a BERT-Base memory measurement
# takes several GB per process.
DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))
LOCAL_TUNING_WINDOW = 10.0  # --tune-grid local: the grid points within this factor of the default lr
FULL_GRID_PRESETS = {"paper"}  # presets whose default tuning grid is the optimizer's whole grid


@dataclass(frozen=True)
class BoardSettings:
    """What a leaderboard was asked for, validated; built once from the command line."""

    suites: tuple[str, ...]
    optimizers: tuple[str, ...]
    preset: str = DEFAULT_PRESET
    seeds: int = DEFAULT_SEEDS
    tune: bool = False
    tune_grid: str = "local"  # full | local
    overrides: dict[str, Any] = field(default_factory=dict)
    results: str = "results"
    device: str | None = None
    optimizer_files: tuple[str, ...] = ()
    suite_files: tuple[str, ...] = ()

    @staticmethod
    def create(*, suites=None, optimizers=None, preset: str = DEFAULT_PRESET, seeds: int | None = None,
               tune: bool = False, tune_grid: str | None = None, overrides=None, results: str = "results",
               device: str | None = None, optimizer_files=(), suite_files=()) -> "BoardSettings":
        """Validate and complete the settings (plugins loaded, names checked, defaults filled in)."""
        if tune_grid and not tune:
            raise ConfigError(f"--tune-grid {tune_grid} applies only with --tune (add --tune, or drop --tune-grid)")
        if tune_grid not in (None, "full", "local"):
            raise ConfigError(f"invalid --tune-grid {tune_grid!r}: expected full or local")
        seeds = seeds if seeds is not None else (DEFAULT_TUNED_SEEDS if tune else DEFAULT_SEEDS)
        if seeds < 1:
            raise ConfigError(f"--seeds must be >= 1 (got {seeds})")
        for path in optimizer_files:
            load_optimizer_file(path)
        for path in suite_files:
            load_suite_file(path)
        suites = tuple(suites or suite_names())
        optimizers = tuple(expand_names(optimizers or ["paper"]))  # set names (paper, modern, all) -> members
        for name in suites:
            get_suite(name)  # fails early on unknown names, with the known ones
        for name in optimizers:
            get_spec(name)
        grid = tune_grid or ("full" if preset in FULL_GRID_PRESETS else "local")
        return BoardSettings(suites, optimizers, preset, seeds, tune, grid, dict(overrides or {}), results, device,
                             tuple(optimizer_files), tuple(suite_files))

    def request(self, suite: str, optimizer: str, seed: int, protocol: str, **overrides: Any) -> RunRequest:
        return RunRequest(suite=suite, optimizer=optimizer, preset=self.preset, seed=seed,
                          overrides={**self.overrides, **overrides}, results_root=self.results, device=self.device,
                          protocol=protocol, optimizer_files=list(self.optimizer_files),
                          suite_files=list(self.suite_files), progress=False)

    def seeds_for(self, suite: str) -> range:
        return range(1 if get_suite(suite).seed_independent else self.seeds)


def default_stage(settings: BoardSettings, suites: tuple[str, ...] | None = None) -> list[RunPlan]:
    return [plan_run(settings.request(suite, optimizer, seed, "default"))
            for suite in (settings.suites if suites is None else suites)
            for optimizer in settings.optimizers
            for seed in settings.seeds_for(suite)]


def tuned_suites(settings: BoardSettings) -> tuple[str, ...]:
    return tuple(s for s in settings.suites if isinstance(get_suite(s), TrainingSuite))


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


@dataclass(frozen=True)
class Sweep:
    """One tuning sweep: a (training suite, optimizer) and its runs, one per learning rate."""

    suite: str
    optimizer: str
    runs: tuple[RunPlan, ...]


def tuning_window(preset: str, tune_grid: str | None) -> float | None:
    """The factor around the default lr that --tune-grid local keeps; None: the whole grid."""
    grid = tune_grid or ("full" if preset in FULL_GRID_PRESETS else "local")
    return None if grid == "full" else LOCAL_TUNING_WINDOW


def tuning_stage(settings: BoardSettings) -> tuple[list[Sweep], list[tuple[str, str]]]:
    """The sweeps, and the (suite, optimizer) pairs with no positive 'lr' to tune (rerun at defaults)."""
    window = tuning_window(settings.preset, settings.tune_grid)
    sweeps, untunable = [], []
    for suite in tuned_suites(settings):
        for optimizer in settings.optimizers:
            default_lr = plan_run(settings.request(suite, optimizer, TUNING_SEED, "tuning")).resolved.hyperparameters.get("lr")
            if not isinstance(default_lr, (int, float)) or isinstance(default_lr, bool) or default_lr <= 0:
                untunable.append((suite, optimizer))
                continue
            lrs = tuning_grid(get_spec(optimizer).lr_grid, float(default_lr), window)
            runs = tuple(plan_run(settings.request(suite, optimizer, TUNING_SEED, "tuning", lr=lr)) for lr in lrs)
            sweeps.append(Sweep(suite, optimizer, runs))
    return sweeps, untunable


def final_stage(settings: BoardSettings, best_lrs: dict[tuple[str, str], float],
                untunable: list[tuple[str, str]]) -> list[RunPlan]:
    """The reporting runs after tuning: best lr per tuned pair, defaults for the untunable pairs,
    and the default stage of the suites that are not tuned."""
    plans = [plan_run(settings.request(suite, optimizer, seed, "final", lr=lr))
             for (suite, optimizer), lr in best_lrs.items() for seed in range(settings.seeds)]
    plans += [plan_run(settings.request(suite, optimizer, seed, "final"))
              for suite, optimizer in untunable for seed in range(settings.seeds)]
    untuned = tuple(s for s in settings.suites if s not in tuned_suites(settings))
    return plans + default_stage(settings, untuned)
