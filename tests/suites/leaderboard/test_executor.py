"""The stage loop every executor shares (`run_stage`), driven by a scripted executor: no processes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from nightbench.suites.leaderboard.executor import Executor, run_stage
from nightbench.suites.outcomes import RunState
from nightbench.suites.run_dir import atomic_write_json


class ScriptedExecutor(Executor):
    """Refuses the runs named in `refuse` at submission; every other submitted run ends 'completed'."""

    def __init__(self, refuse=(), queued=()):
        self.refuse, self.queued = set(refuse), set(queued)
        self.submitted, self.adopted, self._refused, self._waiting = [], [], [], []

    def submit(self, plans, stage):
        self._refused = [p for p in plans if p.label in self.refuse]
        self.submitted += [p.label for p in plans]
        self._waiting += [p for p in plans if p.label not in self.refuse]

    def refused(self):
        return tuple(self._refused)

    def adopt(self, plans):
        self.adopted += [p.label for p in plans]
        self._waiting += list(plans)

    def wait(self, on_end):
        for plan in self._refused:
            on_end(plan, "failed")
        for plan in self._waiting:
            on_end(plan, "completed")
        self._refused, self._waiting = [], []

    def status(self, plan):
        return RunState.QUEUED if plan.label in self.queued else RunState.PENDING


def plans(tmp_path: Path, *labels: str) -> list:
    return [SimpleNamespace(label=label, run_dir=tmp_path / label) for label in labels]


def test_finished_runs_are_skipped_active_ones_adopted_and_the_rest_submitted(tmp_path):
    a, b, c = plans(tmp_path, "a", "b", "c")
    atomic_write_json(a.run_dir / "summary.json", {"status": "completed"})
    executor = ScriptedExecutor(queued={"b"})
    counts = run_stage(executor, [a, b, c], "board", echo=lambda line: None)
    assert executor.submitted == ["c"] and executor.adopted == ["b"]
    assert counts == {"skipped (already finished)": 1, "completed": 2}


def test_a_detached_stage_counts_what_the_scheduler_refused_as_failed(tmp_path):
    """A detached board does not wait, so a refusal would otherwise pass as 'submitted' (and exit 0)."""
    runs = plans(tmp_path, "a", "b", "c")
    counts = run_stage(ScriptedExecutor(refuse={"a", "c"}), runs, "board", wait=False, echo=lambda line: None)
    assert counts == {"submitted": 1, "failed": 2}
    counts = run_stage(ScriptedExecutor(), runs, "board", wait=False, echo=lambda line: None)
    assert counts == {"submitted": 3}


def test_a_detached_stage_with_nothing_to_submit_does_not_count_an_earlier_refusal(tmp_path):
    first, second = plans(tmp_path, "tuning"), plans(tmp_path, "final")
    executor = ScriptedExecutor(refuse={"tuning"}, queued={"final"})
    assert run_stage(executor, first, "tuning", wait=False, echo=lambda line: None) == {"submitted": 0, "failed": 1}
    assert run_stage(executor, second, "final", wait=False, echo=lambda line: None) == {"submitted": 1}


def test_an_attached_stage_reports_refused_runs_through_wait(tmp_path):
    counts = run_stage(ScriptedExecutor(refuse={"b"}), plans(tmp_path, "a", "b"), "board", echo=lambda line: None)
    assert counts == {"completed": 1, "failed": 1}
