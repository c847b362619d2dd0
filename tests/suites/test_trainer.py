"""The trainer's bookkeeping: the logging interval's sums and the state a checkpoint keeps."""

from __future__ import annotations

import pytest

from nightbench.suites.trainer import IntervalStats, TrainingState


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
