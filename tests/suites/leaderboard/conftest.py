"""A real SLURM cluster for the executor's tests (.ci/slurm-up.sh starts one), or a skip that says why."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nightbench.suites.leaderboard.slurm_queue import JOB_FILE, read_job

SLURM_COMMANDS = ("sbatch", "squeue", "srun", "scontrol", "scancel", "sinfo")


def _cluster_problem() -> str | None:
    missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
    if missing:
        return f"SLURM's commands are not installed ({', '.join(missing)} not on PATH); .ci/slurm-up.sh installs them"
    try:
        answer = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s: slurmctld is not running (start it with .ci/slurm-up.sh)"
    if answer.returncode != 0:
        return f"no SLURM controller answers ({answer.stderr.strip()[:200]}); start one with .ci/slurm-up.sh (as root)"
    states = answer.stdout.split()
    if not any(s.rstrip("*~#") in ("idle", "mix", "alloc", "alloc+", "comp") for s in states):
        return f"the SLURM cluster has no usable node (node states: {' '.join(states) or 'none'})"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """Skips the test, saying why, unless a SLURM cluster with a usable node answers."""
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)
    return True


def recorded_jobs(results: Path) -> dict[Path, list[str]]:
    """run directory -> every job id it was submitted as (its job record)."""
    found = {}
    for path in Path(results).glob(f"*/*/*/*/{JOB_FILE}"):
        found[path.parent] = list((read_job(path.parent) or {}).get("jobs", []))
    return found


@pytest.fixture
def cancel_jobs_after():
    """Results roots registered here have their jobs cancelled when the test ends (pass or fail)."""
    roots: list[Path] = []
    yield roots.append
    ids = sorted({job.split("_")[0] for root in roots for jobs in recorded_jobs(root).values() for job in jobs})
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60)
