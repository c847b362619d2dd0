"""The trainer: its bookkeeping (the logging interval's sums and the state a checkpoint keeps), and
the training loop reads nothing back from the device per parameter tensor or per micro-batch.

Host reads are counted with a TorchDispatchMode: each `aten._local_scalar_dense` is a host read
(`.item()`, `float(t)`, `bool(t)`), a device sync on CUDA. The loop's one read per step is a
`.tolist()` of two numbers (the loss and "everything finite"), which dispatches no aten op on CPU;
so with an optimizer that reads nothing itself (torch's foreach SGD), training must count zero reads.
"""

from __future__ import annotations

import contextlib
import types

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nightbench.optimizers import create, get_spec
from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.trainer import IntervalStats, Trainer, TrainingState


def test_an_interval_flushes_its_means_and_starts_again_empty():
    interval = IntervalStats()
    interval.add(step_time=0.5, loss=2.0, data_wait=0.1)
    interval.add(step_time=1.5, loss=4.0, data_wait=0.3)
    assert interval.flush() == pytest.approx({"loss": 3.0, "step_time": 1.0, "data_wait": 0.2})
    assert interval == IntervalStats()
    interval.add(step_time=2.0, loss=1.0, data_wait=0.0)
    assert interval.flush() == pytest.approx({"loss": 1.0, "step_time": 2.0, "data_wait": 0.0})


def test_the_checkpointed_state_keeps_its_flat_format_and_round_trips():
    state = TrainingState(step=7, interval_step_times=[0.25], interval=IntervalStats(steps=3, time=1.5, loss=6.0, data=0.3))
    saved = state.to_dict()
    # The keys checkpoints written before IntervalStats hold, so those runs still resume.
    assert {k: saved[k] for k in ("interval_steps", "interval_time", "interval_loss", "interval_data")} == \
        {"interval_steps": 3, "interval_time": 1.5, "interval_loss": 6.0, "interval_data": 0.3}
    assert "interval" not in saved and all(not isinstance(v, IntervalStats) for v in saved.values())
    assert TrainingState.from_dict(saved) == state


class HostReads(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.reads, self.paused = 0, False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.paused and func.__name__.startswith("_local_scalar_dense"):
            self.reads += 1
        return func(*args, **(kwargs or {}))


def test_training_steps_make_no_host_read_beyond_the_one_per_step(toy_suite, tmp_path, monkeypatch):
    counter = HostReads()
    evaluate = Trainer.evaluate

    def evaluate_uncounted(self, step):  # evaluation reads its metrics: not part of a training step
        counter.paused = True
        try:
            return evaluate(self, step)
        finally:
            counter.paused = False

    monkeypatch.setattr(Trainer, "evaluate", evaluate_uncounted)
    with counter:
        outcome = execute_run(RunRequest(suite="toy", optimizer="sgd", preset="ci", results_root=str(tmp_path),
                                         overrides={"micro_batch_size": 4, "steps": 12}, progress=False))
    assert outcome.status == "completed" and outcome.summary["steps"] == 12
    # 12 steps x (4 micro-batch losses + 2 parameter tensors) reads under the old loop; none now
    assert counter.reads == 0


# --- the eval swap ----------------------------------------------------------------------------------


def test_the_trainer_swaps_only_where_the_registry_declares_it():
    class HasEval(torch.optim.SGD):  # eval()/train() by accident: must not be called
        def eval(self):
            raise AssertionError("eval() called for an optimizer that does not declare needs_eval_swap")

        def train(self):
            raise AssertionError("train() called")

    optimizer = HasEval([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    stub = types.SimpleNamespace(spec=get_spec("sgd"), optimizer=optimizer)
    with Trainer._evaluation_weights(stub):
        pass
    assert isinstance(Trainer._evaluation_weights(stub), contextlib.nullcontext)
    swapping = create("adamw_schedulefree", [torch.nn.Parameter(torch.zeros(1))])
    stub = types.SimpleNamespace(spec=get_spec("adamw_schedulefree"), optimizer=swapping)
    with Trainer._evaluation_weights(stub):
        assert not swapping.param_groups[0]["train_mode"]
    assert swapping.param_groups[0]["train_mode"]
