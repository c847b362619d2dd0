"""`run_all.sh --preset ci`: the whole leaderboard end to end, ending in a report that names every run.

This is the user's main command at its smallest size: every suite x every registered optimizer
(one seed to keep CI short), each run in its own process, then the HTML report.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from nightbench.optimizers import expand_names
from nightbench.suites.catalog import suite_names
from tests.plugin_files import sign_sgd_plugin

REPO = Path(__file__).resolve().parents[1]
PLUGIN = "run_all_sign_sgd"  # a user's optimizer, added with --optimizer-file
PLUGIN_SOURCE = sign_sgd_plugin(PLUGIN, lr=1e-3)
# Each command's own time limit, both inside this test's pytest-timeout limit (the project's 900 s is
# for a hung test, not for this one), so a stuck run_all.sh fails here with its output.
RUN_TIMEOUT_S, RERUN_TIMEOUT_S = 1500, 240
TEST_TIMEOUT_S = RUN_TIMEOUT_S + RERUN_TIMEOUT_S + 60


class TablesAndFigures(HTMLParser):
    """Each <table>'s header cells and text, and each <img>'s alt text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.alts: list[str] = []
        self._in_table = self._in_th = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._in_table = True
            self.tables.append({"headers": [], "text": ""})
        elif tag == "th" and self._in_table:
            self._in_th = True
            self.tables[-1]["headers"].append("")
        elif tag == "img":
            self.alts.append(dict(attrs).get("alt", ""))

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag == "th":
            self._in_th = False

    def handle_data(self, data):
        if self._in_table:
            self.tables[-1]["text"] += data + " "
            if self._in_th:
                self.tables[-1]["headers"][-1] += data


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_run_all_ci_runs_every_suite_and_optimizer_and_writes_the_report(tmp_path):
    results = tmp_path / "results"
    plugin = tmp_path / "my_opt.py"
    plugin.write_text(PLUGIN_SOURCE)
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(["bash", str(REPO / "run_all.sh"), "--preset", "ci", "--seeds", "1", "--jobs", "2",
                           "--results", str(results), "--optimizer-file", str(plugin)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = results / "report-ci.html"
    assert f"report: {report.resolve()}" in done.stdout

    statuses = {}
    for summary_path in results.glob("*/ci/*/*/summary.json"):
        config = json.loads((summary_path.parent / "config.json").read_text())
        statuses[(config["suite"], config["optimizer"])] = json.loads(summary_path.read_text())["status"]
    board = expand_names(["paper"])  # the default board: the paper's eight and the plugin loaded
    expected = {(s, o) for s in suite_names() for o in [*board, PLUGIN]}
    assert set(statuses) == expected
    assert all(status in ("completed", "diverged") for status in statuses.values()), statuses

    page = html.unescape(report.read_text())
    for suite in suite_names():
        assert suite in page
    for optimizer in board:
        assert optimizer in page
    assert "The paper" in page and "claims" in page
    assert page.count("<img") >= 4  # learning curves, floors, memory bars at least

    # The plugin is in every table that lists optimizers and in every figure (its alt text names
    # the legend's entries), exactly like the registered optimizers.
    parser = TablesAndFigures()
    parser.feed(report.read_text())
    optimizer_tables = [t for t in parser.tables if "Optimizer" in t["headers"]]
    assert len(optimizer_tables) >= 5  # bert, resnet leaderboards; floors; memory; step time; runs
    for table in optimizer_tables:
        assert PLUGIN in table["text"], table["headers"]
    assert len(parser.alts) >= 4
    for alt in parser.alts:
        assert PLUGIN in alt, alt

    rerun = subprocess.run(["bash", str(REPO / "run_all.sh"), "--preset", "ci", "--seeds", "1", "--no-report",
                            "--results", str(results)], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=RERUN_TIMEOUT_S)
    assert rerun.returncode == 0 and "0 to run" in rerun.stdout  # nothing finished is run again


def test_the_commands_time_out_before_pytest_does(request):
    marker = request.node.module.test_run_all_ci_runs_every_suite_and_optimizer_and_writes_the_report
    limit = next(m.args[0] for m in marker.pytestmark if m.name == "timeout")
    assert RUN_TIMEOUT_S + RERUN_TIMEOUT_S < limit


def test_run_all_keeps_the_callers_folder_for_relative_paths(tmp_path):
    """`../repo/run_all.sh --optimizer-file my_opt.py` means the caller's my_opt.py (and ./results)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "nightbench"  # stands in for the installed command: says where it ran and with what
    stub.write_text('#!/bin/sh\necho "cwd=$(pwd)"\nfor arg in "$@"; do echo "arg=$arg"; done\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(REPO / "run_all.sh"), "--optimizer-file", "my_opt.py"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"cwd={tmp_path.resolve()}", "arg=leaderboard", "arg=--optimizer-file",
                                        "arg=my_opt.py"]
