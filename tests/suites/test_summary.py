"""summary.json: every writer's summary reads back through the one reader, field by field; the
files nightbench 0.1.0 wrote (no format_version) still read; a newer format is refused."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from nightbench.reports.load import load_results
from nightbench.suites.engine import execute_run
from nightbench.suites.leaderboard import local, slurm
from nightbench.suites.outcomes import RunState
from nightbench.suites.plan import RunRequest
from nightbench.suites.summary import (CONFIG_FORMAT_VERSION, SUMMARY_FORMAT_VERSION, FormatVersionError, RunSummary,
                                       parse_summary, read_config, read_summary, write_summary)


def fake_plan(run_dir: Path) -> SimpleNamespace:
    """What an executor's failed summary reads of a plan."""
    run_dir.mkdir(parents=True)
    return SimpleNamespace(run_dir=run_dir, label="toy/ci/sgd/run", suite=SimpleNamespace(target_metric="accuracy"),
                           config={"target_value": 0.75}, resolved=SimpleNamespace(suite_config={"threads": 1}))


def on_disk(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_a_summary_with_every_field_set_reads_back_equal(tmp_path):
    values = {"status": RunState.DIVERGED, "error": "loss is nan", "diverged_step": 7, "final_metrics": {"acc": 0.5},
              "target_metric": "acc", "target_value": 0.9, "started": "2026-01-01T00:00:00+00:00",
              "finished": "2026-01-01T00:01:00+00:00", "steps": 7, "wall_time": 1.5, "step_time_median": 0.2,
              "data_wait_fraction": 0.1, "target_recorded": True, "steps_to_target": 5, "time_to_target": 1.0,
              "traceback": "Traceback ...", "rank_failures": [{"rank": 1}], "executor": "slurm", "log": "x.log",
              "log_tail": "tail", "job_id": "31_2"}
    # the test names every field: a field added to the schema without a round trip fails here
    assert set(values) | {"format_version"} == {f.name for f in dataclasses.fields(RunSummary)}
    summary = RunSummary(**values)
    write_summary(tmp_path, summary)
    assert on_disk(tmp_path)["format_version"] == SUMMARY_FORMAT_VERSION
    assert on_disk(tmp_path)["status"] == "diverged"
    assert read_summary(tmp_path) == summary


def test_the_engines_summary_reads_back_field_by_field(toy_suite, tmp_path):
    outcome = execute_run(RunRequest(suite="toy", optimizer="sgd", preset="ci", results_root=str(tmp_path),
                                     progress=False))
    written = on_disk(outcome.run_dir)
    summary = read_summary(outcome.run_dir)
    assert written == outcome.summary and summary.to_json() == written
    assert summary.status is RunState.COMPLETED and summary.format_version == SUMMARY_FORMAT_VERSION
    assert summary.target_recorded and "steps_to_target" in written  # a trained run tracks its target
    for name, value in written.items():
        assert getattr(summary, name) == value, name
    assert read_config(outcome.run_dir)["format_version"] == CONFIG_FORMAT_VERSION


def test_the_local_executors_failed_summary_reads_back(tmp_path, monkeypatch):
    plan = fake_plan(tmp_path / "run")
    executor = local.LocalExecutor(1, "unused", str(tmp_path))
    monkeypatch.setattr(local, "write_request", lambda plan: tmp_path / "request.json")
    monkeypatch.setattr(executor, "command", lambda request: [sys.executable, "-c", "print('dying'); exit(3)"])
    try:
        assert executor._execute(plan, "board") == RunState.FAILED
    finally:
        executor.close()
    summary = read_summary(plan.run_dir)
    assert summary.status is RunState.FAILED and "exited with status 3" in summary.error
    assert "dying" in summary.log_tail and Path(summary.log).exists() and summary.executor == "local"
    # what the local executor's summary lacked before the schema: the plan's target, the time
    assert (summary.target_metric, summary.target_value, summary.diverged_step) == ("accuracy", 0.75, None)
    assert summary.finished is not None and not summary.target_recorded
    assert summary.to_json() == on_disk(plan.run_dir)


def test_the_slurm_executors_failed_summaries_read_back(tmp_path):
    refused = fake_plan(tmp_path / "refused")
    slurm._record_refusal(refused, "QOSMaxSubmitJobPerUserLimit")
    summary = read_summary(refused.run_dir)
    assert summary.status is RunState.FAILED and summary.error == "sbatch refused the job: QOSMaxSubmitJobPerUserLimit"
    assert (summary.executor, summary.target_metric, summary.target_value) == ("slurm", "accuracy", 0.75)

    raised = fake_plan(tmp_path / "raised")
    slurm._record_job_failure(raised, {"job_id": "31_4", "log": "/logs/31_4.out"}, "Traceback\nValueError: bad\n")
    summary = read_summary(raised.run_dir)
    assert summary.error == "SLURM job 31_4 failed: ValueError: bad"
    assert (summary.job_id, summary.log, summary.traceback) == ("31_4", "/logs/31_4.out", "Traceback\nValueError: bad\n")
    assert summary.to_json() == on_disk(raised.run_dir)


# What nightbench 0.1.0 wrote, key for key (no format_version): the engine's trained run, an
# experiment, and the executors' failed summaries.
VERSION_0 = {
    "trained": {"status": "completed", "diverged_step": None, "error": None, "final_metrics": {"acc": 0.8},
                "target_metric": "acc", "target_value": 0.75, "started": "2026-01-01T00:00:00+00:00",
                "finished": "2026-01-01T00:10:00+00:00", "steps": 100, "wall_time": 600.0, "steps_to_target": None,
                "time_to_target": None, "step_time_median": 5.0, "data_wait_fraction": 0.01},
    "experiment": {"status": "diverged", "diverged_step": None, "error": None, "target_metric": None,
                   "target_value": None, "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00",
                   "final_metrics": {"units": 3, "floor": "nan"}, "wall_time": 60.0},
    "local": {"status": "failed", "error": "the run process exited with status -9 without a summary",
              "log_tail": "Killed", "log": "/r/_logs/board/x.log", "final_metrics": {}},
    "slurm": {"status": "failed", "error": "SLURM job 31_4 failed: boom", "diverged_step": None, "final_metrics": {},
              "executor": "slurm", "traceback": "Traceback", "log": "/r/_slurm/31_4.out", "job_id": "31_4"},
}


@pytest.mark.parametrize("kind", sorted(VERSION_0))
def test_a_version_0_summary_still_reads(tmp_path, kind):
    (tmp_path / "summary.json").write_text(json.dumps(VERSION_0[kind]))
    summary = read_summary(tmp_path)
    assert summary.format_version == 0 and summary.status.value == VERSION_0[kind]["status"]
    for name, value in VERSION_0[kind].items():
        if name != "status":
            assert getattr(summary, name) == value, name
    assert summary.target_recorded == ("steps_to_target" in VERSION_0[kind])


def test_version_0_reads_loosely_typed_fields_as_missing_and_non_finite_strings_as_floats(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed", "steps": "many", "wall_time": "inf",
                                                       "error": 3, "final_metrics": [1]}))
    summary = read_summary(tmp_path)
    assert summary.steps is None and summary.wall_time == math.inf and summary.error is None
    assert summary.final_metrics == {}


@pytest.mark.parametrize("text", ['{"status": "compl', '{"error": "no status"}', '{"status": "exploded"}', "[1]"])
def test_a_damaged_summary_reads_as_none_so_the_run_is_unfinished(tmp_path, text):
    (tmp_path / "summary.json").write_text(text)
    assert read_summary(tmp_path) is None


def test_no_summary_reads_as_none(tmp_path):
    assert read_summary(tmp_path) is None


def test_an_unknown_status_is_named_by_the_parser(tmp_path):
    with pytest.raises(ValueError, match="status 'exploded' is not completed/diverged/failed"):
        parse_summary({"status": "exploded"}, tmp_path / "summary.json")


@pytest.mark.parametrize("name, reader", [("summary.json", read_summary), ("config.json", read_config)])
def test_a_newer_format_version_is_refused_naming_the_file_and_the_versions_known(tmp_path, name, reader):
    (tmp_path / name).write_text(json.dumps({"status": "completed", "format_version": 99}))
    with pytest.raises(FormatVersionError) as caught:
        reader(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / name) in message and "format_version 99" in message
    assert "reads versions 0, 1" in message and "newer nightbench" in message


def test_a_format_version_that_is_no_version_is_called_damaged(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"format_version": "one"}))
    with pytest.raises(FormatVersionError, match="damaged"):
        read_config(tmp_path)


def test_a_config_without_format_version_is_version_0(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"suite": "toy"}))
    assert read_config(tmp_path) == {"suite": "toy"}


def test_the_report_lists_a_newer_summary_as_damaged_with_the_reason(tmp_path):
    run_dir = tmp_path / "toy" / "ci" / "sgd" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"suite": "toy", "format_version": 1}))
    (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "format_version": 2}))
    results = load_results(tmp_path)
    assert results.runs["status"].tolist() == ["damaged"]
    assert "format_version 2" in results.problems["reason"].iloc[0]


def test_the_engine_leaves_a_run_of_a_newer_nightbench_alone(toy_suite, tmp_path):
    request = RunRequest(suite="toy", optimizer="sgd", preset="ci", results_root=str(tmp_path), progress=False)
    run_dir = execute_run(request).run_dir
    (run_dir / "summary.json").unlink()  # unfinished: a rerun would resume it ...
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(FormatVersionError, match="config.json has format_version 99"):
        execute_run(request)  # ... but not one a newer nightbench started
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
