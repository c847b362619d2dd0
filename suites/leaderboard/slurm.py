"""`--executor slurm`: each stage of the leaderboard becomes a SLURM job array, submitted through submitit.

    nightbench leaderboard --executor slurm --executor-config cluster.toml --preset paper --tune

One array per stage (per kind of job: experiment suites run as one process), throttled by
--max-parallel. Each run's job id is recorded in its run directory (slurm_queue.JOB_FILE), so a
leaderboard that exits (--detach, Ctrl-C, kill -9) and starts again re-attaches: queued and
running jobs are waited for, not submitted again; finished runs are skipped; a failed or
interrupted run is submitted again and resumes from its checkpoint. The jobs keep running when the
leaderboard process stops.

A job's state comes from squeue while it is queued or running; once it has left the queue, from
the run directory's summary.json, else from submitit's result file (an exception in the job);
a job that left without either (scancel, node failure) leaves its run interrupted and resumable.
`sacct` is never used: single-node clusters often have no accounting.
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

from nightbench.optimizers.errors import InputError

from ..base import TrainingSuite
from ..plan import RunPlan, write_request
from ..summary import read_summary, write_summary
from ..outcomes import FINISHED_STATES, RunState
from .executor import Executor, failed_summary
from .slurm_job import DistributedSettings, RunJob
from .slurm_options import SlurmOptionError, SlurmOptions, add_slurm_arguments, options_from_args, submitit_parameters
from .slurm_queue import SLURM_DIR, job_error, job_state, read_job, record_job, squeue_states, summary_is_current

__all__ = ["SlurmExecutor", "SlurmUnavailableError", "add_slurm_arguments", "slurm_executor_from_args"]

SLURM_COMMANDS = ("sbatch", "squeue", "srun", "scontrol")  # submitting, watching, running, requeueing
QUEUE_CACHE_S = 2.0  # one squeue answers every status() of a stage's planning round
# A job gone from squeue whose run left no summary yet is looked at again after this long (a
# shared filesystem may show the job's last writes late) before its run is called interrupted.
VANISHED_GRACE_S = 5.0
MAX_ARRAY_SIZE = 1000  # SLURM's default MaxArraySize is 1001 tasks (indices 0..1000)


class SlurmUnavailableError(InputError):
    """--executor slurm on a machine without SLURM's commands."""


def slurm_executor_from_args(args, echo: Callable[[str], None] = lambda line: print(line, flush=True)) -> "SlurmExecutor":
    """The executor for `nightbench leaderboard --executor slurm ...`; bad settings raise before anything is written."""
    return SlurmExecutor(options_from_args(args), args.results, echo=echo)


class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(self, options: SlurmOptions, results_root: str | Path, *,
                 echo: Callable[[str], None] = lambda line: print(line, flush=True)):
        missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
        if missing:
            raise SlurmUnavailableError(
                f"--executor slurm needs SLURM's commands, but {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not on PATH; run on a cluster's login node "
                "(or load its slurm module), or use --executor local")
        self.options = options
        self.folder = Path(results_root).resolve() / SLURM_DIR
        self.echo = echo
        self._waiting: dict[Path, RunPlan] = {}
        self._refused: list[RunPlan] = []  # sbatch refused them: reported as failed by wait()
        self._vanished: dict[Path, float] = {}
        self._queue: tuple[float, dict[str, str]] | None = None
        for single_process in (False, True):  # bad passed-through options fail now, before any submission
            self._submitit_executor("check", single_process)

    # --- Executor ----------------------------------------------------------------------------
    def submit(self, plans: Sequence[RunPlan], stage: str) -> None:
        # one array per kind of job: what SLURM allocates (processes, cores) is the same for all of its tasks
        self._refused = []  # the refusals of this submission (an earlier wait has reported its own)
        groups: dict[tuple[bool, int], list[RunPlan]] = defaultdict(list)
        for plan in plans:
            groups[(self._single_process(plan), int(plan.resolved.suite_config["threads"]))].append(plan)
        for (single_process, threads), group in groups.items():
            for start in range(0, len(group), MAX_ARRAY_SIZE):
                self._submit_array(group[start:start + MAX_ARRAY_SIZE], stage, single_process, threads)
        self._queue = None

    def adopt(self, plans: Sequence[RunPlan]) -> None:
        jobs = []
        for plan in plans:
            self._waiting[plan.run_dir] = plan
            jobs.append((read_job(plan.run_dir) or {}).get("job_id", "?"))
        self.echo(f"re-attached to {len(plans)} SLURM job(s) still queued or running: {' '.join(jobs)}")

    def refused(self) -> Sequence[RunPlan]:
        return tuple(self._refused)

    def status(self, plan: RunPlan) -> RunState:
        record = read_job(plan.run_dir)
        if record is not None:
            return job_state(plan.run_dir, record, self._queue_states())
        summary = read_summary(plan.run_dir)
        return summary.status if summary is not None else RunState.PENDING

    def wait(self, on_end: Callable[[RunPlan, RunState], None]) -> None:
        while self._refused:
            on_end(self._refused.pop(0), RunState.FAILED)
        while self._waiting:
            states = self._queue_states(fresh=True)
            now = time.monotonic()
            for run_dir, plan in list(self._waiting.items()):
                record = read_job(run_dir) or {}
                if record.get("job_id") in states:
                    self._vanished.pop(run_dir, None)
                    continue
                state = self._ended_state(plan, record, now)
                if state is None:
                    continue
                del self._waiting[run_dir]
                self._vanished.pop(run_dir, None)
                on_end(plan, state)
                if state not in FINISHED_STATES:
                    self.echo(f"    SLURM job {record.get('job_id')} ({state}); log: {record.get('log')}")
            if self._waiting:
                time.sleep(self.options.poll_seconds)

    def close(self) -> None:
        if self._waiting:
            self.echo(f"{len(self._waiting)} SLURM job(s) keep running; run the same command again to re-attach "
                      "(`nightbench status RESULTS` shows them)")
        self._waiting.clear()
        self._refused.clear()

    # --- submission --------------------------------------------------------------------------
    def _single_process(self, plan: RunPlan) -> bool:
        """Experiment suites run their own small units in one process: no DeepSpeed, one GPU at most."""
        return self.options.world_size == 1 or not isinstance(plan.suite, TrainingSuite)

    def _submitit_executor(self, stage: str, single_process: bool, threads: int = 1):
        import submitit

        executor = submitit.SlurmExecutor(folder=self.folder, max_num_timeout=self.options.max_requeues)
        try:
            executor.update_parameters(job_name=f"nightbench-{stage}", **submitit_parameters(
                self.options, single_process=single_process, threads=threads))
        except (ValueError, TypeError) as exc:
            raise SlurmOptionError(f"submitit refused the SLURM settings: {exc}") from None
        return executor

    def _submit_array(self, plans: list[RunPlan], stage: str, single_process: bool, threads: int) -> None:
        from submitit.core.utils import FailedJobError, FailedSubmissionError

        executor = self._submitit_executor(stage, single_process, threads)
        distributed = None if single_process else DistributedSettings(self.options.zero_stage,
                                                                      self.options.deepspeed_config)
        request_files = [str(write_request(plan)) for plan in plans]
        try:
            jobs = executor.map_array(RunJob(), request_files, [threads] * len(plans), [distributed] * len(plans))
        except (FailedJobError, FailedSubmissionError, OSError) as exc:
            message = str(exc).strip() or type(exc).__name__
            for plan in plans:
                _record_refusal(plan, message)
            self._refused += plans
            self.echo(f"[{stage}] sbatch refused {len(plans)} run(s): {message}; recorded as failed")
            return
        for plan, job in zip(plans, jobs):
            record_job(plan.run_dir, job.job_id, stage, job.paths.stdout, self.folder)
            self._waiting[plan.run_dir] = plan
        array = jobs[0].job_id.split("_")[0]
        shape = "1 process" if single_process else f"{self.options.world_size} processes"
        self.echo(f"[{stage}] submitted {len(plans)} run(s) as SLURM job {'array ' if len(jobs) > 1 else ''}{array} "
                  f"({shape} each, time limit {self.options.time} min); logs: {self.folder}/{array}_*log.out")

    # --- ended jobs --------------------------------------------------------------------------
    def _queue_states(self, fresh: bool = False) -> dict[str, str]:
        now = time.monotonic()
        if fresh or self._queue is None or now - self._queue[0] > QUEUE_CACHE_S:
            self._queue = (now, squeue_states())
        return self._queue[1]

    def _ended_state(self, plan: RunPlan, record: dict, now: float) -> RunState | None:
        """The state of a run whose job has left the queue (None: look again at the next poll)."""
        state = job_state(plan.run_dir, record, queue={})
        if state == RunState.FAILED and not summary_is_current(plan.run_dir, record):
            _record_job_failure(plan, record, job_error(record) or "")  # the job raised: say so in the run
        if state == RunState.INTERRUPTED and now - self._vanished.setdefault(plan.run_dir, now) < VANISHED_GRACE_S:
            return None
        return state


def _record_refusal(plan: RunPlan, message: str) -> None:
    """sbatch refused the job: the run is recorded as failed with sbatch's message (and retried next time)."""
    write_summary(plan.run_dir, failed_summary(plan, SlurmExecutor.name, f"sbatch refused the job: {message}"))


def _record_job_failure(plan: RunPlan, record: dict, error: str) -> None:
    """The job raised before the run could record its end (bad input in the job, too many requeues)."""
    last_line = error.strip().splitlines()[-1] if error.strip() else "unknown error"
    write_summary(plan.run_dir, failed_summary(
        plan, SlurmExecutor.name, f"SLURM job {record['job_id']} failed: {last_line}", traceback=error[-4000:],
        log=record.get("log"), job_id=record["job_id"]))
