"""A run killed with SIGKILL halfway resumes from its last checkpoint and ends as if uninterrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from nightbench.suites.run_dir import read_metrics
from nightbench.suites.summary import read_summary

REPO = Path(__file__).resolve().parents[2]


def _command(results: Path) -> list[str]:
    return [sys.executable, "-m", "tests.suites.toy_cli", "run", "--suite", "toy", "--optimizer", "sgd",
            "--preset", "ci", "--quiet", "--results", str(results), "--set", "steps=60"]


def _comparable(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "step_time", "data_wait")}
            for r in read_metrics(run_dir) if r["kind"] in ("train", "eval")]


def test_sigkill_then_rerun_matches_uninterrupted_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    reference = subprocess.run(_command(tmp_path / "reference"), cwd=REPO, env=env, capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr
    (ref_dir,) = (tmp_path / "reference" / "toy" / "ci" / "sgd").iterdir()

    killed_root = tmp_path / "killed"
    slow_env = {**env, "NIGHTBENCH_TOY_SLEEP": "0.05"}
    proc = subprocess.Popen(_command(killed_root), cwd=REPO, env=slow_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    run_dir = None
    while time.monotonic() < deadline:
        dirs = list((killed_root / "toy" / "ci" / "sgd").glob("*")) if killed_root.exists() else []
        if dirs and any(r.get("kind") == "eval" and r["step"] >= 30 for r in read_metrics(dirs[0])):
            run_dir = dirs[0]
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_dir is not None, "the slowed run never reached step 30"
    assert read_summary(run_dir) is None  # killed: unfinished
    interrupted_steps = max(r["step"] for r in read_metrics(run_dir) if r["kind"] == "train")
    assert interrupted_steps < 60

    resumed = subprocess.run(_command(killed_root), cwd=REPO, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert read_summary(run_dir).status == "completed"
    assert any(r["kind"] == "resume" for r in read_metrics(run_dir))
    assert _comparable(run_dir) == _comparable(ref_dir)  # each step logged once, same values
    assert read_summary(run_dir).final_metrics == read_summary(ref_dir).final_metrics
    final = torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]
    expected = torch.load(ref_dir / "checkpoint.pt", weights_only=False)["model"]
    for key in expected:
        assert torch.equal(final[key], expected[key])
