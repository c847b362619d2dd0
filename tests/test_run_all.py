"""`run_all.sh --preset ci`: the whole leaderboard end to end, ending in a report that names every run.

This is the user's main command at its smallest size: every suite x every registered optimizer
(one seed to keep CI short), each run in its own process, then the HTML report.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
from pathlib import Path

import pytest

from nightbench.optimizers import names as optimizer_names
from nightbench.suites.catalog import suite_names

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_run_all_ci_runs_every_suite_and_optimizer_and_writes_the_report(tmp_path):
    results = tmp_path / "results"
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(["bash", str(REPO / "run_all.sh"), "--preset", "ci", "--seeds", "1", "--jobs", "2",
                           "--results", str(results)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = results / "report-ci.html"
    assert f"report: {report.resolve()}" in done.stdout

    statuses = {}
    for summary_path in results.glob("*/ci/*/*/summary.json"):
        config = json.loads((summary_path.parent / "config.json").read_text())
        statuses[(config["suite"], config["optimizer"])] = json.loads(summary_path.read_text())["status"]
    expected = {(s, o) for s in suite_names() for o in optimizer_names()}
    assert set(statuses) == expected
    assert all(status in ("completed", "diverged") for status in statuses.values()), statuses

    page = html.unescape(report.read_text())
    for suite in suite_names():
        assert suite in page
    for optimizer in optimizer_names():
        assert optimizer in page
    assert "The paper" in page and "claims" in page
    assert page.count("<img") >= 4  # learning curves, floors, memory bars at least

    rerun = subprocess.run(["bash", str(REPO / "run_all.sh"), "--preset", "ci", "--seeds", "1", "--no-report",
                            "--results", str(results)], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0 and "0 to run" in rerun.stdout  # nothing finished is run again
