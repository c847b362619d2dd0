"""`nightbench status RESULTS`: where every run of a results root stands, per suite and stage.

    suite / stage            queued  running  completed  diverged  failed  interrupted  pending
    bert_mlm / tuning             0        4          2         0       0            0        0
      SLURM jobs: 31_[0-5]

A run's state comes from its directory (summary.json; the job record of a SLURM run), for a
run whose job is queued or running from squeue, and for an unfinished run from its lock: a live
process holding the run's `.lock` (a `nightbench run` here, or a leaderboard's child) is running
it, and is listed with the pid the lock records. Failed and interrupted runs are listed with
their error and the path of their SLURM log. Reads only; never submits or changes anything.
"""

from __future__ import annotations

import fcntl
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from . import layout
from .layout import CONFIG_FILE, LOCK_FILE, METRICS_FILE
from .leaderboard.slurm_queue import (JOB_FILE, SqueueError, job_error, job_state, read_job, squeue_available,
                                      squeue_states, summary_is_current)
from .outcomes import FINISHED_STATES, RunState
from .run_dir import read_json
from .summary import read_config, read_summary
from .verify import DAMAGED, UNREADABLE_SUMMARY, damage, verify_run_dir

# DAMAGED (verify.py): a summary.json or job.json that cannot be read, what the report calls such a run
# too (no RunState names it: the run's own state is unknown; the same command runs it again).
# the columns of the table, in this order; the first five always, the others when a run is in that state
STATES = (RunState.QUEUED, RunState.RUNNING, RunState.COMPLETED, RunState.DIVERGED, RunState.FAILED,
          RunState.INTERRUPTED, RunState.INCONSISTENT, DAMAGED, RunState.PENDING, RunState.UNKNOWN)
ALWAYS_SHOWN = STATES[:5]
# listed one by one, with their error
TROUBLE_STATES = (RunState.FAILED, RunState.INTERRUPTED, RunState.INCONSISTENT, DAMAGED)


@dataclass
class RunStanding:
    """Where one run stands, as `nightbench status` shows it."""

    run_dir: Path
    suite: str
    stage: str
    state: RunState
    job_id: str | None = None
    jobs: tuple[str, ...] = ()
    log: str | None = None
    error: str | None = None
    holder: str | None = None  # 'pid N on host': the live process holding the run's lock


def lock_holder(run_dir: Path) -> str | None:
    """Who holds the run's lock ('pid N on host', as run_dir.run_lock records it) when a live process
    holds it; None when nobody does. The lock is an flock, which the kernel drops when its holder dies,
    so a lock file left by a dead process (still naming its pid) reads as free."""
    try:  # read-only, and a shared probe: works on a read-only copy, and two status calls never collide
        with open(Path(run_dir) / LOCK_FILE) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return handle.read().strip() or "a live process (it has not written its pid yet)"
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None
    except OSError:  # no lock file, or one that cannot be opened or locked: no live holder is known
        return None


def find_runs(results: Path) -> list[Path]:
    """Run directories (with a run file or a job record) and planned runs (a request file)."""
    return layout.find_runs(results, (*layout.RUN_FILES, layout.JOB_FILE), planned=True)


def run_status(run_dir: Path, queue: dict[str, str] | None) -> RunStanding:
    """One run's state; queue None: squeue could not be asked."""
    request = read_json(layout.request_path(run_dir)) or {}
    config = read_config(run_dir) or {}
    summary = read_summary(run_dir)
    record = read_job(run_dir)
    suite = config.get("suite") or request.get("suite") or run_dir.parts[-4]
    stage = (record or {}).get("stage") or config.get("protocol") or request.get("protocol") or "?"
    status = RunStanding(run_dir, suite, stage, RunState.PENDING)
    wrong = job_record_problem(record) if record is not None else None
    if wrong:  # shown as damaged, like an unreadable summary: one broken file never hides the other runs
        status.state, status.error = DAMAGED, wrong
        status.stage = stage if isinstance(stage, str) else "?"
    elif record is not None:
        status.job_id, status.jobs, status.log = record["job_id"], tuple(record.get("jobs", ())), record.get("log")
        status.state = job_state(run_dir, record, queue)
        if status.state == RunState.FAILED:
            error = summary.error if summary is not None and summary_is_current(run_dir, record) else job_error(record)
            status.error = error.strip().splitlines()[-1] if error else None
    elif summary is not None:  # a run of another executor
        status.state, status.error = summary.status, summary.error
    elif (run_dir / layout.SUMMARY_FILE).exists():  # there, but unreadable: what the report calls it too
        status.state, status.error = DAMAGED, UNREADABLE_SUMMARY
    elif (run_dir / CONFIG_FILE).exists() or (run_dir / METRICS_FILE).exists():
        status.state = RunState.INTERRUPTED  # started, never finished: the same command resumes it
    broken = damage(run_dir, summary) if status.state in FINISHED_STATES else None
    reasons = verify_run_dir(run_dir) if status.state in FINISHED_STATES and not broken else []
    if broken:  # a result that cannot be checked (config.json unreadable): what the report calls it too
        status.state, status.error = DAMAGED, broken
    elif reasons:  # a result that disagrees with its own log or name is not counted as one
        status.state, status.error = RunState.INCONSISTENT, "; ".join(reasons)
    # A live process holding the lock is working on the run now (resuming it, or rerunning a failed or
    # damaged one; the engine never locks a finished run): not interrupted, and not to be run again.
    # A damaged job record stays damaged: it is the record that is wrong, whoever runs the run.
    if status.state not in (*FINISHED_STATES, RunState.QUEUED, RunState.RUNNING, RunState.INCONSISTENT) \
            and not (status.state == DAMAGED and wrong):
        holder = lock_holder(run_dir)
        if holder is not None:
            status.state, status.error, status.holder = RunState.RUNNING, None, holder
    return status


# The fields of a job record (slurm_queue.record_job) and the types `status` reads them as.
JOB_FIELD_TYPES = {"job_id": (str,), "stage": (str,), "log": (str,), "submitit_folder": (str,),
                   "submitted": (str,), "submitted_unix": (int, float), "jobs": (list,)}


def job_record_problem(record: dict) -> str | None:
    """What is wrong with a job.json's field types, or None."""
    for key, accepted in JOB_FIELD_TYPES.items():
        value = record.get(key)
        if key not in record or (isinstance(value, accepted) and not isinstance(value, bool)
                                 and (key != "jobs" or all(isinstance(job, str) for job in value))):
            continue
        expected = {"jobs": "a list of job ids (strings)", "submitted_unix": "a number"}.get(key, "a string")
        return f"{JOB_FILE} field '{key}' is {value!r:.60}; expected {expected}"
    return None


def compress_job_ids(job_ids: list[str]) -> str:
    """'31_0 31_1 31_2 31_5 40' -> '31_[0-2,5] 40'."""
    arrays: dict[str, list[int]] = defaultdict(list)
    singles = []
    for job_id in job_ids:
        match = re.fullmatch(r"(\d+)_(\d+)", job_id)
        if match:
            arrays[match.group(1)].append(int(match.group(2)))
        else:
            singles.append(job_id)
    parts = []
    for array, indices in sorted(arrays.items(), key=lambda item: int(item[0])):
        indices = sorted(set(indices))
        ranges, start, previous = [], indices[0], indices[0]
        for index in indices[1:] + [None]:
            if index is not None and index == previous + 1:
                previous = index
                continue
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
            start = previous = index
        parts.append(f"{array}_[{','.join(ranges)}]")
    return " ".join(parts + sorted(singles))


def format_status(results: Path, runs: list[RunStanding], queue_note: str) -> str:
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    jobs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for run in runs:
        counts[(run.suite, run.stage)][run.state] += 1
        jobs[(run.suite, run.stage)] += [run.job_id] if run.job_id else []
    shown = [s for s in STATES if s in ALWAYS_SHOWN or any(c[s] for c in counts.values())]
    width = max([len("suite / stage")] + [len(f"{s} / {t}") for s, t in counts])
    lines = [f"{results}: {len(runs)} runs{queue_note}", "",
             f"{'suite / stage':<{width}}  " + "  ".join(f"{s:>{max(len(s), 5)}}" for s in shown)]
    for key in sorted(counts):
        lines.append(f"{' / '.join(key):<{width}}  "
                     + "  ".join(f"{counts[key][s]:>{max(len(s), 5)}}" for s in shown))
        if jobs[key]:
            lines.append(f"  SLURM jobs: {compress_job_ids(jobs[key])}")
    held = [r for r in runs if r.holder is not None]
    if held:
        lines += ["", "running in a live process that holds the run's lock (left to it; a second "
                      "`nightbench run` of it exits 75):"]
        lines += [f"  {r.state:<11} {r.run_dir.relative_to(results)}  ({r.holder})" for r in held]
    trouble = [r for r in runs if r.state in TROUBLE_STATES]
    if trouble:
        lines += ["", "failed, interrupted, inconsistent or damaged (the same leaderboard command runs the "
                      "failed, interrupted and damaged again; `nightbench verify` explains the inconsistent):"]
        for run in trouble:
            where = f"job {run.job_id}, log {run.log}" if run.job_id else "local run"
            lines.append(f"  {run.state:<11} {run.run_dir.relative_to(results)}  ({where})")
            if run.error:
                lines.append(f"              {str(run.error).strip().splitlines()[-1][:200]}")
    return "\n".join(lines)


def status_report(results: str | Path) -> str:
    """The text `nightbench status RESULTS` prints."""
    results = layout.results_root(results)
    run_dirs = find_runs(results)
    queue, note = None, ""
    if any((d / JOB_FILE).exists() for d in run_dirs):
        if not squeue_available():
            note = " (squeue is not on PATH: whether submitted jobs still run is unknown)"
        else:
            try:
                queue = squeue_states()
            except SqueueError as exc:
                note = f" (squeue failed: {exc})"
    return format_status(results, [run_status(d, queue) for d in run_dirs], note)
