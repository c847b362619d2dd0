"""`nightbench status`: damaged job records and summaries cut short are shown as damaged, as the report shows them."""

from __future__ import annotations

import json

import pytest

from nightbench.suites.cli import main


TOY = ["--suite", "toy", "--optimizer", "sgd", "--preset", "ci"]


@pytest.mark.slow  # 39 s where SLURM's client is installed and no controller answers (squeue's own timeout)
def test_a_job_record_of_wrong_types_is_shown_as_damaged_by_status(clean_catalog, toy_suite, tmp_path, capsys):
    assert main(["run", *TOY, "--results", str(tmp_path), "--quiet"]) == 0
    run_dir = next(tmp_path.glob("toy/ci/sgd/*/"))
    (run_dir / "job.json").write_text(json.dumps({"job_id": "31_0", "stage": 3, "jobs": 5, "log": "x"}))
    capsys.readouterr()
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "damaged" in out and "job.json field 'stage' is 3; expected a string" in out, out


def test_status_and_the_report_agree_on_a_summary_cut_short(clean_catalog, toy_suite, tmp_path, capsys):
    from nightbench.reports import load_results
    from nightbench.suites.status import status_report

    assert main(["run", *TOY, "--results", str(tmp_path), "--quiet"]) == 0
    summary = next(tmp_path.glob("toy/ci/sgd/*/summary.json"))
    summary.write_text(summary.read_text()[:40])
    shown = status_report(tmp_path)
    header, row = [line.split() for line in shown.splitlines() if line.startswith(("suite /", "toy /"))]
    counts = dict(zip(header[3:], row[3:]))  # after 'suite / stage' and 'toy / default'
    assert counts.get("damaged") == "1" and "interrupted" not in counts, shown
    assert list(load_results(tmp_path).runs["status"]) == ["damaged"]


HOLD_LOCK = """
import sys, time
from pathlib import Path
from nightbench.suites.run_dir import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def _counts(shown: str) -> dict[str, str]:
    header, row = [line.split() for line in shown.splitlines() if line.startswith(("suite /", "toy /"))]
    return dict(zip(header[3:], row[3:]))  # after 'suite / stage' and 'toy / default'


def _unfinish(run_dir):
    (run_dir / "summary.json").unlink()  # config, metrics and checkpoint, no summary


def _fail(run_dir):  # a failed run, as the engine leaves it until a rerun writes its new summary
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "failed", "error": "RuntimeError: x"}))


@pytest.mark.parametrize("prepare, stale_state", [(_unfinish, "interrupted"), (_fail, "failed")],
                         ids=["unfinished", "failed, being run again"])
def test_a_run_another_live_process_holds_is_running_and_a_stale_lock_is_not(clean_catalog, toy_suite, tmp_path,
                                                                             capsys, prepare, stale_state):
    """Status reads the run's lock as the engine takes it: held by a live process (here a child that
    holds it as `nightbench run` does) the run is running, with the pid; left behind by a killed one,
    it is what its files say (interrupted, or failed)."""
    import subprocess
    import sys

    from nightbench.suites.status import status_report

    assert main(["run", *TOY, "--results", str(tmp_path), "--quiet"]) == 0
    run_dir = next(tmp_path.glob("toy/ci/sgd/*/"))
    prepare(run_dir)
    assert _counts(status_report(tmp_path)).get(stale_state) == "1"

    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(["run", *TOY, "--results", str(tmp_path), "--quiet"]) == 75  # the engine agrees: held
        assert f"pid {holder.pid} " in capsys.readouterr().err
        shown = status_report(tmp_path)
        assert _counts(shown)["running"] == "1" and _counts(shown).get(stale_state, "0") == "0", shown
        assert f"running     {run_dir.relative_to(tmp_path)}  (pid {holder.pid} on " in shown, shown
        # not listed among the failed/interrupted that the same command runs again
        assert f"{stale_state:<11} {run_dir.relative_to(tmp_path)}" not in shown and "submits" not in shown, shown
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the lock file keeps naming the dead pid
        holder.wait()
    assert f"pid {holder.pid} " in (run_dir / ".lock").read_text()
    shown = status_report(tmp_path)
    counts = _counts(shown)
    assert counts[stale_state] == "1" and counts["running"] == "0", shown
    assert f"pid {holder.pid}" not in shown and f"{stale_state:<11} {run_dir.relative_to(tmp_path)}" in shown, shown
