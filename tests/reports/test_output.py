"""`nightbench report RESULTS -o OUT`: an OUT that cannot be written fails at once with a clear InputError."""

from __future__ import annotations

import os

import pytest

from nightbench.optimizers.errors import InputError
from nightbench.reports import ReportOutputError, ResultsNotFoundError, build_report


def _folder(tmp_path):
    (tmp_path / "out").mkdir()
    return tmp_path / "out", "is a folder"


def _under_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    return tmp_path / "notes.txt" / "deeper" / "report.html", "which is a file"


def _unwritable_for_everyone(tmp_path):
    return "/proc/nightbench-report.html", "cannot be written"  # no one creates files in /proc, root included


def _unwritable_folder(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder; the /proc case covers root")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "report.html", "cannot be written"


def _empty(tmp_path):
    return "", "is empty"


@pytest.mark.parametrize("make_case", [_folder, _under_a_file, _unwritable_for_everyone, _unwritable_folder, _empty],
                         ids=["folder", "under-a-file", "unwritable-proc", "unwritable-folder", "empty"])
def test_bad_output_paths_fail_before_any_work(tmp_path, make_case):
    output, says = make_case(tmp_path)
    # the results folder does not exist: the output is checked first, so that is never reached
    with pytest.raises(ReportOutputError) as caught:
        build_report(tmp_path / "no-such-results", output)
    message = str(caught.value)
    assert isinstance(caught.value, InputError)
    assert says in message and "expected the path of an HTML file" in message
    if str(output):
        assert str(output) in message
    assert not list(tmp_path.glob("**/.report-*"))  # no probe or partial file left behind


@pytest.mark.parametrize("make_output", [lambda p: p / "report.html", lambda p: p / "new" / "deeper" / "r.html"])
def test_good_output_paths_are_written(tmp_path, make_output):
    output = make_output(tmp_path)
    assert build_report(tmp_path, output) == output and output.read_text().startswith("<!DOCTYPE html>")


def test_missing_results_folder_is_bad_input(tmp_path):
    with pytest.raises(ResultsNotFoundError, match="nope") as caught:
        build_report(tmp_path / "nope", tmp_path / "report.html")
    assert isinstance(caught.value, InputError) and isinstance(caught.value, FileNotFoundError)
    assert not (tmp_path / "report.html").exists()
