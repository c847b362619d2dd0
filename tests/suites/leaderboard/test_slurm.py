"""`nightbench leaderboard --executor slurm` against a real SLURM cluster (.ci/slurm-up.sh starts one).

Every board here is a `nightbench` process of its own, as a user starts it; its runs are jobs of
the cluster. The toy suite reaches the jobs through --suite-file. NIGHTBENCH_TOY_SLEEP makes toy
runs last longer without changing what they compute (it is read from the environment, which
sbatch passes on to the jobs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nightbench.suites.leaderboard.slurm_queue import read_job, squeue_states

from ..toy_suite import PRESET as TOY_PRESET
from .conftest import recorded_jobs

pytestmark = pytest.mark.slow

TOY_SUITE = str(Path(__file__).resolve().parents[1] / "toy_suite.py")
BOARD_TIMEOUT_S = 420
# metrics that measure the machine, not the model: they differ between any two runs
TIMING_METRICS = ("eval_images_per_second",)
TOY_STEPS = TOY_PRESET["steps"]  # the ci preset's (the toy suite's presets share it)
TOY_STEP_SLEEP_S = 0.4  # NIGHTBENCH_TOY_SLEEP where nothing needs a run to last longer
# A cancelled job is killed KillWait seconds after scancel's SIGTERM (which submitit ignores): the
# test stretches the run to outlast that, up to this KillWait (beyond it the test would take minutes).
MAX_KILL_WAIT_S = 120


@pytest.fixture
def fast_polling(tmp_path) -> Path:
    """An --executor-config that makes the board ask squeue every second (a lab's would say 30)."""
    path = tmp_path / "cluster.toml"
    path.write_text("poll_seconds = 1\n")
    return path


def nightbench(*argv: str, env: dict | None = None, timeout: float = BOARD_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nightbench.suites.cli", *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def start_board(*argv: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nightbench.suites.cli", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})


def toy_board(results: Path, config: Path, *extra: str) -> list[str]:
    return ["leaderboard", "--suites", "toy", "--suite-file", TOY_SUITE, "--preset", "ci", "--results", str(results),
            "--no-report", "--executor", "slurm", "--executor-config", str(config), *extra]


def summaries(results: Path) -> dict[tuple, dict]:
    """(suite, optimizer, protocol, seed, run_name) -> summary.json, for every finished run."""
    found = {}
    for path in Path(results).glob("*/*/*/*/summary.json"):
        config = json.loads((path.parent / "config.json").read_text())
        key = (config["suite"], config["optimizer"], config["protocol"], config["seed"], config["run_name"])
        found[key] = json.loads(path.read_text())
    return found


def model_metrics(summary: dict) -> dict:
    return {k: v for k, v in summary["final_metrics"].items() if k not in TIMING_METRICS}


def wait_until(condition, timeout: float, what: str, interval: float = 0.5, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the board exited ({process.returncode}) before {what}:\n{process.stdout.read()}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


# 1 -------------------------------------------------------------------------------------------
def test_a_ci_board_on_slurm_equals_the_local_board_bit_for_bit(slurm_cluster, tmp_path, fast_polling,
                                                               cancel_jobs_after, time_limited_board):
    # (time_limited_board: test 3's board, started now so that it runs beside this one)
    board = ["leaderboard", "--suites", "bert_mlm", "resnet50_imagenet", "--optimizers", "sgd", "adam",
             "--seeds", "2", "--preset", "ci", "--no-report"]
    started = time.monotonic()
    ok(nightbench(*board, "--results", str(tmp_path / "local"), "--executor", "local", "--jobs", "2"))
    local_s = time.monotonic() - started
    cancel_jobs_after(tmp_path / "slurm")
    started = time.monotonic()
    out = ok(nightbench(*board, "--results", str(tmp_path / "slurm"), "--executor", "slurm",
                        "--executor-config", str(fast_polling)))
    slurm_s = time.monotonic() - started
    print(f"\nci board, 2 suites x 2 optimizers x 2 seeds: --executor local --jobs 2 {local_s:.0f} s, "
          f"--executor slurm {slurm_s:.0f} s")
    assert "submitted 8 run(s) as SLURM job array" in out
    local, slurm = summaries(tmp_path / "local"), summaries(tmp_path / "slurm")
    assert len(local) == 8 and set(slurm) == set(local)
    for key, summary in local.items():
        assert summary["status"] == slurm[key]["status"] == "completed", key
        assert model_metrics(slurm[key]) == model_metrics(summary), key  # float equality: bit for bit
    assert all(len(jobs) == 1 for jobs in recorded_jobs(tmp_path / "slurm").values())


# 2 -------------------------------------------------------------------------------------------
def test_tuning_on_slurm_holds_the_barrier_across_a_reattach(slurm_cluster, tmp_path, fast_polling,
                                                            cancel_jobs_after):
    results = tmp_path / "results"
    cancel_jobs_after(results)
    board = toy_board(results, fast_polling, "--optimizers", "sgd", "--tune", "--tune-grid", "local", "--seeds", "2")
    out = ok(nightbench(*board, "--detach"))
    assert "[tuning] 3 runs: 3 to run" in out  # the toy suite's sgd lr 0.05 and its grid neighbours
    assert "the final stage starts once they have" in out
    assert not [k for k in summaries(results) if k[2] == "final"]
    assert {read_job(d)["stage"] for d in recorded_jobs(results)} == {"tuning"}

    out = ok(nightbench(*board))  # re-attach: wait for the tuning jobs, then the final stage
    assert "[tuning] 3 runs: 0 to run" in out and "[final] submitted 2 run(s)" in out
    runs = summaries(results)
    tuning = {k: s for k, s in runs.items() if k[2] == "tuning"}
    finals = {k: s for k, s in runs.items() if k[2] == "final"}
    assert len(tuning) == 3 and len(finals) == 2
    assert all(s["status"] == "completed" for s in runs.values())
    jobs = recorded_jobs(results)
    assert all(len(ids) == 1 for ids in jobs.values())  # nothing submitted twice
    # the barrier: every final job was submitted after the last tuning run had finished
    tuning_end = max(os.path.getmtime(d / "summary.json") for d in jobs if read_job(d)["stage"] == "tuning")
    final_submits = [read_job(d)["submitted_unix"] for d in jobs if read_job(d)["stage"] == "final"]
    assert len(final_submits) == 2 and min(final_submits) >= tuning_end
    record = json.loads(next((results / "_tuning").glob("*/toy/sgd.json")).read_text())
    best = record["best_lr"]
    assert all(json.loads((d / "config.json").read_text())["hyperparameters"]["lr"] == best
               for d in jobs if read_job(d)["stage"] == "final")


# 3 -------------------------------------------------------------------------------------------
TIME_LIMITED = ["--optimizers", "sgd", "--seeds", "1", "--set", "checkpoint_every=3"]


@pytest.fixture(scope="module")
def time_limited_board(slurm_cluster, tmp_path_factory):
    """The board of the time-limit test, started by the first test that asks for it.

    It mostly waits on SLURM's clock (the limit, the requeue), so it runs beside the other tests'
    boards rather than after them. Yields (process, results, start time)."""
    results = tmp_path_factory.mktemp("time_limited") / "slurm"
    config = results.parent / "cluster.toml"
    config.write_text("poll_seconds = 1\n")
    # 30 steps x 2.1 s: the run needs more than its one minute
    process = start_board(*toy_board(results, config, *TIME_LIMITED, "--slurm-time", "1"),
                          env={"NIGHTBENCH_TOY_SLEEP": "2.1"})
    yield process, results, time.monotonic()
    if process.poll() is None:
        process.kill()
        process.wait()
    ids = sorted({job.split("_")[0] for jobs in recorded_jobs(results).values() for job in jobs})
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60)


def test_a_run_longer_than_its_time_limit_is_requeued_and_ends_as_an_uninterrupted_run(time_limited_board, tmp_path):
    process, results, started = time_limited_board
    out, _ = process.communicate(timeout=BOARD_TIMEOUT_S)
    elapsed = time.monotonic() - started
    assert process.returncode == 0, out[-3000:]
    ok(nightbench("leaderboard", "--suites", "toy", "--suite-file", TOY_SUITE, "--preset", "ci", "--no-report",
                  "--results", str(tmp_path / "local"), *TIME_LIMITED))
    (key, summary), = summaries(results).items()
    reference = summaries(tmp_path / "local")[key]
    assert summary["status"] == "completed"
    assert summary["final_metrics"] == reference["final_metrics"]
    run_dir = next(iter(recorded_jobs(results)))
    record = read_job(run_dir)
    assert len(record["jobs"]) == 1  # requeued as the same job, never submitted again
    assert elapsed > 60, "the run should have needed more than its time limit"
    log = Path(record["log"]).read_text()
    assert "requeued to resume" in log
    resumes = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
               if '"resume"' in line]
    assert resumes and all(r["step"] > 0 for r in resumes)  # each requeued job went on from a checkpoint


# 4 -------------------------------------------------------------------------------------------
def test_a_killed_board_started_again_submits_no_run_twice(slurm_cluster, tmp_path, fast_polling,
                                                          cancel_jobs_after):
    results = tmp_path / "results"
    cancel_jobs_after(results)
    # two at a time (the array's throttle): when the first runs end, the others have not started
    board = toy_board(results, fast_polling, "--optimizers", "sgd", "adam", "--seeds", "2", "--max-parallel", "2")
    env = {"NIGHTBENCH_TOY_SLEEP": "0.4"}
    process = start_board(*board, env=env)
    try:
        wait_until(lambda: len(recorded_jobs(results)) == 4 and summaries(results), 180,
                   "the first of 4 runs to finish", process=process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    before = recorded_jobs(results)
    unfinished = [d for d in before if not (d / "summary.json").exists()]
    print(f"\nkill -9 with {len(before) - len(unfinished)} of 4 runs finished; job ids recorded before the kill: "
          f"{sum(len(ids) for ids in before.values())}")
    assert unfinished, "the board should be killed in its middle"
    out = ok(nightbench(*board, env=env))
    after = recorded_jobs(results)
    print(f"job ids recorded after the restart: {sum(len(ids) for ids in after.values())}")
    assert after == before  # the same job of every run, none submitted twice
    assert "submitted" not in out
    assert len(summaries(results)) == 4 and all(s["status"] == "completed" for s in summaries(results).values())


# 5 -------------------------------------------------------------------------------------------
def kill_wait_s() -> int:
    """The cluster's KillWait: seconds between a cancelled job's SIGTERM and its SIGKILL."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"^KillWait\s*=\s*(\d+)", config, flags=re.MULTILINE)
    if found is None:
        pytest.fail("`scontrol show config` gives no KillWait")
    return int(found.group(1))


def step_sleep_to_outlast(kill_wait: int) -> float:
    """NIGHTBENCH_TOY_SLEEP such that the steps after the first checkpoint take 1.5 KillWait."""
    return max(TOY_STEP_SLEEP_S, 1.5 * kill_wait / (TOY_STEPS - 2))


def test_a_cancelled_run_is_stretched_to_outlast_the_kill_wait():
    assert step_sleep_to_outlast(5) == TOY_STEP_SLEEP_S  # .ci/slurm-up.sh's cluster: as before
    for kill_wait in (5, 30, MAX_KILL_WAIT_S):
        assert (TOY_STEPS - 2) * step_sleep_to_outlast(kill_wait) >= 1.5 * kill_wait


def test_a_cancelled_job_is_resubmitted_on_reattach_and_resumes_from_its_checkpoint(
        slurm_cluster, tmp_path, fast_polling, cancel_jobs_after):
    kill_wait = kill_wait_s()
    if kill_wait > MAX_KILL_WAIT_S:
        pytest.skip(f"the cluster's KillWait is {kill_wait} s: a cancelled job runs on that long, and a toy run "
                    f"stretched to outlast it would take minutes; this test needs KillWait <= {MAX_KILL_WAIT_S} s "
                    "(.ci/slurm-up.sh's cluster sets 5)")
    settings = ["--optimizers", "sgd", "--seeds", "1", "--set", "checkpoint_every=2"]
    results = tmp_path / "slurm"
    cancel_jobs_after(results)
    board = toy_board(results, fast_polling, *settings)
    env = {"NIGHTBENCH_TOY_SLEEP": str(step_sleep_to_outlast(kill_wait))}
    ok(nightbench(*board, "--detach", env=env))
    (run_dir, jobs), = recorded_jobs(results).items()
    wait_until(lambda: (run_dir / "checkpoint.pt").exists(), 120, "the run's first checkpoint")
    assert squeue_states().get(jobs[0]) == "running"
    subprocess.run(["scancel", jobs[0]], check=True)
    wait_until(lambda: jobs[0] not in squeue_states(), kill_wait + 60, "the cancelled job to leave the queue")
    status = ok(nightbench("status", str(results)))
    assert "interrupted" in status and str(Path(read_job(run_dir)["log"])) in status
    assert not (run_dir / "summary.json").exists()

    out = ok(nightbench(*board, env=env))
    assert "submitted 1 run(s)" in out
    record = read_job(run_dir)
    assert len(record["jobs"]) == 2 and record["jobs"][0] == jobs[0]  # resubmitted once, as a new job
    resumes = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
               if '"resume"' in line]
    assert len(resumes) == 1 and resumes[0]["step"] > 0
    ok(nightbench("leaderboard", "--suites", "toy", "--suite-file", TOY_SUITE, "--preset", "ci", "--no-report",
                  "--results", str(tmp_path / "local"), *settings))
    (key, summary), = summaries(results).items()
    assert summary["status"] == "completed"
    assert summary["final_metrics"] == summaries(tmp_path / "local")[key]["final_metrics"]


# 6 -------------------------------------------------------------------------------------------
def test_no_sbatch_on_path_is_bad_input_and_writes_nothing(tmp_path):
    """Needs no cluster: the command must refuse before it touches anything."""
    bin_dir = tmp_path / "bin"  # a PATH without SLURM's commands (the board runs this Python by its full path)
    bin_dir.mkdir()
    results = tmp_path / "results"
    env = {"PATH": str(bin_dir)}
    assert shutil.which("sbatch", path=env["PATH"]) is None
    result = nightbench("leaderboard", "--suites", "toy", "--suite-file", TOY_SUITE, "--preset", "ci",
                        "--results", str(results), "--executor", "slurm", env=env)
    assert result.returncode == 2, result.stderr
    assert "sbatch" in result.stderr and "--executor local" in result.stderr
    assert not results.exists()


# beyond the six: the multi-process path and sbatch's refusals --------------------------------
def test_a_two_gpu_run_is_one_job_of_two_deepspeed_ranks(slurm_cluster, tmp_path, fast_polling, cancel_jobs_after):
    """--gpus-per-run 2: one job, two tasks; each takes its rank from SLURM and joins DeepSpeed.

    The test cluster's node offers two stand-in GPUs (.ci/slurm-up.sh); --device cpu trains on CPU (gloo)."""
    if "gpu:" not in subprocess.run(["sinfo", "--noheader", "--format=%G"], capture_output=True, text=True).stdout:
        pytest.skip("the SLURM node offers no GPUs (gres); .ci/slurm-up.sh configures two stand-ins")
    results = tmp_path / "slurm"
    cancel_jobs_after(results)
    settings = ["--optimizers", "sgd", "--seeds", "1"]
    out = ok(nightbench(*toy_board(results, fast_polling, *settings, "--gpus-per-run", "2", "--device", "cpu")))
    assert "(2 processes each" in out
    ok(nightbench("leaderboard", "--suites", "toy", "--suite-file", TOY_SUITE, "--preset", "ci", "--no-report",
                  "--results", str(tmp_path / "local"), *settings))
    (run_dir, jobs), = recorded_jobs(results).items()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["world_size"] == 2 and config["distributed"]["world_size"] == 2
    script = (Path(read_job(run_dir)["submitit_folder"]) / f"{jobs[0]}_submission.sh").read_text()
    assert "--ntasks-per-node=2" in script and "--gpus-per-node=2" in script
    (key, summary), = summaries(results).items()
    reference = summaries(tmp_path / "local")[key]  # the same run: world size is not part of its identity
    assert summary["status"] == "completed"
    for name, value in reference["final_metrics"].items():  # sums over 2 ranks, taken in another order
        assert summary["final_metrics"][name] == pytest.approx(value, rel=1e-5, abs=2e-5)


def test_a_job_sbatch_refuses_is_recorded_as_failed_and_the_board_goes_on(slurm_cluster, tmp_path, fast_polling):
    results = tmp_path / "results"
    result = nightbench(*toy_board(results, fast_polling, "--optimizers", "sgd", "adam", "--seeds", "1",
                                   "--slurm-partition", "no_such_partition"))
    assert result.returncode == 1, result.stdout + result.stderr  # runs failed; not a crash, not bad input
    assert "sbatch refused 2 run(s)" in result.stdout
    failed = [json.loads(p.read_text()) for p in results.glob("toy/ci/*/*/summary.json")]
    assert len(failed) == 2 and all(s["status"] == "failed" for s in failed)
    assert all("invalid partition" in s["error"].lower() for s in failed)
    assert not recorded_jobs(results)  # no job was ever queued

    detached = nightbench(*toy_board(tmp_path / "detached", fast_polling, "--optimizers", "sgd", "--seeds", "1",
                                     "--slurm-partition", "no_such_partition", "--detach"))
    assert detached.returncode == 1, detached.stdout + detached.stderr  # not "submitted", exit 0
    assert "submitted: 0, failed: 1" in detached.stdout
