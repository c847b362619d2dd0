"""One run = (suite, preset, optimizer, hyperparameters, seed) -> one run directory.

`execute_run` resolves the configuration, skips a run that already finished, resumes one that did
not, and always leaves a summary: completed, diverged (with the step) or failed (with the error).
Bad input (unknown names, bad --set values, a missing data path) raises before a run directory is
left behind, so the CLI can exit with status 2 and nothing half-made stays on disk.
"""

from __future__ import annotations

import datetime
import shutil
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nightbench.optimizers import create, get_spec, load_optimizer_file

from .base import BuildContext, RunContext
from .catalog import get_suite
from .config import ConfigError, resolve_config
from .environment import environment
from .progress import Progress
from .run_dir import (
    FINISHED_STATUSES,
    MetricsLog,
    atomic_write_json,
    read_json,
    read_metrics,
    read_summary,
    run_lock,
    run_name,
    run_path,
)
from .trainer import Diverged, Trainer, seed_everything

PROTOCOLS = ("default", "tuning", "final")


class SuiteInputError(ValueError):
    """The suite rejected its input (data path, tokenizer, corpus size) before training started."""


@dataclass
class RunRequest:
    suite: str
    optimizer: str
    preset: str = "small"
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    results_root: str = "results"
    device: str | None = None  # None: cuda when available, else cpu
    protocol: str = "default"  # default | tuning | final (which leaderboard protocol produced it)
    optimizer_files: list[str] = field(default_factory=list)
    progress: bool = True
    deepspeed: Any = None  # a distributed.DeepSpeedOptions: run under DeepSpeed (any launcher, any world size)


@dataclass
class RunOutcome:
    run_dir: Path
    status: str
    summary: dict
    skipped: bool = False  # True when the run had already finished and nothing was done


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"invalid --device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but no CUDA device is available; use --device cpu")
    return device


def plan_run(request: RunRequest) -> tuple[Any, Any, Any, Path, dict]:
    """Resolve everything a run needs without touching the disk: (suite, spec, resolved, run_dir, config)."""
    if request.protocol not in PROTOCOLS:
        raise ConfigError(f"invalid protocol {request.protocol!r}: expected one of {PROTOCOLS}")
    if not isinstance(request.seed, int) or request.seed < 0:
        raise ConfigError(f"invalid seed {request.seed!r}: expected a non-negative integer")
    for path in request.optimizer_files:
        load_optimizer_file(path)
    suite = get_suite(request.suite)
    spec = get_spec(request.optimizer)
    resolved = resolve_config(suite, request.preset, spec, request.overrides)
    identity = {
        "suite": suite.name, "preset": request.preset, "optimizer": spec.name,
        "hyperparameters": resolved.hyperparameters, "policy": resolved.policy.to_dict(),
        "suite_config": resolved.suite_config, "seed": request.seed,
    }
    name = run_name(request.protocol, resolved.hyperparameters, identity, request.seed)
    run_dir = run_path(request.results_root, suite.name, request.preset, spec.name, name)
    config = {
        **identity,
        "run_name": name,
        "protocol": request.protocol,
        "overrides": resolved.overrides,
        "optimizer_spec": spec.to_dict(),
        "suite_kind": suite.kind,
        "suite_description": suite.description,
        "target_metric": suite.target_metric,
        "higher_is_better": suite.higher_is_better,
        "target_value": suite.target_values.get(request.preset),
        "world_size": 1,
    }
    return suite, spec, resolved, run_dir, config


def execute_run(request: RunRequest) -> RunOutcome:
    """Run (or resume, or skip) one run; never overwrites a finished one."""
    suite, spec, resolved, run_dir, config = plan_run(request)
    if request.deepspeed is not None:
        from .distributed.runner import execute_distributed_run

        return execute_distributed_run(request, suite, spec, resolved, run_dir, config)
    if (run_dir / "deepspeed").is_dir() and read_summary(run_dir) is None:
        raise ConfigError(f"{run_dir} holds an unfinished run started with --deepspeed; resume it with --deepspeed")
    summary = read_summary(run_dir)
    if summary and summary.get("status") in FINISHED_STATUSES:
        return RunOutcome(run_dir, summary["status"], summary, skipped=True)
    device = resolve_device(request.device)
    fresh = not run_dir.exists()
    try:
        with run_lock(run_dir):
            return _execute_locked(request, suite, spec, resolved, run_dir, config, device)
    except SuiteInputError:
        if fresh:  # bad input found before training: leave nothing behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _execute_locked(request, suite, spec, resolved, run_dir: Path, config: dict, device) -> RunOutcome:
    config = {**config, "device": str(device), "environment": environment(),
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    previous = read_json(run_dir / "config.json")
    if previous is None:
        atomic_write_json(run_dir / "config.json", config)
    cache_dir = str(Path(request.results_root) / "_cache")
    seed_everything(request.seed)
    started = datetime.datetime.now(datetime.timezone.utc)
    fields: dict = {}
    try:
        if suite.kind == "training":
            fields = _run_training(request, suite, spec, resolved, run_dir, config, device, cache_dir)
        else:
            fields = _run_experiment(request, suite, spec, resolved, run_dir, device, cache_dir)
        status, extra = "completed", {}
    except SuiteInputError:
        raise
    except Diverged as exc:
        status, extra = "diverged", {"diverged_step": exc.step, "error": str(exc)}
        fields = getattr(exc, "summary_fields", {}) or fields
    except KeyboardInterrupt:
        raise  # leave the run resumable: no summary, the checkpoint stays
    except Exception as exc:  # a failed run is recorded; the caller (leaderboard) goes on
        status = "failed"
        extra = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=20)}
    return finish_run(run_dir, suite, config, started, status, fields, extra)


def finish_run(run_dir: Path, suite, config: dict, started: datetime.datetime, status: str, fields: dict,
               extra: dict) -> RunOutcome:
    """Write summary.json (atomically) from what the run produced; the outcome the caller returns."""
    summary = {
        "status": status,
        "diverged_step": None,
        "error": None,
        "final_metrics": {},
        "target_metric": suite.target_metric,
        "target_value": config["target_value"],
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **fields,
        **extra,
    }
    atomic_write_json(run_dir / "summary.json", summary)
    return RunOutcome(run_dir, status, summary)


def _run_training(request, suite, spec, resolved, run_dir, config, device, cache_dir) -> dict:
    ctx = BuildContext(config=resolved.suite_config, seed=request.seed, device=device, cache_dir=cache_dir,
                       optimizer_name=spec.name)
    try:
        task = suite.build(ctx)
    except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
        raise SuiteInputError(f"suite '{suite.name}' rejected its input: {exc}") from exc
    trainer = Trainer(suite=suite, task=task, spec=spec, hyperparameters=resolved.hyperparameters,
                      policy=resolved.policy, config=resolved.suite_config, run_dir=run_dir, device=device,
                      target_value=config["target_value"], progress=request.progress)
    try:
        return trainer.run()
    except Diverged as exc:
        exc.summary_fields = trainer.summary_fields()
        raise
    finally:
        trainer.close()


def _run_experiment(request, suite, spec, resolved, run_dir, device, cache_dir) -> dict:
    log = MetricsLog(run_dir / "metrics.jsonl")
    progress = Progress(0, f"{suite.name}/{spec.name}", unit="unit", enabled=request.progress)
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
        config=resolved.suite_config, seed=request.seed, device=device, cache_dir=cache_dir, run_dir=str(run_dir),
        optimizer_name=spec.name, hyperparameters=resolved.hyperparameters, policy=resolved.policy, spec=spec,
        make_optimizer=make_optimizer, log=log_record, done_units=done_units,
        set_total_units=progress.set_total, progress=lambda n=1: progress.update(n),
    )
    try:
        final = suite.run(ctx)
    finally:
        progress.close()
        log.close()
    return {"final_metrics": dict(final or {}), "wall_time": datetime.datetime.now().timestamp() - started}
