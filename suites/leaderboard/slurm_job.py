"""One leaderboard run as a SLURM job: what submitit pickles, and what runs on the cluster's node.

The job executes the run's request file in its own process, as `nightbench run --request FILE`
would. A job that reaches its time limit or is preempted is told so by submitit (SIGUSR2 before
the limit); submitit then asks `checkpoint()` for what to run next, requeues the job and exits.
The requeued job executes the same request again, and the engine resumes the run from the last
checkpoint in its run directory, so it ends with the metrics of an uninterrupted run.

A run with several processes (--gpus-per-run N > 1, --nodes-per-run M > 1) runs as one task per
GPU; each task takes its rank from SLURM's environment (submitit's TorchDistributedEnvironment
exports RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT) and joins the run under DeepSpeed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import submitit


@dataclass(frozen=True)
class DistributedSettings:
    """How a multi-process run uses DeepSpeed (the leaderboard's --zero-stage / --deepspeed-config)."""

    zero_stage: int | None = None
    deepspeed_config: str | None = None


class RunJob(submitit.helpers.Checkpointable):
    """Execute one run's request file; requeued (and resumed from the run's checkpoint) when interrupted."""

    def __call__(self, request_file: str, threads: int = 1,
                 distributed: DistributedSettings | None = None) -> dict[str, Any]:
        from ..engine import execute_run
        from ..plan import read_request
        from ..run_dir import RunLockedError

        # the engine sets torch's threads from the run's config; other libraries (BLAS in numpy,
        # a suite's worker processes) size their pools from these, as in a local run
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
        deepspeed = None
        if distributed is not None:
            from ..distributed import DeepSpeedOptions

            # MASTER_ADDR is the job's first node; MASTER_PORT is drawn from the job id, so every task agrees
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
            deepspeed = DeepSpeedOptions(zero_stage=distributed.zero_stage, config_path=distributed.deepspeed_config)
        try:
            outcome = execute_run(read_request(request_file, progress=False, deepspeed=deepspeed))
        except RunLockedError as exc:  # another job (or process) works on the run: not this job's failure
            print(f"nightbench: {exc}; this job leaves the run to it", flush=True)
            return {"status": "running elsewhere", "run_dir": None, "skipped": True}
        return {"status": outcome.status, "run_dir": str(outcome.run_dir), "skipped": outcome.skipped}

    def checkpoint(self, request_file: str, threads: int = 1,
                   distributed: DistributedSettings | None = None) -> submitit.helpers.DelayedSubmission:
        """What the requeued job runs: the same request; the engine resumes from the run's last checkpoint."""
        print(f"nightbench: job interrupted (time limit or preemption); requeued to resume {request_file}", flush=True)
        return submitit.helpers.DelayedSubmission(self, request_file, threads, distributed)
