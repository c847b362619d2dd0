"""What a suite is: the small objects every suite module defines, and the engine drives.

Two shapes, two base classes, one catalog (`suites/catalog.py`):

* `TrainingSuite` (bert_mlm, resnet50_imagenet): the engine owns the training loop. The suite builds
  a `TrainingTask` (model, deterministic batches, loss, evaluation, step budget, schedule) and the
  engine does micro-batching, gradient accumulation, two-half batches for two-gradient optimizers,
  evaluation at w_t for swap-needing optimizers, checkpoints, resume, divergence and logging.
* `ExperimentSuite` (small_batch_variance, memory_overhead): the suite runs its own sweep of many
  small units through a `RunContext` the engine provides (optimizer factory, logging, resume at the
  granularity of units, progress).

Both are parameterized by presets: 'paper' (the published configuration), 'small' (the default, a
laptop CPU finishes it) and 'ci' (seconds). A preset is a flat dict of JSON-able values; `--set key=v`
overrides any key it has. The same code runs every preset; only the values differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator, Mapping

import torch

from nightbench.optimizers import ParamGroupPolicy, Schedule

PRESET_NAMES = ("paper", "small", "ci")
DEFAULT_PRESET = "small"
# The report's sections a suite may ask for (Suite.report_sections); reports/html.py draws them.
LEADERBOARD, LEARNING_CURVES, MEMORY, SMALL_BATCH_VARIANCE = (
    "leaderboard", "learning_curves", "memory", "small_batch_variance")
REPORT_SECTIONS = (LEADERBOARD, LEARNING_CURVES, MEMORY, SMALL_BATCH_VARIANCE)


@dataclass
class BuildContext:
    """What a suite's builder may use: the resolved preset config, the run's seed and device."""

    config: dict[str, Any]
    seed: int
    device: torch.device
    cache_dir: str  # <results root>/_cache: build corpora/tokenizers/datasets once, reuse across runs
    optimizer_name: str
    world_size: int = 1
    rank: int = 0


@dataclass
class TrainingTask:
    """One concrete training problem, built by a TrainingSuite for one run.

    train_batches(start_step) yields the GLOBAL batch for steps start_step, start_step+1, ... and
    must be a pure function of (seed, step) so that a resumed run sees exactly the batches an
    uninterrupted run sees (seed a permutation per epoch; skip to the offset; no global RNG).

    loss(model, batch) -> (loss_sum, metrics): the SUM of per-example (or per-token) losses and a
    dict of float metrics for logging. count(batch) gives the number of terms in that sum, so the
    engine can split a batch into micro-batches (or halves) and still take the exact batch mean.

    evaluate(model) -> dict of float metrics on held-out data; the engine calls it under
    torch.no_grad(), in model.eval() mode, with the optimizer swapped to its reported iterate.
    """

    model: torch.nn.Module
    train_batches: Callable[[int], Iterator[Any]]
    loss: Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]
    count: Callable[[Any], int]
    evaluate: Callable[[torch.nn.Module], dict[str, float]]
    total_steps: int
    eval_every: int
    global_batch_size: int
    micro_batch_size: int  # per process; accumulation = global / (micro x world size)
    steps_per_epoch: int | None = None  # for epoch-based schedules and logging
    examples_name: str = "examples"  # 'images', 'sequences': throughput units in the progress bar
    close: Callable[[], None] = lambda: None  # release workers, files


class Suite(ABC):
    """What every suite declares; subclass TrainingSuite or ExperimentSuite, not this.

    A suite is found by the catalog (suites/catalog.py) when it is the `SUITE` of a folder's
    suite.py under suites/, of a file given with --suite-file, or of a module named by an entry
    point in the group `nightbench.suites`.
    """

    kind: str  # "training" | "experiment": set by the base class, recorded in config.json
    name: str
    description: str
    presets: Mapping[str, dict[str, Any]]
    target_metric: str | None = None  # a key of the final metrics, e.g. 'mlm_accuracy'
    higher_is_better: bool = True
    # The target value per preset (paper: the published figure), None where none applies.
    target_values: Mapping[str, float | None] = {}
    seed_independent: bool = False  # a measurement, not training: the leaderboard runs one seed
    title: str | None = None  # the report's heading for this suite (default: the name)
    report_sections: tuple[str, ...] = ()  # which REPORT_SECTIONS show this suite's runs

    def optimizer_defaults(self, optimizer_name: str, config: dict[str, Any]) -> dict[str, Any]:
        """Suite-specific default hyperparameters for an optimizer (e.g. adam lr 1e-4 on BERT).

        Return {} for optimizers the suite has no opinion on (plugins): the optimizer's own
        defaults then apply. Keys may include 'policy.<field>' for the param-group policy.
        """
        return {}

    def validate_config(self, config: dict[str, Any]) -> None:
        """Raise ValueError naming a bad key and what it accepts; called before any run directory exists."""

    def facts(self) -> dict[str, Any]:
        """What the leaderboard and the report need to know of this suite (recorded in config.json)."""
        return {"kind": self.kind, "seed_independent": bool(self.seed_independent),
                "title": self.title or self.name, "description": self.description,
                "report_sections": list(self.report_sections)}


class TrainingSuite(Suite):
    """A suite whose runs the engine trains: the suite builds a TrainingTask, the engine owns the loop."""

    kind = "training"
    report_sections = (LEADERBOARD, LEARNING_CURVES)
    # (warmup key, schedule-length key) of the preset, in the same unit: lets the tuning search set
    # the warmup as a fraction of the schedule. None: the search leaves warmup alone.
    warmup_keys: tuple[str, str] | None = None
    # Per preset, the parity margin delta of the paper's "matches" claims on this suite, and why:
    # a claim holds when the interval of (NIGT - baseline) lies above -delta (reports/claims.py).
    parity_margins: Mapping[str, tuple[float, str]] = {}

    def facts(self) -> dict[str, Any]:
        margins = {preset: {"margin": float(margin), "reason": reason}
                   for preset, (margin, reason) in self.parity_margins.items()}
        return {**super().facts(), "parity_margins": margins}

    @abstractmethod
    def schedule(self, optimizer_name: str, config: dict[str, Any], task: TrainingTask) -> Schedule:
        """The learning-rate schedule for this optimizer on this task."""

    @abstractmethod
    def build(self, ctx: BuildContext) -> TrainingTask:
        """Build model, data, loss and evaluation for one run. Fail early, with a clear message,
        on bad input (missing data paths, corpora too small for one batch)."""


@dataclass
class RunContext:
    """What the engine hands an ExperimentSuite for one run.

    make_optimizer(params, **overrides) builds the run's optimizer (its resolved hyperparameters
    with `overrides` on top, e.g. a swept lr) with the run's param-group policy (or `policy=`).
    log(record) appends one JSON-able dict to the run's metrics log (the engine adds 'time').
    done_units() is the set of unit keys already logged with record['unit'] (resume: skip them).
    progress(n) advances the progress display by n units of `total_units`.
    """

    config: dict[str, Any]
    seed: int
    device: torch.device
    cache_dir: str
    run_dir: str
    optimizer_name: str
    hyperparameters: dict[str, Any]
    policy: ParamGroupPolicy
    spec: Any  # nightbench.optimizers.OptimizerSpec
    make_optimizer: Callable[..., torch.optim.Optimizer]
    log: Callable[[dict[str, Any]], None]
    done_units: Callable[[], set[str]]
    set_total_units: Callable[[int], None]
    progress: Callable[[int], None]
    extra: dict[str, Any] = field(default_factory=dict)


class ExperimentSuite(Suite):
    """A suite that runs its own sweep of small units through a RunContext (resumable per unit)."""

    kind = "experiment"

    @abstractmethod
    def run(self, ctx: RunContext) -> dict[str, float]:
        """Run every unit not yet in ctx.done_units(); return the run's final summary metrics."""

    def all_diverged(self, final_metrics: dict[str, float]) -> bool:
        """Whether the run's work all diverged (then it is recorded as diverged, not completed)."""
        return False
