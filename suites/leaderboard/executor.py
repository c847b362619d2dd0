"""Where the leaderboard's runs execute: the `Executor` interface and the stage loop every executor shares.

The leaderboard decides WHAT runs (planner, protocols); an executor decides WHERE: local processes
(`LocalExecutor`), SLURM jobs (`SlurmExecutor`). Every run starts from its request file
(`layout.request_path(plan.run_dir)`, written by `write_request`), as
`python -m nightbench.suites.cli run --request FILE`, and leaves its run directory; an executor
never interprets results itself.

Run states an executor reports (`status`; outcomes.RunState):
    pending     not known to this executor (never submitted, or its job is gone)
    queued      submitted, not started
    running     started, no summary yet
    completed / diverged / failed   the run's summary says so (the run directory is the truth)
    interrupted its process or job ended without a summary (Ctrl-C, SIGTERM, kill -9): resumable
"""

from __future__ import annotations

import datetime
import time
from abc import ABC, abstractmethod
from typing import Callable, Sequence

from ..plan import RunPlan
from ..outcomes import ACTIVE_STATES, FINISHED_STATES, RunState
from ..summary import RunSummary, read_summary


class Executor(ABC):
    """Runs planned runs somewhere; submit returns at once, wait blocks until they have ended."""

    name: str = "executor"

    @abstractmethod
    def submit(self, plans: Sequence[RunPlan], stage: str) -> None:
        """Start or queue these runs (none of them finished, none active). Returns without waiting."""

    @abstractmethod
    def wait(self, on_end: Callable[[RunPlan, RunState | str], None]) -> None:
        """Block until every run submitted (or found active) has ended; call on_end(plan, state) as each does."""

    @abstractmethod
    def status(self, plan: RunPlan) -> RunState:
        """This run's state (see the module docstring)."""

    def adopt(self, plans: Sequence[RunPlan]) -> None:
        """Runs found active (queued/running) from an earlier leaderboard process: wait for them too."""

    def refused(self) -> Sequence[RunPlan]:
        """Runs the latest `submit` could not start (a scheduler refused them; recorded as failed).

        `wait` reports them as failed; a detached board, which does not wait, counts them itself."""
        return ()

    def close(self) -> None:
        """Release workers; called once when the board is done or interrupted."""

    def log_of(self, plan: RunPlan) -> str | None:
        """Where this run's output went (said under a failed run's line), or None where the executor says
        it itself (SLURM names the job's log)."""
        return None


def failure_line(plan: RunPlan, log: str | None) -> str:
    """The line under a failed run's progress line: why, from its summary, and where its output is."""
    summary = read_summary(plan.run_dir)
    lines = (summary.error or "").strip().splitlines() if summary is not None else []
    why = lines[0][:300] if lines else "no summary.json was written"
    return f"    {why}" + (f"; log: {log}" if log else "")


def finished_state(plan: RunPlan) -> RunState | None:
    """'completed' or 'diverged' where the run directory says so, else None (a failed run is retried)."""
    summary = read_summary(plan.run_dir)
    return summary.status if summary is not None and summary.status in FINISHED_STATES else None


def failed_summary(plan: RunPlan, executor: str, error: str, **details) -> RunSummary:
    """The summary an executor writes for a run that could not write its own (its process died, its
    job was refused or raised): failed, with what the plan knows of the run and `details` (log, ...)."""
    return RunSummary(status=RunState.FAILED, error=error, target_metric=plan.suite.target_metric,
                      target_value=plan.config["target_value"], executor=executor,
                      finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **details)


def run_stage(executor: Executor, plans: Sequence[RunPlan], stage: str, *, wait: bool = True,
              echo: Callable[[str], None] = lambda line: print(line, flush=True)) -> dict[str, int]:
    """Skip finished runs, adopt active ones, submit the rest, then (unless detached) wait for them all.

    Returns counts per outcome. A failed or interrupted run is submitted again (it resumes from its
    checkpoint, or starts over)."""
    todo, active, counts = [], [], {}
    for plan in plans:
        if finished_state(plan) is not None:
            counts["skipped (already finished)"] = counts.get("skipped (already finished)", 0) + 1
            continue
        state = executor.status(plan)
        (active if state in ACTIVE_STATES else todo).append(plan)
    echo(f"[{stage}] {len(plans)} runs: {len(todo)} to run, {len(plans) - len(todo) - len(active)} already finished"
         + (f", {len(active)} already queued or running" if active else ""))
    if active:
        executor.adopt(active)
    if todo:
        executor.submit(todo, stage)
    if not wait:  # detached: what was refused has already failed, the rest runs on without this process
        refused = len(executor.refused()) if todo else 0  # refused() speaks of the latest submit
        counts["submitted"] = len(todo) + len(active) - refused
        if refused:
            counts[RunState.FAILED.value] = refused
        return counts
    total, started = len(todo) + len(active), time.monotonic()
    if not total:
        return counts
    ended = 0

    def on_end(plan: RunPlan, state: RunState | str) -> None:
        nonlocal ended
        ended += 1
        counts[str(state)] = counts.get(str(state), 0) + 1
        elapsed = time.monotonic() - started
        eta = elapsed / ended * (total - ended)
        echo(f"[{stage}] {ended}/{total} {state:<9} {plan.label}  (elapsed {elapsed / 60:.1f} min, ETA {eta / 60:.1f} min)")
        if state == RunState.FAILED:
            echo(failure_line(plan, executor.log_of(plan)))

    executor.wait(on_end)
    return counts
