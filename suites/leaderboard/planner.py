"""The leaderboard's planning: board settings -> the RunPlans of each stage. Pure: no processes, no files.

    default stage   every suite x optimizer x seed, at each optimizer's per-suite defaults
    tuning stage    per (training suite, optimizer) on the tuning seed: the budgeted search's trials
                    (search.py; --tune), or one run per learning rate of a grid (--tune-grid)
    final stage     the chosen configuration of each (suite, optimizer) on the reporting seeds, plus
                    the suites that are not tuned (experiment suites sweep what they need inside)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from nightbench.optimizers import expand_names, get_spec, load_optimizer_file, plugin_errors
from nightbench.optimizers import names as optimizer_names
from nightbench.optimizers.registry import SET_NAMES

from ..base import DEFAULT_PRESET, TrainingSuite
from ..catalog import get_suite, load_suite_file, suite_names
from ..config import ConfigError
from ..devices import device_name, resolve_device
from ..plan import RunPlan, RunRequest, plan_run

TUNING_SEED = 1000  # never a reporting seed (reporting_seeds), so a chosen setting is not scored on its own seed
DEFAULT_SEEDS, DEFAULT_TUNED_SEEDS = 2, 3
# --tune's trials per (suite, optimizer) when --budget is not given: AlgoPerf's 5 per study, plus the default.
DEFAULT_BUDGET = 6
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
    tune_grid: str | None = None  # full | local: the lr-grid protocol; None with tune: the budgeted search
    budget: int = DEFAULT_BUDGET  # the search's trials per (suite, optimizer) and study
    studies: int = 1  # independent searches (different sequence seeds); the median study's choice is reported
    tuning_only: bool = False  # stop once the tuning records are written: a study whose choices ship as defaults
    overrides: dict[str, Any] = field(default_factory=dict)
    results: str = "results"
    device: str | None = None
    optimizer_files: tuple[str, ...] = ()
    suite_files: tuple[str, ...] = ()

    @staticmethod
    def create(*, suites=None, optimizers=None, preset: str = DEFAULT_PRESET, seeds: int | None = None,
               tune: bool = False, tune_grid: str | None = None, budget: int | None = None,
               studies: int | None = None, tuning_only: bool = False, overrides=None, results: str = "results",
               device: str | None = None, optimizer_files=(), suite_files=()) -> "BoardSettings":
        """Validate and complete the settings (plugins loaded, names checked, defaults filled in)."""
        for flag, value in (("--tune-grid", tune_grid), ("--budget", budget), ("--studies", studies)):
            if value is not None and not tune:
                raise ConfigError(f"{flag} {value} applies only with --tune (add --tune, or drop {flag})")
        if tuning_only and not tune:
            raise ConfigError("--tuning-only applies only with --tune (add --tune, or drop --tuning-only)")
        if tune_grid not in (None, "full", "local"):
            raise ConfigError(f"invalid --tune-grid {tune_grid!r}: expected full or local")
        if tune_grid is not None and (budget is not None or studies is not None):
            raise ConfigError("--budget and --studies belong to the budgeted search; --tune-grid is the lr-grid "
                              "protocol: use one or the other")
        for flag, value in (("--budget", budget), ("--studies", studies)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{flag} must be an integer >= 1 (got {value!r})")
        seeds = seeds if seeds is not None else (DEFAULT_TUNED_SEEDS if tune else DEFAULT_SEEDS)
        if seeds < 1:
            raise ConfigError(f"--seeds must be >= 1 (got {seeds})")
        device_name(device)  # the name only: whether this machine has the GPU is check_board's (local) question
        optimizers_in_file = {path: load_optimizer_file(path) for path in optimizer_files}
        suites_in_file = {path: load_suite_file(path) for path in suite_files}
        given_suites, given_optimizers = suites, optimizers
        suites = tuple(suites or suite_names())
        # set names (paper, modern, plugin, all) -> members; by default the paper's eight and every plugin
        # loaded (--optimizer-file, entry points): adding an optimizer takes one file and one command
        optimizers = tuple(expand_names(optimizers or ["paper", "plugin"]))
        if given_optimizers:
            _refuse_empty_sets(given_optimizers)
        for name in suites:
            get_suite(name)  # fails early on unknown names, with the known ones
        for name in optimizers:
            get_spec(name)
        if given_optimizers:
            _refuse_ignored_files("--optimizer-file", optimizers_in_file, "--optimizers", given_optimizers, optimizers)
        if given_suites:
            _refuse_ignored_files("--suite-file", suites_in_file, "--suites", given_suites, suites)
        for flag, names in (("--suites", suites), ("--optimizers", optimizers)):
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:  # one run directory would be counted as several runs
                raise ConfigError(f"{flag} lists {', '.join(twice)} more than once; list each name once")
        return BoardSettings(suites, optimizers, preset, seeds, tune, tune_grid, budget or DEFAULT_BUDGET,
                             studies or 1, tuning_only, dict(overrides or {}), results, device, tuple(optimizer_files),
                             tuple(suite_files))

    @property
    def search(self) -> bool:
        """Whether the tuning protocol is the budgeted search (else the lr grid)."""
        return self.tune and self.tune_grid is None

    def request(self, suite: str, optimizer: str, seed: int, protocol: str, **overrides: Any) -> RunRequest:
        return RunRequest(suite=suite, optimizer=optimizer, preset=self.preset, seed=seed,
                          overrides={**self.overrides, **overrides}, results_root=self.results, device=self.device,
                          protocol=protocol, optimizer_files=list(self.optimizer_files),
                          suite_files=list(self.suite_files), progress=False)

    def seeds_for(self, suite: str) -> range:
        return range(1 if get_suite(suite).seed_independent else self.seeds)


def _refuse_empty_sets(requested) -> None:
    """A set named in --optimizers that has no member would select nothing, silently (a board of 0 runs)."""
    for name in requested:
        if name in SET_NAMES and not expand_names([name]):
            if name == "plugin":
                failed = plugin_errors()
                why = ("no plugin optimizer is registered: pass --optimizer-file FILE (a Python file with "
                       "@register_optimizer), or install a package with a 'nightbench.optimizers' entry point"
                       + (f" (plugins that failed to load: {'; '.join(f'{k}: {v}' for k, v in failed.items())})"
                          if failed else ""))
            else:
                why = f"no optimizer of the set '{name}' is registered"
            raise ConfigError(f"--optimizers {name} selects no optimizer: {why}; "
                              f"registered: {', '.join(optimizer_names())}")


def _refuse_ignored_files(flag: str, loaded: dict[str, list[str]], names_flag: str, requested, selected) -> None:
    """A plugin file none of whose names the board's selection includes would be loaded and then ignored."""
    for path, found in loaded.items():
        if found and not set(found) & set(selected):
            listed = " ".join(requested)
            hint = f"add {'it' if len(found) == 1 else 'them'} ({names_flag} {listed} {' '.join(found)})"
            if names_flag == "--optimizers" and all(get_spec(n).family == "plugin" for n in found):
                hint += " or the set plugin"
            default = "the paper's set and every plugin" if names_flag == "--optimizers" else "every suite"
            raise ConfigError(f"{flag} {path} registers {', '.join(found)}, which {names_flag} {listed} does not "
                              f"select: the file would be ignored. {hint[0].upper()}{hint[1:]}, or omit "
                              f"{names_flag} ({default}), or drop {flag} {path}")


def check_board(settings: BoardSettings, *, here: bool = True) -> None:
    """Refuse, before the board writes anything, what every child run would refuse only once started
    (exit 1 per run, the reason in _logs): a device this machine lacks (only when the runs execute
    `here`: a SLURM node may have the GPU the login node lacks) and a suite config a suite rejects.
    Cheap: one plan per (suite, optimizer), the suites' own checks (Suite.validate_config, run by
    plan_run), no model, no data. The seed and the tuned lr do not change a suite's config."""
    if here:
        resolve_device(settings.device)
    for suite in settings.suites:
        for optimizer in settings.optimizers:
            plan_run(settings.request(suite, optimizer, 0, "default"))


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


def reporting_seeds(count: int) -> list[int]:
    """The first `count` seeds from 0, skipping the tuning seed: no setting is reported on the seed
    it was chosen on."""
    return [seed for seed in range(count + 1) if seed != TUNING_SEED][:count]


def final_stage(settings: BoardSettings, chosen: dict[tuple[str, str], dict[str, Any]],
                untunable: list[tuple[str, str]]) -> list[RunPlan]:
    """The reporting runs after tuning: the chosen settings (overrides) per tuned pair, defaults for
    the untunable pairs, and the default stage of the suites that are not tuned."""
    seeds = reporting_seeds(settings.seeds)
    plans = [plan_run(settings.request(suite, optimizer, seed, "final", **overrides))
             for (suite, optimizer), overrides in chosen.items() for seed in seeds]
    plans += [plan_run(settings.request(suite, optimizer, seed, "final"))
              for suite, optimizer in untunable for seed in seeds]
    untuned = tuple(s for s in settings.suites if s not in tuned_suites(settings))
    return plans + default_stage(settings, untuned)
