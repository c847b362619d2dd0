"""The training loop for TrainingSuites: one run, from its last checkpoint to its step budget.

What the loop asks of the optimizer's registry entry (no suite or loop mentions an optimizer by name):
  gradients_per_step == 2  each global batch is split into two disjoint halves; the optimizer's
                           step(closure) calls the closure twice, once per half.
  needs_eval_swap          evaluation runs inside evaluation_weights(optimizer), i.e. at w_t.
Gradient accumulation: a (half-)batch is cut into micro-batches of task.micro_batch_size; each
micro-batch's loss SUM is divided by the whole (half-)batch's count, so accumulation is exact.
What differs between one process and a rank of a DeepSpeed launch (the batch share, backward and
step, the sum over processes, checkpoints, the log) is asked of the run's host (training_host.py).
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import torch

from nightbench.optimizers import OptimizerSpec, build_scheduler, create, evaluation_weights
from nightbench.optimizers.finite import finite_flag

from .base import TrainingTask
from .batching import micro_batches, split_batch, to_device
from .layout import METRICS_FILE
from .progress import Progress
from .training_host import TrainingHost


class Diverged(Exception):
    """The loss or a parameter became NaN or infinite."""

    def __init__(self, step: int, what: str):
        super().__init__(f"{what} is not finite at step {step}")
        self.step = step


@dataclass
class IntervalStats:
    """The logging interval in progress: sums over its steps, flushed into one 'train' record."""

    steps: int = 0
    time: float = 0.0
    loss: float = 0.0
    data: float = 0.0

    def add(self, step_time: float, loss: float, data_wait: float) -> None:
        self.steps += 1
        self.time += step_time
        self.loss += loss
        self.data += data_wait

    def flush(self) -> dict[str, float]:
        """The interval's means (loss, step_time, data_wait); the interval starts again empty."""
        means = {"loss": self.loss / self.steps, "step_time": self.time / self.steps, "data_wait": self.data / self.steps}
        self.steps, self.time, self.loss, self.data = 0, 0.0, 0.0, 0.0
        return means


@dataclass
class TrainingState:
    """Bookkeeping that must survive a resume (saved in every checkpoint)."""

    step: int = 0
    elapsed: float = 0.0  # wall seconds spent in earlier sessions of this run
    step_time_total: float = 0.0
    data_wait_total: float = 0.0
    interval_step_times: list[float] = field(default_factory=list)  # per-logging-interval mean step times
    steps_to_target: int | None = None
    time_to_target: float | None = None
    last_eval: dict[str, float] = field(default_factory=dict)
    # The logging interval in progress, so that a resumed run's first 'train' record averages the
    # same steps an uninterrupted run's does (a checkpoint can fall inside an interval).
    interval: IntervalStats = field(default_factory=IntervalStats)

    def add_step(self, step_time: float, loss: float, data_wait: float) -> None:
        """Count a finished step's time, loss and data wait (the step itself is already counted)."""
        self.step_time_total += step_time
        self.data_wait_total += data_wait
        self.interval.add(step_time, loss, data_wait)

    def to_dict(self) -> dict:
        """Plain values for a checkpoint; the interval is saved flat (interval_steps, ...), as it always was."""
        saved = {key: value for key, value in self.__dict__.items() if key != "interval"}
        return {**saved, **{f"interval_{f.name}": getattr(self.interval, f.name) for f in fields(IntervalStats)}}

    @classmethod
    def from_dict(cls, saved: dict) -> TrainingState:
        saved = dict(saved)
        interval = {f.name: saved.pop(f"interval_{f.name}") for f in fields(IntervalStats) if f"interval_{f.name}" in saved}
        return cls(**saved, interval=IntervalStats(**interval))


class Trainer:
    """Runs one TrainingTask with one optimizer, writing to one run directory; `host` does what
    differs between one process and a rank of a DeepSpeed launch (see TrainingHost)."""

    def __init__(self, *, host: TrainingHost, suite: Any, task: TrainingTask, spec: OptimizerSpec,
                 hyperparameters: dict, policy: Any, config: dict, run_dir: Path,
                 target_value: float | None, progress: bool = True):
        self.host, self.suite, self.task, self.spec = host, suite, task, spec
        self.config, self.run_dir, self.device = config, Path(run_dir), host.device
        self.target_value = target_value
        self.model = task.model.to(self.device)
        self.optimizer = create(spec.name, self.model, policy=policy, **hyperparameters)
        self.scheduler = build_scheduler(self.optimizer, suite.schedule(spec.name, config, task))
        per_process = task.global_batch_size // host.world_size
        if task.global_batch_size % host.world_size or per_process < spec.gradients_per_step:
            raise ValueError(
                f"global batch {task.global_batch_size} cannot be shared by {host.world_size} processes "
                f"with {spec.gradients_per_step} gradient(s) per step"
            )
        self.log = host.open_log(self.run_dir / METRICS_FILE)
        self.state = TrainingState()
        self.show_progress = progress and host.is_main
        self.autocast = config.get("precision") == "bf16"
        self._session_start = time.monotonic()
        host.attach(self.model, self.optimizer)

    # --- checkpoints -------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.state.elapsed + (time.monotonic() - self._session_start)

    def save_checkpoint(self) -> None:
        self.host.save_checkpoint(self.run_dir, self.state.step, {
            "scheduler": self.scheduler.state_dict(),
            "state": {**self.state.to_dict(), "elapsed": self.elapsed()},
            "metrics_offset": self.log.offset(),  # this checkpoint's own: a resume from it replays what follows
        })

    def load_checkpoint(self) -> bool:
        """Resume from the newest checkpoint that loads safely; False: start again."""
        saved = self.host.load_checkpoint(self.run_dir)
        if saved is None:
            self.log.truncate(0)  # records from a session that never checkpointed are replayed
            return False
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state = TrainingState.from_dict(saved["state"])
        self.log.truncate(saved["metrics_offset"])
        self._session_start = time.monotonic()
        return True

    # --- one step ----------------------------------------------------------------------------
    # Accumulation is written once, here; the host supplies this process's share of the batch,
    # the module called, backward, the optimizer step and the sum over processes.
    def _accumulate(self, batch: Any) -> torch.Tensor:
        """Forward/backward over this process's micro-batches; the gradient is that of the batch-mean
        loss over all processes. Returns the batch-mean loss (float64, on the device, summed over processes)."""
        host = self.host
        total = self.task.count(batch)
        if total <= 0:
            raise ValueError("a training batch has no loss terms (count(batch) == 0)")
        pieces = micro_batches(host.local_share(batch), self.task.micro_batch_size)
        per_process_total = total / host.world_size  # gradients are averaged over processes: this makes it a sum
        loss = torch.zeros((), dtype=torch.float64, device=self.device)
        for index, micro in enumerate(pieces):
            host.before_micro_batch(last=index == len(pieces) - 1)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                loss_sum, _ = self.task.loss(host.forward_module(), micro)
            host.backward(loss_sum / per_process_total)
            loss += loss_sum.detach().double() / total
        return host.sum_over_processes(loss)

    def train_step(self, batch: Any) -> torch.Tensor:
        """One optimizer step on one global batch; returns the loss as a device tensor (no host read)."""
        if self.spec.gradients_per_step == 2:
            halves = iter(split_batch(batch, 2))
            losses = []

            def closure():
                self.optimizer.zero_grad(set_to_none=True)
                losses.append(self._accumulate(next(halves)))
                return losses[-1]

            self.host.optimizer_step(closure)
            loss = losses[0]
        else:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._accumulate(batch)
            self.host.optimizer_step()
        self.scheduler.step()
        return loss

    def _timed_step(self, batches: Iterator[Any], parameters: list[torch.Tensor]) -> tuple[float, float, float]:
        """One step on the next batch, counted in the state: (loss, step time, data wait) in seconds.
        Raises Diverged when the loss or a parameter is no longer finite."""
        t0 = time.perf_counter()
        batch = next(batches)
        data_wait = time.perf_counter() - t0
        loss_tensor = self.train_step(to_device(batch, self.device))
        # The step's one host read: the loss and whether loss and parameters are finite.
        # It also waits for the device, so the clock below times the whole step on a GPU.
        everything_finite = finite_flag(parameters) & torch.isfinite(loss_tensor)
        loss, finite = torch.stack([loss_tensor, everything_finite.double()]).tolist()
        step_time = time.perf_counter() - t0
        self.state.step += 1
        if not finite:
            raise Diverged(self.state.step, "the training loss" if not math.isfinite(loss) else "a parameter")
        return loss, step_time, data_wait

    # --- evaluation --------------------------------------------------------------------------
    def evaluate(self, step: int) -> dict[str, float]:
        self.model.eval()
        with self._evaluation_weights(), torch.no_grad():
            self._weights_swapped()
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                metrics = {k: float(v) for k, v in self.task.evaluate(self.model).items()}
        self._weights_swapped()  # back to the training weights
        self.model.train()
        self.log.append({"kind": "eval", "step": step, "time": self.elapsed(), **metrics})
        self.state.last_eval = metrics
        self._track_target(step, metrics)
        return metrics

    def _evaluation_weights(self):
        """Context in which the optimizer holds the weights to evaluate (w_t for swap-needing optimizers).
        The registry's declaration decides, not whether the optimizer happens to have eval()/train()."""
        return evaluation_weights(self.optimizer) if self.spec.needs_eval_swap else contextlib.nullcontext()

    def _weights_swapped(self) -> None:
        """After the optimizer swaps its weights, the host brings the model along (where it holds copies)."""
        if self.spec.needs_eval_swap:
            self.host.optimizer_weights_moved()

    def _track_target(self, step: int, metrics: dict) -> None:
        if self.target_value is None or self.state.steps_to_target is not None:
            return
        value = metrics.get(self.suite.target_metric)
        if value is None or not math.isfinite(value):
            return
        reached = value >= self.target_value if self.suite.higher_is_better else value <= self.target_value
        if reached:
            self.state.steps_to_target, self.state.time_to_target = step, self.elapsed()

    # --- the loop ----------------------------------------------------------------------------
    def run(self) -> dict:
        """Train to the step budget; returns the summary fields (raises Diverged on NaN/inf)."""
        resumed = self.load_checkpoint()  # replaces self.state: take `state` only after it
        task, state = self.task, self.state
        log_every = max(1, int(self.config.get("log_every", 10)))
        checkpoint_every = int(self.config.get("checkpoint_every", 0)) or task.eval_every
        progress = Progress(task.total_steps, f"{self.suite.name}/{self.spec.name}", initial=state.step,
                            enabled=self.show_progress)
        if resumed:
            self.log.append({"kind": "resume", "step": state.step, "time": self.elapsed()})
        self.model.train()
        parameters = list(self.model.parameters())
        batches = task.train_batches(state.step)
        try:
            while state.step < task.total_steps:
                lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses (the scheduler steps after it)
                loss, step_time, data_wait = self._timed_step(batches, parameters)
                state.add_step(step_time, loss, data_wait)
                progress.update(1, loss=loss, **{f"{task.examples_name}/s": task.global_batch_size / step_time})
                last = state.step == task.total_steps
                if state.step % log_every == 0 or last:
                    self._log_interval(lr)
                if state.step % task.eval_every == 0 or last:
                    self.evaluate(state.step)
                if state.step % checkpoint_every == 0 or last:
                    self.save_checkpoint()
        finally:
            progress.close()
            task.close()
        return self.summary_fields()

    def _log_interval(self, lr: float) -> None:
        """The 'train' record: the means over the logging interval that ends at this step."""
        state, task = self.state, self.task
        means = state.interval.flush()
        state.interval_step_times.append(means["step_time"])
        self.log.append({"kind": "train", "step": state.step, "time": self.elapsed(), "loss": means["loss"],
                         "lr": lr, "step_time": means["step_time"], "data_wait": means["data_wait"],
                         "epoch": state.step / task.steps_per_epoch if task.steps_per_epoch else None})

    def summary_fields(self) -> dict:
        state = self.state
        return {
            "final_metrics": dict(state.last_eval),
            "steps": state.step,
            "wall_time": self.elapsed(),
            "steps_to_target": state.steps_to_target,
            "time_to_target": state.time_to_target,
            "step_time_median": statistics.median(state.interval_step_times) if state.interval_step_times else None,
            "data_wait_fraction": state.data_wait_total / state.step_time_total if state.step_time_total else None,
        }

    def close(self) -> None:
        self.log.close()
