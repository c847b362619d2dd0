"""What SLURM knows about a run: the job record in its run directory, and squeue.

Each run submitted to SLURM records its job in `<run_dir>/job.json` (JOB_FILE): the current job id,
the stage, the log path, and every job id it was ever submitted as. A leaderboard that exits and
starts again reads it, so a queued or running run is not submitted twice and a failed job is
reported with its log.

Single-node SLURM installations often have no accounting database, so `sacct` fails there; the
state of a job comes from `squeue` (jobs waiting or running) and, once the job has left the
queue, from the run directory's summary.json and submitit's result file.
"""

from __future__ import annotations

import datetime
import getpass
import os
import shutil
import subprocess
import time
from pathlib import Path

from ..layout import JOB_FILE, SUMMARY_FILE
from ..outcomes import RunState
from ..run_dir import atomic_write_json, read_json
from ..summary import read_summary

SLURM_DIR = "_slurm"  # <results>/_slurm/: submitit's job files and the jobs' logs
QUEUED, RUNNING = RunState.QUEUED, RunState.RUNNING
# squeue's job states (long form) -> the executor's words
SQUEUE_STATES = {
    "PENDING": QUEUED, "REQUEUED": QUEUED, "REQUEUE_HOLD": QUEUED, "REQUEUE_FED": QUEUED, "CONFIGURING": QUEUED,
    "RESV_DEL_HOLD": QUEUED, "SPECIAL_EXIT": QUEUED,
    "RUNNING": RUNNING, "COMPLETING": RUNNING, "SUSPENDED": RUNNING, "STOPPED": RUNNING, "SIGNALING": RUNNING,
    "STAGE_OUT": RUNNING, "RESIZING": RUNNING,
}
SQUEUE_TIMEOUT_S = 60
SQUEUE_TRIES = 3


class SqueueError(RuntimeError):
    """squeue did not answer (the controller is down or unreachable)."""


def job_path(run_dir: Path) -> Path:
    return Path(run_dir) / JOB_FILE


def read_job(run_dir: Path) -> dict | None:
    """The run's job record, or None if it was never submitted to SLURM."""
    record = read_json(job_path(run_dir))
    return record if record and record.get("job_id") else None


def record_job(run_dir: Path, job_id: str, stage: str, log: Path, folder: Path) -> dict:
    """Write the run's job record for a new submission, keeping the earlier job ids."""
    previous = read_json(job_path(run_dir)) or {}
    now = time.time()
    record = {
        "job_id": str(job_id),
        "stage": stage,
        "log": str(log),
        "submitit_folder": str(folder),
        "submitted": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat(timespec="seconds"),
        "submitted_unix": now,
        "jobs": [*previous.get("jobs", []), str(job_id)],
    }
    atomic_write_json(job_path(run_dir), record)
    return record


def summary_is_current(run_dir: Path, record: dict) -> bool:
    """Whether summary.json was written by the recorded job (not left by an earlier failed attempt)."""
    try:
        return (Path(run_dir) / SUMMARY_FILE).stat().st_mtime >= float(record.get("submitted_unix", 0)) - 1
    except OSError:
        return False


def squeue_available() -> bool:
    return shutil.which("squeue") is not None


def squeue_states() -> dict[str, str]:
    """job id ('123' or '123_4' for an array task) -> 'queued' | 'running', for this user's jobs in the queue."""
    user = os.environ.get("USER") or getpass.getuser()
    # -r: one line per array task, so a pending array shows as 123_0, 123_1, ... not 123_[0-7%2]
    command = ["squeue", "--noheader", "--array", "--user", user, "--format=%i|%T"]
    error = ""
    for attempt in range(SQUEUE_TRIES):
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=SQUEUE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            error = str(exc)
        else:
            if result.returncode == 0:
                return parse_squeue(result.stdout)
            error = (result.stderr or result.stdout).strip()
        time.sleep(2 * (attempt + 1))
    raise SqueueError(f"squeue failed {SQUEUE_TRIES} times: {error}")


def parse_squeue(text: str) -> dict[str, str]:
    states = {}
    for line in text.splitlines():
        job_id, sep, state = line.strip().partition("|")
        state = SQUEUE_STATES.get(state.strip().upper())
        if sep and state:  # ended states (COMPLETED, FAILED, CANCELLED, TIMEOUT, ...) are not active
            states[job_id.strip()] = state
    return states


def job_error(record: dict) -> str | None:
    """The traceback submitit recorded for a job whose function raised (None: no result, or success)."""
    from submitit.core.utils import JobPaths, pickle_load

    if not record.get("job_id") or not record.get("submitit_folder"):
        return None
    result = JobPaths(record["submitit_folder"], job_id=record["job_id"], task_id=0).result_pickle
    if not result.exists():
        return None
    try:
        outcome, value = pickle_load(result)
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file: say so instead of crashing the board
        return f"unreadable submitit result file {result}: {exc}"
    return str(value) if outcome == "error" else None


def job_state(run_dir: Path, record: dict, queue: dict[str, str] | None) -> RunState:
    """A submitted run's state: queued / running (squeue), else what its job left: the summary's status,
    'failed' (the job raised), or 'interrupted' (it left nothing: resumable). 'unknown' without squeue."""
    if queue is not None and record["job_id"] in queue:
        return RunState(queue[record["job_id"]])
    summary = read_summary(run_dir)
    if summary is not None and summary_is_current(run_dir, record):
        return summary.status
    if job_error(record) is not None:
        return RunState.FAILED
    return RunState.INTERRUPTED if queue is not None else RunState.UNKNOWN
