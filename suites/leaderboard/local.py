"""`LocalExecutor`: each run in its own process on this machine, `jobs` at a time.

A crash in one run never takes down the board. A child starts from its request file; its output
goes to a log of its own under <results>/_logs/<stage>/ (named by run, time and process, so no
log is ever overwritten). How a child's end is read:
    summary.json written          the run's status (completed, diverged, failed)
    ExitCode.RUNNING_ELSEWHERE    another live process holds the run: left to it, not recorded
    ExitCode.INTERRUPTED, SIGINT, SIGTERM   interrupted: left resumable, not recorded
    anything else, no summary     the process died: recorded as failed (unless another process
                                  has meanwhile taken the run's lock)
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from ..layout import LOGS_DIR, safe_name
from ..plan import RunPlan, write_request
from ..run_dir import is_locked
from ..summary import read_summary, write_summary
from ..outcomes import ExitCode, RunState
from .executor import Executor, failed_summary

RUNNING_ELSEWHERE = "running elsewhere"
# how a child's status says it was interrupted: its own exit code, or killed by (or exiting for) a signal
INTERRUPTED_EXITS = {ExitCode.INTERRUPTED, -signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGTERM}


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, jobs: int, run_module: str, results: str):
        self.jobs, self.run_module, self.results = max(1, jobs), run_module, Path(results)
        self._pool = ThreadPoolExecutor(max_workers=self.jobs)
        self._futures: dict[Future, RunPlan] = {}
        self._interrupted = threading.Event()
        self._logs: dict[Path, Path] = {}  # run directory -> the log of its latest child process

    def submit(self, plans: Sequence[RunPlan], stage: str) -> None:
        for plan in plans:
            self._futures[self._pool.submit(self._execute, plan, stage)] = plan

    def wait(self, on_end: Callable[[RunPlan, RunState | str], None]) -> None:
        from concurrent.futures import as_completed

        try:
            for future in as_completed(list(self._futures)):
                plan = self._futures.pop(future)
                state = future.result()
                on_end(plan, state)
        except KeyboardInterrupt:
            self._interrupted.set()
            raise
        if self._interrupted.is_set():
            raise KeyboardInterrupt

    def status(self, plan: RunPlan) -> RunState:
        for future, submitted in self._futures.items():
            if submitted.run_dir == plan.run_dir and not future.done():
                return RunState.RUNNING
        return RunState.PENDING

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def log_of(self, plan: RunPlan) -> str | None:
        log = self._logs.get(plan.run_dir)
        return None if log is None else str(log)

    # --- one child process -------------------------------------------------------------------
    def command(self, request_file: Path) -> list[str]:
        return [sys.executable, "-m", self.run_module, "run", "--quiet", "--request", str(request_file)]

    def _log_path(self, plan: RunPlan, stage: str) -> Path:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = safe_name(plan.label.replace("/", "__"))
        return self.results / LOGS_DIR / stage / f"{name}.{stamp}-{os.getpid()}-{threading.get_ident() % 10**6}.log"

    def _execute(self, plan: RunPlan, stage: str) -> RunState | str:
        if self._interrupted.is_set():
            return RunState.INTERRUPTED
        request_file = write_request(plan)
        log_path = self._log_path(plan, stage)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._logs[plan.run_dir] = log_path
        threads = str(plan.resolved.suite_config["threads"])
        # libraries other than torch (BLAS in numpy) size their pools from these
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "x") as log:
            code = subprocess.run(self.command(request_file), stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        summary = read_summary(plan.run_dir)
        if summary is not None:
            return summary.status
        if code == ExitCode.RUNNING_ELSEWHERE:
            return RUNNING_ELSEWHERE
        if code in INTERRUPTED_EXITS:
            self._interrupted.set()  # the user pressed Ctrl-C (it reaches the children too)
            return RunState.INTERRUPTED
        if plan.run_dir.exists() and not is_locked(plan.run_dir):
            tail = log_path.read_text(errors="replace")[-2000:]
            write_summary(plan.run_dir, failed_summary(
                plan, self.name, f"the run process exited with status {code} without a summary",
                log_tail=tail, log=str(log_path)))
        return RunState.FAILED
