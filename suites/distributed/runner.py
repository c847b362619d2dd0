"""One run under DeepSpeed, executed by every rank of a launch; rank 0 owns the run directory.

Every rank builds the task and trains its share; only rank 0 takes the run lock and writes
config.json, metrics.jsonl and summary.json. Decisions that depend on the run directory (already
finished? locked?) are made by rank 0 and broadcast, so every rank acts alike.

Failures: a rank that fails writes failures/rank-<r>.json (error and traceback, tagged with this
launch's session id) before it exits; rank 0 puts every record of the session into the summary
("rank_failures") and marks the run failed. When a launcher stops rank 0 because another rank
died (SIGTERM), rank 0 still writes that summary; a SIGTERM with no failure recorded (a job
scheduler stopping the job) leaves the run unfinished and resumable, like Ctrl-C.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import signal
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed

from ..base import BuildContext
from ..config import ConfigError
from ..engine import RunOutcome, RunRequest, SuiteInputError, finish_run
from ..environment import environment
from ..run_dir import (FINISHED_STATUSES, RunLockedError, atomic_write_json, atomic_write_text, read_json,
                       read_summary, run_lock)
from ..trainer import Diverged, seed_everything
from .ds_config import deepspeed_settings, with_batch, zero_stage
from .launch import ProcessGroup, broadcast_from_main, join_process_group
from .support import check_supported, optimizer_view, probe_optimizer
from .trainer import DeepSpeedTrainer, check_resumable, latest_checkpoint_meta


class LauncherStopped(KeyboardInterrupt):
    """The launcher sent SIGTERM (it does so to every rank when one rank dies); like Ctrl-C otherwise."""


def execute_distributed_run(request: RunRequest, suite: Any, spec: Any, resolved: Any, run_dir: Path,
                            config: dict) -> RunOutcome:
    """Run (or resume, or skip) one run on this rank of a DeepSpeed launch."""
    if suite.kind != "training":
        raise ConfigError(f"--deepspeed applies to training suites; '{suite.name}' is an experiment suite "
                          "(it runs its own small units): run it without --deepspeed")
    precision = resolved.suite_config["precision"]
    settings = deepspeed_settings(request.deepspeed, precision)
    check_supported(spec, probe_optimizer(spec, resolved.hyperparameters, resolved.policy), settings, precision)
    group = join_process_group(request.device)
    summary = broadcast_from_main(read_summary(run_dir) if group.is_main else None)
    if summary and summary.get("status") in FINISHED_STATUSES:
        return RunOutcome(run_dir, summary["status"], summary, skipped=True)
    fresh = broadcast_from_main(not run_dir.exists() if group.is_main else None)
    check_resumable(broadcast_from_main(latest_checkpoint_meta(run_dir) if group.is_main else None),
                    zero_stage(settings), group.world_size)
    try:
        with _lock_on_main(run_dir, group):
            return _execute(request, suite, spec, resolved, run_dir, config, group, settings)
    except SuiteInputError:
        if fresh and group.is_main:  # bad input found before training: leave nothing behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _execute(request, suite, spec, resolved, run_dir: Path, config: dict, group: ProcessGroup,
             settings: dict) -> RunOutcome:
    session = broadcast_from_main(uuid.uuid4().hex)
    started = datetime.datetime.now(datetime.timezone.utc)
    with _TerminationGuard() as guard:
        return _execute_guarded(request, suite, spec, resolved, run_dir, config, group, settings, session,
                                started, guard)


def _execute_guarded(request, suite, spec, resolved, run_dir: Path, config: dict, group: ProcessGroup,
                     settings: dict, session: str, started: datetime.datetime, guard) -> RunOutcome:
    status, fields, extra = "failed", {}, {}
    try:
        status, fields, extra = _train(request, suite, spec, resolved, run_dir, config, group, settings)
        guard.training_over()  # from here on a SIGTERM waits: the summary must be written whole
    except LauncherStopped:
        if not (group.is_main and _rank_failures(run_dir, session)):
            raise  # stopped from outside: leave the run resumable
    except (SuiteInputError, ConfigError, KeyboardInterrupt):
        raise  # bad input (exit 2) or an interruption: no summary, the checkpoint stays
    except Exception as exc:  # noqa: BLE001 - every failure of a rank is recorded, then reported
        guard.training_over()
        _write_rank_failure(run_dir, session, group.rank, f"{type(exc).__name__}: {exc}",
                            traceback.format_exc(limit=20))
        if not group.is_main:
            raise  # the launcher reports it and stops the other ranks
    if not group.is_main:
        return RunOutcome(run_dir, status, {"status": status, **fields, **extra})
    failures = _rank_failures(run_dir, session)
    if failures:  # the earliest is the cause; the others (a peer's broken connection) follow from it
        status = "failed"
        extra = {"error": f"rank {failures[0]['rank']}: {failures[0]['error']}",
                 "traceback": failures[0]["traceback"], "rank_failures": failures}
    return finish_run(run_dir, suite, config, started, status, fields, extra)


def _train(request, suite, spec, resolved, run_dir: Path, config: dict, group: ProcessGroup,
           settings: dict) -> tuple[str, dict, dict]:
    """Build and train on this rank: (status, summary fields, extra summary entries)."""
    seed_everything(request.seed)  # the same on every rank: the task is built alike everywhere
    ctx = BuildContext(config=resolved.suite_config, seed=request.seed, device=group.device,
                       cache_dir=str(Path(request.results_root) / "_cache"), optimizer_name=spec.name,
                       world_size=group.world_size, rank=group.rank)
    task = _build_on_main_first(suite, ctx, group)
    _check_same_data(task, group)
    ds_config = with_batch(settings, global_batch=task.global_batch_size, micro_batch=task.micro_batch_size,
                           world_size=group.world_size)
    if group.is_main and read_json(run_dir / "config.json") is None:
        atomic_write_json(run_dir / "config.json", _recorded_config(config, group, ds_config))
    trainer = DeepSpeedTrainer(group=group, ds_config=ds_config, seed=request.seed, suite=suite, task=task,
                               spec=spec, hyperparameters=resolved.hyperparameters, policy=resolved.policy,
                               config=resolved.suite_config, run_dir=run_dir, device=group.device,
                               target_value=config["target_value"], progress=request.progress)
    try:
        return "completed", trainer.run(), {}
    except Diverged as exc:  # every rank sees the same summed loss and parameters: all stop here
        return "diverged", trainer.summary_fields(), {"diverged_step": exc.step, "error": str(exc)}
    finally:
        trainer.close()
        destroy = getattr(trainer.engine, "destroy", None)
        if destroy is not None:
            destroy()


def _build_on_main_first(suite: Any, ctx: BuildContext, group: ProcessGroup):
    """Rank 0 builds first (it fills the shared cache: corpus, tokenizer), then the other ranks;
    input the suite rejects on rank 0 is reported by every rank alike."""
    task, error = None, None
    if group.is_main:
        try:
            task = suite.build(ctx)
        except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
            error = str(exc)
    error = broadcast_from_main(error)  # also keeps the other ranks waiting for the cache
    try:
        if error is None and task is None:
            task = suite.build(ctx)
    except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
        error = str(exc)
    if error is not None:
        raise SuiteInputError(f"suite '{suite.name}' rejected its input: {error}")
    return task


def _check_same_data(task: Any, group: ProcessGroup) -> None:
    """Every rank must cut its share from the same global batches (a node with its own corpus or
    tokenizer cache would not): compare a digest of the first batch across ranks."""
    if group.world_size == 1:
        return
    stream = task.train_batches(0)
    try:
        digest = _digest(next(iter(stream)))
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    digests = [None] * group.world_size
    torch.distributed.all_gather_object(digests, digest)
    if len(set(digests)) > 1:
        differing = [rank for rank, d in enumerate(digests) if d != digests[0]]
        raise ConfigError(f"ranks {differing} built other training batches than rank 0: the suite's data or its "
                          "cache (corpus, tokenizer; under --results/_cache) differs between nodes; put --results "
                          "on a filesystem every node shares")


def _digest(batch: Any) -> str:
    sha = hashlib.sha256()
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else [batch]
    for value in values:
        if isinstance(value, torch.Tensor):
            sha.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def _recorded_config(config: dict, group: ProcessGroup, ds_config: dict) -> dict:
    return {
        **config,
        "device": str(group.device),
        "world_size": group.world_size,
        "distributed": {"backend": group.backend, "world_size": group.world_size,
                        "zero_stage": ds_config["zero_optimization"]["stage"],
                        "optimizer_view": optimizer_view(ds_config), "deepspeed_config": ds_config},
        "environment": environment(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


@contextlib.contextmanager
def _lock_on_main(run_dir: Path, group: ProcessGroup) -> Iterator[None]:
    """Rank 0 holds the run lock; every rank learns whether it got it."""
    with contextlib.ExitStack() as stack:
        error = None
        if group.is_main:
            try:
                stack.enter_context(run_lock(run_dir))
            except RunLockedError as exc:
                error = str(exc)
        error = broadcast_from_main(error)
        if error:
            raise RunLockedError(error)
        yield


class _TerminationGuard:
    """SIGTERM raises LauncherStopped while training; after that it only waits for the summary."""

    def __init__(self) -> None:
        self.training = True
        self.previous = None

    def _handle(self, signum, frame) -> None:
        if self.training:
            self.training = False  # once
            raise LauncherStopped("SIGTERM")

    def training_over(self) -> None:
        self.training = False

    def __enter__(self) -> "_TerminationGuard":
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _write_rank_failure(run_dir: Path, session: str, rank: int, error: str, trace: str) -> None:
    record = {"session": session, "rank": rank, "host": os.uname().nodename, "time": time.time(), "error": error,
              "traceback": trace}
    atomic_write_text(Path(run_dir) / "failures" / f"rank-{rank}.json", json.dumps(record, indent=2) + "\n")


def _rank_failures(run_dir: Path, session: str) -> list[dict]:
    folder = Path(run_dir) / "failures"
    records = [read_json(path) for path in sorted(folder.glob("rank-*.json"))] if folder.is_dir() else []
    return sorted((r for r in records if r and r.get("session") == session), key=lambda r: r.get("time", 0.0))
