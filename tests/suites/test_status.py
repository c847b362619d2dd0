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
