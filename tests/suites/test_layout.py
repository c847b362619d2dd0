"""layout.find_runs: the one walk over a results root, as the report and `nightbench status` use it."""

from __future__ import annotations

from pathlib import Path

from nightbench.reports.load import find_run_dirs
from nightbench.suites import layout
from nightbench.suites.status import find_runs as status_runs


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")


def results_tree(root: Path) -> None:
    touch(root / "toy/ci/sgd/finished" / layout.SUMMARY_FILE)
    touch(root / "toy/ci/sgd/started" / layout.CONFIG_FILE)
    touch(root / "toy/ci/sgd/checkpointed" / layout.CHECKPOINT_FILE)
    touch(root / "toy/ci/sgd/submitted" / layout.JOB_FILE)
    (root / "toy/ci/sgd/empty").mkdir()
    touch(root / "toy/ci/sgd" / f"planned{layout.REQUEST_SUFFIX}")
    touch(root / "toy/ci/_sanitized_name/finished" / layout.SUMMARY_FILE)  # '_' below the top is a name
    touch(root / layout.CACHE_DIR / "corpus/x/y" / layout.CONFIG_FILE)  # a cache's own config.json
    touch(root / "toy/ci/.hidden/run" / layout.SUMMARY_FILE)
    touch(root / "toy/ci/sgd/finished/nested" / layout.SUMMARY_FILE)  # inside a run: not a run


def names(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_the_report_finds_every_started_run_and_empty_run_folders(tmp_path):
    results_tree(tmp_path)
    assert names(find_run_dirs(tmp_path), tmp_path) == [
        "toy/ci/_sanitized_name/finished", "toy/ci/sgd/checkpointed", "toy/ci/sgd/empty", "toy/ci/sgd/finished",
        "toy/ci/sgd/started", "toy/ci/sgd/submitted"]


def test_status_finds_runs_with_a_file_or_a_job_and_planned_runs(tmp_path):
    results_tree(tmp_path)
    assert names(status_runs(tmp_path), tmp_path) == [
        "toy/ci/_sanitized_name/finished", "toy/ci/sgd/finished", "toy/ci/sgd/planned", "toy/ci/sgd/started",
        "toy/ci/sgd/submitted"]


def test_request_path_sits_beside_the_run_directory(tmp_path):
    run_dir = layout.run_path(tmp_path, "toy", "ci", "sgd", "run")
    assert layout.request_path(run_dir) == tmp_path / "toy/ci/sgd" / f"run{layout.REQUEST_SUFFIX}"
