"""The one definition of a run's states and of nightbench's exit codes.

Every module that writes, reads, counts or shows a run's state uses `RunState`; every command
returns an `ExitCode`. A leaf module: it imports nothing of nightbench.

    RunState    where a run stands. The first three are written into summary.json by the run
                itself; the others are what an executor or `nightbench status` sees from outside.
    ExitCode    what `nightbench` and the leaderboard return (the README's list of exit codes).
"""

from __future__ import annotations

from enum import Enum, IntEnum


class RunState(str, Enum):
    """A run's state. A `str` subclass, so `summary["status"] == RunState.COMPLETED` holds and
    json.dumps writes the plain value."""

    # written by the run into summary.json
    COMPLETED = "completed"  # ran its whole schedule
    DIVERGED = "diverged"  # a NaN/inf loss or parameter ended it: a result, not an error
    FAILED = "failed"  # an exception ended it (its error is in the summary)
    # seen from outside the run
    PENDING = "pending"  # not known to the executor: never submitted, or its job is gone
    QUEUED = "queued"  # submitted, not started
    RUNNING = "running"  # started, no summary yet
    INTERRUPTED = "interrupted"  # ended without a summary (Ctrl-C, SIGTERM, kill -9): resumable
    UNKNOWN = "unknown"  # the scheduler could not be asked
    INCONSISTENT = "inconsistent"  # a summary that disagrees with the run's own log or identity

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object) -> "RunState | None":
        """The state a summary's `status` field names, or None for anything else."""
        try:
            return cls(value)
        except ValueError:
            return None


# A run that ended with a result: it is never run again.
FINISHED_STATES = (RunState.COMPLETED, RunState.DIVERGED)
# States written by a run into its own summary.json.
SUMMARY_STATES = (RunState.COMPLETED, RunState.DIVERGED, RunState.FAILED)
# A submitted run that has not ended: an executor adopts it rather than submitting it again.
ACTIVE_STATES = (RunState.QUEUED, RunState.RUNNING)


class ExitCode(IntEnum):
    """What a nightbench command returns."""

    OK = 0
    FAILED = 1  # a run failed, an environmental failure (one line names it), or a bug (traceback file)
    BAD_INPUT = 2  # unknown names, bad values, bad paths: nothing was written
    RUNNING_ELSEWHERE = 75  # EX_TEMPFAIL: another live process holds the run; left to it
    INTERRUPTED = 130  # 128 + SIGINT: interrupted; the same command resumes
