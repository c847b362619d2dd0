"""One run under DeepSpeed: what every rank of a launch does differently from one process.

The lifecycle is the engine's (`engine.run_lifecycle`) and the training loop the Trainer's; this
Host supplies only what differs. Every rank builds the task and trains its share; only rank 0
takes the run lock and writes config.json, metrics.jsonl and summary.json. Decisions that depend
on the run directory (already finished? locked?) are made by rank 0 and broadcast, so every rank
acts alike.

Training: each of the W ranks takes its contiguous 1/W share of every global batch (the suite's)
and runs the Trainer's accumulation on it (micro-batch loss SUM / (count of the whole global batch
/ W)) through a DeepSpeed engine, which averages gradients over the ranks: the update is that of
the global batch-mean loss, as in one process. The logged loss is summed over the ranks.
Checkpoints go through DeepSpeed's API (checkpoints.py).

Failures: a rank that fails writes failures/rank-<r>.json (error and traceback, tagged with this
launch's session id) before it exits; rank 0 puts every record of the session into the summary
("rank_failures") and marks the run failed. When a launcher stops rank 0 because another rank
died (SIGTERM), rank 0 still writes that summary; a SIGTERM with no failure recorded (a job
scheduler stopping the job) leaves the run unfinished and resumable, like Ctrl-C.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed

from ..base import BuildContext, TrainingSuite, TrainingTask
from ..batching import split_batch
from ..config import ConfigError
from ..engine import HOSTS, SUITE_INPUT_EXCEPTIONS, Host, SuiteInputError
from ..outcomes import RunState
from ..plan import RunPlan
from ..run_dir import RunLockedError, atomic_write_text, read_json, run_lock
from ..training_host import seed_everything
from . import checkpoints
from .checkpoints import check_resumable, latest_checkpoint_meta, rank_seed
from .ds_config import DeepSpeedOptions, deepspeed_settings, with_batch, zero_stage
from .launch import ProcessGroup, all_reduce_sum, broadcast_from_main, join_process_group
from .support import check_supported, optimizer_view, probe_optimizer
from .zero_pieces import ZeroPieces


class LauncherStopped(KeyboardInterrupt):
    """The launcher sent SIGTERM (it does so to every rank when one rank dies); like Ctrl-C otherwise."""


class DeepSpeedHost(Host):
    """This rank of a DeepSpeed launch (any launcher, any world size, a group of one without one)."""

    def __init__(self, plan: RunPlan):
        if not isinstance(plan.suite, TrainingSuite):
            raise ConfigError(f"--deepspeed applies to training suites; '{plan.suite.name}' is an experiment suite "
                              "(it runs its own small units): run it without --deepspeed")
        resolved = plan.resolved
        precision = resolved.suite_config["precision"]
        self.settings = deepspeed_settings(plan.request.deepspeed, precision)
        check_supported(plan.spec, probe_optimizer(plan.spec, resolved.hyperparameters, resolved.policy),
                        self.settings, precision)
        self.plan = plan
        self.group: ProcessGroup = join_process_group(plan.request.device)
        self.device = self.group.device
        self.rank, self.world_size, self.is_main = self.group.rank, self.group.world_size, self.group.is_main
        self.session = broadcast_from_main(uuid.uuid4().hex)
        self.ds_config: dict | None = None

    def check(self) -> None:
        meta = self.share(latest_checkpoint_meta(self.plan.run_dir) if self.is_main else None)
        check_resumable(meta, zero_stage(self.settings), self.world_size)

    def share(self, value: Any) -> Any:
        return broadcast_from_main(value)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Rank 0 holds the run lock; every rank learns whether it got it."""
        with contextlib.ExitStack() as stack:
            error = None
            if self.is_main:
                try:
                    stack.enter_context(run_lock(self.plan.run_dir))
                except RunLockedError as exc:
                    error = str(exc)
            error = broadcast_from_main(error)
            if error:
                raise RunLockedError(error)
            yield

    def guard(self) -> contextlib.AbstractContextManager:
        return _TerminationGuard()

    def build_task(self, suite: TrainingSuite, ctx: BuildContext) -> TrainingTask:
        """Rank 0 builds first (it fills the shared cache: corpus, tokenizer), then the other ranks;
        input the suite rejects on rank 0 is reported by every rank alike."""
        task, error = None, None
        if self.is_main:
            try:
                task = suite.build(ctx)
            except SUITE_INPUT_EXCEPTIONS as exc:
                error = str(exc)
        error = broadcast_from_main(error)  # also keeps the other ranks waiting for the cache
        try:
            if error is None and task is None:
                task = suite.build(ctx)
        except SUITE_INPUT_EXCEPTIONS as exc:
            error = str(exc)
        if error is not None:
            raise SuiteInputError(f"suite '{suite.name}' rejected its input: {error}")
        _check_same_data(task, self.group)
        self.ds_config = with_batch(self.settings, global_batch=task.global_batch_size,
                                    micro_batch=task.micro_batch_size, world_size=self.world_size)
        return task

    def recorded_config(self) -> dict:
        config = super().recorded_config()
        if self.ds_config is not None:  # None when the run failed before its task was built
            config["distributed"] = {"backend": self.group.backend, "world_size": self.world_size,
                                     "zero_stage": self.ds_config["zero_optimization"]["stage"],
                                     "optimizer_view": optimizer_view(self.ds_config),
                                     "deepspeed_config": self.ds_config}
        return config

    def keeps_going_after(self, exc: BaseException) -> bool:
        _write_rank_failure(self.plan.run_dir, self.session, self.rank, f"{type(exc).__name__}: {exc}",
                            traceback.format_exc(limit=20))
        return self.is_main  # other ranks raise: the launcher reports it and stops the rest

    def stopped_for_a_failure(self, exc: KeyboardInterrupt) -> bool:
        return isinstance(exc, LauncherStopped) and self.is_main and bool(self._failures())

    def final_status(self, status: RunState, extra: dict) -> tuple[RunState, dict]:
        failures = self._failures() if self.is_main else []
        if not failures:
            return status, extra
        # the earliest is the cause; the others (a peer's broken connection) follow from it
        return RunState.FAILED, {"error": f"rank {failures[0]['rank']}: {failures[0]['error']}",
                          "traceback": failures[0]["traceback"], "rank_failures": failures}

    def _failures(self) -> list[dict]:
        folder = Path(self.plan.run_dir) / "failures"
        records = [read_json(path) for path in sorted(folder.glob("rank-*.json"))] if folder.is_dir() else []
        return sorted((r for r in records if r and r.get("session") == self.session),
                      key=lambda r: r.get("time", 0.0))

    # --- what the Trainer asks of this rank: its steps and checkpoints through a DeepSpeed engine ---
    def attach(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Wrap the Trainer's model and the registry's optimizer in a DeepSpeed engine."""
        import deepspeed

        super().attach(model, optimizer)
        self.view = optimizer_view(self.ds_config)
        self.engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=self.ds_config)
        self._check_wrapper()
        self.pieces = ZeroPieces(self.engine.optimizer, optimizer, self.device) if self.view == "zero12" else None
        if self.rank > 0:
            seed_everything(rank_seed(self.plan.request.seed, self.rank, 0))

    def _check_wrapper(self) -> None:
        wrapper = type(self.engine.optimizer).__name__
        expected = {"whole": type(self.optimizer).__name__, "zero12": "DeepSpeedZeroOptimizer"}.get(self.view)
        if expected is not None and wrapper != expected:
            raise RuntimeError(f"DeepSpeed wrapped the optimizer in {wrapper}, not {expected} as nightbench expects "
                               f"for this configuration ({self.view}); its per-layer norms would not be exact")

    def local_share(self, batch: Any) -> Any:
        return split_batch(batch, self.world_size)[self.rank]

    def before_micro_batch(self, last: bool) -> None:
        self.engine.set_gradient_accumulation_boundary(last)

    def forward_module(self) -> torch.nn.Module:
        return self.engine

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)  # the loss is already scaled for accumulation

    def optimizer_step(self, closure=None) -> None:
        self.engine.step()  # DeepSpeed steps without a closure: two-gradient optimizers are refused

    def sum_over_processes(self, loss: torch.Tensor) -> torch.Tensor:
        return all_reduce_sum(loss)

    def optimizer_weights_moved(self) -> None:
        if self.view == "zero12":  # the model's tensors are copies of the partitions: refresh, all-gather
            self.engine.optimizer.update_lp_params()

    def save_checkpoint(self, run_dir: Path, step: int, trainer_state: dict) -> None:
        checkpoints.save(self.engine, run_dir, self.group, step, trainer_state,
                         meta={"zero_stage": zero_stage(self.ds_config), "optimizer_view": self.view})

    def drop_fallback_checkpoint(self, run_dir: Path) -> None:
        checkpoints.drop_fallback(run_dir)

    def load_checkpoint(self, run_dir: Path) -> dict | None:
        return checkpoints.load(self.engine, run_dir, self.group, zero_stage(self.ds_config), self.plan.request.seed)


def _check_same_data(task: TrainingTask, group: ProcessGroup) -> None:
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


HOSTS[DeepSpeedOptions] = DeepSpeedHost  # the engine runs a request with DeepSpeed options through this host
