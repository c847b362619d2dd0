"""The budgeted search (`--tune --budget N`): N trials per (training suite, optimizer), planned.

Each optimizer is searched over its own space (`OptimizerSpec.tuning_space`; the lr-only fallback
for plugins that declare none), bound around the suite's defaults for this optimizer. Trials come
from one scrambled Halton sequence per study, the same for every optimizer; trial 0 is the default
itself, so `--budget 1` is the default protocol. Every trial runs the whole schedule on the tuning
seed. `--studies K` runs K independent searches (sequence seeds SEARCH_SEED, SEARCH_SEED + 1, ...);
their trials 0 are the same run. Pure: no processes, no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nightbench.optimizers import get_spec
from nightbench.optimizers.search_space import WARMUP_FRACTION, bind, describe, trials

from ..base import TrainingSuite
from ..plan import RunPlan, plan_run

SEARCH_SEED = 0  # the first study's Halton seed; study k uses SEARCH_SEED + k


@dataclass(frozen=True)
class Trial:
    study: int
    index: int  # 0 is the default
    values: dict[str, Any]  # what the trial draws: hyperparameters and, where searched, warmup_fraction
    overrides: dict[str, Any]  # the same as run settings (warmup_fraction as the suite's warmup key)
    run: RunPlan


@dataclass(frozen=True)
class Search:
    """The trials of one (suite, optimizer), every study's."""

    suite: str
    optimizer: str
    space: dict[str, str]  # each dimension's distribution in words, bound to this suite's defaults
    declared: bool  # False: the optimizer declared no space and is searched over lr alone
    trials: tuple[Trial, ...]
    dropped: tuple[str, ...] = ()  # dimensions this suite cannot apply (a schedule without warmup keys)

    @property
    def runs(self) -> tuple[RunPlan, ...]:
        """Each distinct run once (every study's trial 0 is the same run)."""
        unique = {trial.run.run_dir: trial.run for trial in self.trials}
        return tuple(unique.values())

    def study(self, k: int) -> tuple[Trial, ...]:
        return tuple(t for t in self.trials if t.study == k)


def warmup_fraction(suite: TrainingSuite, config: dict[str, Any]) -> float | None:
    """The suite's warmup as a fraction of its schedule, or None where it declares no warmup keys."""
    keys = suite.warmup_keys
    if keys is None or not config.get(keys[1]):
        return None
    return float(config[keys[0]] or 0) / float(config[keys[1]])


def warmup_override(suite: TrainingSuite, config: dict[str, Any], fraction: float) -> dict[str, Any]:
    """The suite setting that gives a warmup of `fraction` of the schedule (steps rounded)."""
    warmup_key, length_key = suite.warmup_keys
    warmup = fraction * float(config[length_key])
    return {warmup_key: round(warmup) if isinstance(config[warmup_key], int) else warmup}


def plan_search(request_for, suite_name: str, optimizer: str, budget: int, studies: int,
                tuning_seed: int) -> Search:
    """The trials of one (suite, optimizer). `request_for(seed, protocol, **overrides)` makes a RunRequest."""
    default = plan_run(request_for(tuning_seed, "tuning"))
    suite, spec = default.suite, get_spec(optimizer)
    space = dict(spec.tuning_space)
    dropped = ()
    if WARMUP_FRACTION in space and warmup_fraction(suite, default.resolved.suite_config) is None:
        dropped = (WARMUP_FRACTION,)
        del space[WARMUP_FRACTION]
    bound = bind(space, default.resolved.hyperparameters)
    out = []
    for k in range(studies):
        for index, values in enumerate(trials(bound, budget, SEARCH_SEED + k)):
            overrides = {name: v for name, v in values.items() if name != WARMUP_FRACTION}
            if WARMUP_FRACTION in values:
                overrides.update(warmup_override(suite, default.resolved.suite_config, values[WARMUP_FRACTION]))
            run = default if index == 0 else plan_run(request_for(tuning_seed, "tuning", **overrides))
            out.append(Trial(k, index, values, overrides, run))
    return Search(suite_name, optimizer, describe(bound), spec.search_space is not None, tuple(out), dropped)
