"""A user's own suite, from a file (--suite-file) and from an installed package's entry point:
listed, put on a ci leaderboard, and found in the report (its leaderboard table and learning curves)."""

from __future__ import annotations

import json
import sys

import pytest

from nightbench.optimizers.plugin_registry import UnknownNameError
from nightbench.suites import catalog
from nightbench.suites.cli import main
from tests.plugin_files import training_suite_plugin


def _board_summaries(results, suite_name):
    return [json.loads(p.read_text()) for p in results.glob(f"{suite_name}/ci/*/*/summary.json")]


def _report_shows(report_html: str, suite_name: str) -> None:
    assert f'id="suite-{suite_name}"' in report_html or f"suite-{suite_name}" in report_html
    assert f"leaderboard-{suite_name}" in report_html  # the suite's leaderboard table
    assert f"Learning curves, {suite_name}" in report_html  # the learning-curve figure's alt text


@pytest.mark.slow
def test_a_suite_file_is_listed_run_on_the_board_and_reported(clean_catalog, tmp_path, capsys):
    suite_file = tmp_path / "my_suite.py"
    suite_file.write_text(training_suite_plugin("file_lsq"))
    assert main(["list", "suites", "--suite-file", str(suite_file)]) == 0
    assert "file_lsq" in capsys.readouterr().out
    results = tmp_path / "results"
    code = main(["leaderboard", "--suites", "file_lsq", "--optimizers", "sgd", "nsgd", "--seeds", "1",
                 "--preset", "ci", "--jobs", "2", "--suite-file", str(suite_file), "--results", str(results)])
    assert code == 0
    summaries = _board_summaries(results, "file_lsq")
    assert len(summaries) == 2 and all(s["status"] == "completed" for s in summaries)
    _report_shows((results / "report-ci.html").read_text(), "file_lsq")


@pytest.mark.slow
def test_an_entry_point_suite_is_found_by_parent_and_child_processes(clean_catalog, tmp_path, monkeypatch):
    site = tmp_path / "site"
    package = site / "lsq_suite_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(training_suite_plugin("entry_point_lsq"))
    dist_info = site / "lsq_suite_pkg-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: lsq-suite-pkg\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[nightbench.suites]\nlsq = lsq_suite_pkg\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site) + (":" + sys.path[0] if sys.path[0] else ""))
    monkeypatch.setattr(catalog.CATALOG, "loaded", False)
    assert "entry_point_lsq" in catalog.suite_names()
    results = tmp_path / "results"
    code = main(["leaderboard", "--suites", "entry_point_lsq", "--optimizers", "sgd", "--seeds", "2",
                 "--preset", "ci", "--jobs", "2", "--results", str(results)])
    assert code == 0
    summaries = _board_summaries(results, "entry_point_lsq")
    assert len(summaries) == 2 and all(s["status"] == "completed" for s in summaries)
    _report_shows((results / "report-ci.html").read_text(), "entry_point_lsq")


@pytest.mark.parametrize("source, message", [
    ("x = 1\n", "defines no suite"),
    ("import sys\nsys.exit(3)\n", "failed to import: SystemExit: 3"),
    ("SUITE = object()\n", "is not a suite"),
    ("raise RuntimeError('broken on purpose')\n", "broken on purpose"),
])
def test_a_bad_suite_file_is_reported_by_name_with_exit_2(clean_catalog, tmp_path, capsys, source, message):
    suite_file = tmp_path / "bad_suite.py"
    suite_file.write_text(source)
    results = tmp_path / "results"
    code = main(["leaderboard", "--suites", "bad", "--preset", "ci", "--suite-file", str(suite_file),
                 "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and str(suite_file) in err
    assert not results.exists() or not any(results.iterdir())


def test_an_unknown_suite_gets_the_name_suggestion_error_the_optimizers_use(clean_catalog):
    with pytest.raises(UnknownNameError, match=r"^unknown suite 'bert_mln'\. Did you mean 'bert_mlm'\? Known suites: "):
        catalog.get_suite("bert_mln")


def test_a_suite_file_is_staged_whole_and_loading_it_again_is_a_no_op(clean_catalog, tmp_path):
    # Two suites in one file, the second taking a builtin's name: the first, already staged, is dropped too.
    clash = tmp_path / "clash.py"
    clash.write_text(training_suite_plugin("bert_mlm")
                     + "\nclass Other(LeastSquares):\n    name = 'other_lsq'\n\nOTHER, TAKEN = Other(), SUITE\ndel SUITE\n")
    with pytest.raises(catalog.SuitePluginError, match="the suite name 'bert_mlm' is taken"):
        catalog.load_suite_file(clash)
    assert "other_lsq" not in catalog.suite_names()
    assert catalog.CATALOG.get("bert_mlm") == "nightbench.suites.bert_mlm.suite"  # the builtin is untouched
    good = tmp_path / "good.py"
    good.write_text(training_suite_plugin("good_lsq"))
    assert catalog.load_suite_file(good) == catalog.load_suite_file(good) == ["good_lsq"]
