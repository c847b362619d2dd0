"""One run's lifecycle, the same for a single process and for every rank of a DeepSpeed launch.

    plan -> skip if finished -> lock -> seed -> build -> config.json -> train -> summary.json

A run always ends with a summary: completed, diverged (with the step) or failed (with the error),
except when it is interrupted (Ctrl-C, SIGTERM from a scheduler): then it stays unfinished and the
same command resumes it. Bad input (unknown names, bad values, a missing data path) raises an
InputError before a run directory is left behind. A finished run is never rewritten.

What differs between one process and a DeepSpeed launch is a `Host`: this module's `Host` is one
process; `distributed/host.py` supplies the DeepSpeed one (ranks, rank-0 writing, sharded
checkpoints, failures of other ranks). The same Host serves the Trainer (`training_host.TrainingHost`).
"""

from __future__ import annotations

import contextlib
import datetime
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from nightbench.optimizers import create
from nightbench.optimizers.errors import InputError

from .base import BuildContext, RunContext, TrainingSuite, TrainingTask
from .config import ConfigError
from .devices import resolve_device
from .environment import environment
from .layout import CACHE_DIR, CONFIG_FILE, METRICS_FILE
from .plan import RunPlan, RunRequest, plan_run
from .progress import Progress
from .outcomes import FINISHED_STATES, RunState
from .run_dir import MetricsLog, atomic_write_json, read_metrics, run_lock
from .summary import CONFIG_FORMAT_VERSION, VERSION_KEY, RunSummary, read_config, read_summary, write_summary
from .trainer import Diverged, Trainer
from .training_host import TrainingHost, seed_everything


class SuiteInputError(ConfigError):
    """The suite rejected its input (data path, tokenizer, corpus size) before training started."""


# A suite's builder reports bad input with these (config.SuiteConfigError, SuiteDataError, ...);
# anything else it raises is a bug: the run is recorded as failed, with its traceback.
SUITE_INPUT_EXCEPTIONS = (InputError,)


@dataclass
class RunOutcome:
    run_dir: Path
    status: RunState
    summary: dict  # summary.json's object (RunSummary.to_json)
    skipped: bool = False  # True when the run had already finished and nothing was done


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class Host(TrainingHost):
    """Where a run executes: here, one process. Subclassed for every rank of a DeepSpeed launch.
    Its lifecycle methods are the engine's; those it inherits from TrainingHost, the Trainer's."""

    def __init__(self, plan: RunPlan):
        self.plan = plan
        self.device = resolve_device(plan.request.device)

    def check(self) -> None:
        """Refusals that depend on the run directory, made before anything is written."""
        run_dir = self.plan.run_dir
        read_config(run_dir)  # a run started by a newer nightbench is left to it (FormatVersionError)
        if (run_dir / "deepspeed").is_dir() and read_summary(run_dir) is None:
            raise ConfigError(f"{run_dir} holds an unfinished run started with --deepspeed; resume it with --deepspeed")

    def share(self, value: Any) -> Any:
        """The main process's value of something only it can know (here: the value itself)."""
        return value

    def lock(self) -> contextlib.AbstractContextManager:
        return run_lock(self.plan.run_dir)

    def guard(self) -> contextlib.AbstractContextManager:
        """Held while training: a DeepSpeed rank turns a launcher's SIGTERM into an interruption."""
        return contextlib.nullcontext(_NoGuard())

    def build_task(self, suite: TrainingSuite, ctx: BuildContext) -> TrainingTask:
        try:
            return suite.build(ctx)
        except SUITE_INPUT_EXCEPTIONS as exc:
            raise SuiteInputError(f"suite '{suite.name}' rejected its input: {exc}") from exc

    def build_context(self) -> BuildContext:
        plan = self.plan
        return BuildContext(config=plan.resolved.suite_config, seed=plan.request.seed, device=self.device,
                            cache_dir=cache_dir(plan), optimizer_name=plan.spec.name,
                            world_size=self.world_size, rank=self.rank)

    def recorded_config(self) -> dict:
        """config.json: the plan's config plus where and when the run executes."""
        return {**self.plan.config, "device": str(self.device), "world_size": self.world_size,
                "environment": environment(), "created": now().isoformat(timespec="seconds"),
                VERSION_KEY: CONFIG_FORMAT_VERSION}

    def make_trainer(self, task: TrainingTask) -> Trainer:
        plan = self.plan
        return Trainer(host=self, suite=plan.suite, task=task, spec=plan.spec,
                       hyperparameters=plan.resolved.hyperparameters, policy=plan.resolved.policy,
                       config=plan.resolved.suite_config, run_dir=plan.run_dir,
                       target_value=plan.config["target_value"], progress=plan.request.progress)

    def keeps_going_after(self, exc: BaseException) -> bool:
        """Whether this failure is recorded in the summary (True) or raised on (a rank other than 0)."""
        return True

    def stopped_for_a_failure(self, exc: KeyboardInterrupt) -> bool:
        """Whether an interruption was the launcher stopping ranks after another rank failed."""
        return False

    def final_status(self, status: RunState, extra: dict) -> tuple[RunState, dict]:
        """The status to record, given what the other ranks reported (here: as it is)."""
        return status, extra


class _NoGuard:
    def training_over(self) -> None:
        pass


def cache_dir(plan: RunPlan) -> str:
    return str(Path(plan.request.results_root) / CACHE_DIR)


# Hosts other than this one process, by the type of `RunRequest.deepspeed`; distributed/host.py
# registers DeepSpeed's when the distributed package is imported (the engine never imports it).
HOSTS: dict[type, Callable[[RunPlan], Host]] = {}


def execute_run(request: RunRequest | RunPlan) -> RunOutcome:
    """Run (or resume, or skip) one run; never overwrites a finished one."""
    plan = request if isinstance(request, RunPlan) else plan_run(request)
    options = plan.request.deepspeed
    host = Host(plan) if options is None else HOSTS[type(options)](plan)
    return run_lifecycle(plan, host)


def run_lifecycle(plan: RunPlan, host: Host) -> RunOutcome:
    run_dir = plan.run_dir
    summary = host.share(read_summary(run_dir) if host.is_main else None)
    if summary is not None and summary.status in FINISHED_STATES:
        return RunOutcome(run_dir, summary.status, summary.to_json(), skipped=True)
    host.check()
    fresh = host.share(not (run_dir / CONFIG_FILE).exists() if host.is_main else None)
    try:
        with host.lock(), intra_op_threads(plan.resolved.suite_config["threads"]), host.guard() as guard:
            return _execute_locked(plan, host, guard)
    except SuiteInputError:
        if fresh and host.is_main:  # bad input found before training: leave nothing behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _execute_locked(plan: RunPlan, host: Host, guard: Any) -> RunOutcome:
    started = now()
    seed_everything(plan.request.seed)  # the same on every rank: the task is built alike everywhere
    status, fields, extra = RunState.FAILED, {}, {}
    try:
        if isinstance(plan.suite, TrainingSuite):
            status, fields, extra = _train(plan, host)
        else:
            _write_config(plan, host)
            status, fields = _run_experiment(plan, host.device)
        guard.training_over()  # from here on a SIGTERM waits: the summary must be written whole
    except (ConfigError, KeyboardInterrupt) as exc:
        if not (isinstance(exc, KeyboardInterrupt) and host.stopped_for_a_failure(exc)):
            raise  # bad input (exit 2) or an interruption: no summary, the checkpoint stays
    except Exception as exc:  # noqa: BLE001 - a failed run is recorded; the caller (leaderboard) goes on
        guard.training_over()
        if not host.keeps_going_after(exc):
            raise
        extra = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=20)}
        status = RunState.FAILED
    status, extra = host.final_status(status, extra)
    if not host.is_main:
        return RunOutcome(plan.run_dir, status, {"status": status, **fields, **extra})
    _write_config(plan, host)  # a run that failed before writing it still says what it was
    outcome = finish_run(plan, started, status, fields, extra)
    if status in FINISHED_STATES:  # a failed run may be run again: it keeps its fallback
        host.drop_fallback_checkpoint(plan.run_dir)
    return outcome


def _write_config(plan: RunPlan, host: Host) -> None:
    if host.is_main and read_config(plan.run_dir) is None:
        atomic_write_json(plan.run_dir / CONFIG_FILE, host.recorded_config())


def _train(plan: RunPlan, host: Host) -> tuple[RunState, dict, dict]:
    task = host.build_task(plan.suite, host.build_context())
    _write_config(plan, host)
    trainer = host.make_trainer(task)
    try:
        return RunState.COMPLETED, trainer.run(), {}
    except Diverged as exc:  # every rank sees the same summed loss and parameters: all stop here
        return RunState.DIVERGED, trainer.summary_fields(), {"diverged_step": exc.step, "error": str(exc)}
    finally:
        trainer.close()


def finish_run(plan: RunPlan, started: datetime.datetime, status: RunState, fields: dict, extra: dict) -> RunOutcome:
    """Write summary.json (atomically) from what the run produced; the outcome the caller returns.

    `fields` are the trainer's (or an experiment's) RunSummary fields, `extra` what ended the run;
    a trainer's fields carry steps_to_target: it tracked the target (None there: never reached)."""
    summary = RunSummary(
        status=status, target_metric=plan.suite.target_metric, target_value=plan.config["target_value"],
        started=started.isoformat(timespec="seconds"), finished=now().isoformat(timespec="seconds"),
        target_recorded="steps_to_target" in fields, **fields, **extra)
    write_summary(plan.run_dir, summary)
    return RunOutcome(plan.run_dir, status, summary.to_json())


@contextlib.contextmanager
def intra_op_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count for the run (part of its identity: results depend on it)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _run_experiment(plan: RunPlan, device: torch.device) -> tuple[RunState, dict]:
    """An ExperimentSuite's run: (status, summary fields); 'diverged' when every unit diverged."""
    run_dir, spec, resolved = plan.run_dir, plan.spec, plan.resolved
    log = MetricsLog(run_dir / METRICS_FILE)
    progress = Progress(0, f"{plan.suite.name}/{spec.name}", unit="unit", enabled=plan.request.progress)
    # On resume the clock continues from the last record of the earlier sessions: 'time' stays
    # monotonic and wall_time counts the work they kept (work after their last record is redone).
    earlier = max((float(r["time"]) for r in read_metrics(run_dir) if isinstance(r.get("time"), (int, float))),
                  default=0.0)
    started = datetime.datetime.now().timestamp() - earlier

    def make_optimizer(params, policy=None, **overrides):
        hp = {**resolved.hyperparameters, **overrides}
        return create(spec.name, params, policy=policy or resolved.policy, **hp)

    def log_record(record: dict) -> None:
        log.append({**record, "time": datetime.datetime.now().timestamp() - started})

    def done_units() -> set[str]:
        return {str(r["unit"]) for r in read_metrics(run_dir) if "unit" in r}

    ctx = RunContext(
        config=resolved.suite_config, seed=plan.request.seed, device=device, cache_dir=cache_dir(plan),
        run_dir=str(run_dir), optimizer_name=spec.name, hyperparameters=resolved.hyperparameters,
        policy=resolved.policy, spec=spec, make_optimizer=make_optimizer, log=log_record, done_units=done_units,
        set_total_units=progress.set_total, progress=lambda n=1: progress.update(n),
    )
    try:
        final = dict(plan.suite.run(ctx) or {})
    finally:
        progress.close()
        log.close()
    fields = {"final_metrics": final, "wall_time": datetime.datetime.now().timestamp() - started}
    return (RunState.DIVERGED if plan.suite.all_diverged(final) else RunState.COMPLETED), fields
