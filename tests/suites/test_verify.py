"""Numbers a reader can verify (issue 22, class 2): a finished run whose summary disagrees with its own
log, or whose config no longer hashes to its directory's identity, is "inconsistent" in
`nightbench verify`, `nightbench status` and the report alike, and enters no aggregate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nightbench.reports import build_context, load_results
from nightbench.reports.tables import leaderboard
from nightbench.suites.cli import main
from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.status import status_report


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """A results folder with two finished toy runs (seeds 0 and 1), made once and copied per test."""
    from nightbench.suites import catalog

    catalog.CATALOG.entries["toy"] = "tests.suites.toy_suite"
    root = tmp_path_factory.mktemp("two_seeds")
    try:
        for seed in (0, 1):
            execute_run(RunRequest(suite="toy", optimizer="sgd", preset="ci", seed=seed, results_root=str(root),
                                   progress=False))
    finally:
        catalog.CATALOG.entries.pop("toy")
    return root


def _edit(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def _set_final(value: float):
    return lambda summary: summary["final_metrics"].update(neg_mse=value)


EDITS = {
    "summary's final metric edited": ("summary.json", _set_final(0.5), "summary.json's final neg_mse = 0.5"),
    "a final metric the log never had": ("summary.json", lambda s: s["final_metrics"].update(acc=1.0),
                                                       "final acc = 1.0 but the last evaluation"),
    "config's lr edited": ("config.json", lambda c: c["hyperparameters"].update(lr=0.3),
                           "config.json's hyperparameters/settings hash to"),
    "config's seed edited": ("config.json", lambda c: c.update(seed=7), "hash to"),
    "config's suite config edited": ("config.json", lambda c: c["suite_config"].update(steps=3000), "hash to"),
}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("file, change, reason", EDITS.values(), ids=EDITS.keys())
def test_a_run_whose_files_disagree_is_inconsistent_everywhere_and_left_out(two_seeds, tmp_path, capsys,
                                                                           file, change, reason):
    results = tmp_path / "results"
    shutil.copytree(two_seeds, results)
    edited, kept = sorted(results.glob("toy/ci/sgd/*-seed*/"))
    _edit(edited / file, change)
    before = _snapshot(results)

    assert main(["verify", str(results)]) == 1
    out = capsys.readouterr().out
    assert f"inconsistent  {edited.relative_to(results)}: " in out and reason in out, out
    assert kept.name not in out
    assert "2 run(s) checked, 1 inconsistent" in out

    shown = status_report(results)
    assert "inconsistent" in shown and reason in shown, shown

    loaded = load_results(results)
    assert list(loaded.runs["run_dir"]) == [kept.relative_to(results).as_posix()]  # in no aggregate
    problem = loaded.problems.set_index("run_dir").loc[edited.relative_to(results).as_posix()]
    assert problem["status"] == "inconsistent" and reason in problem["reason"]
    table = leaderboard(loaded.runs, "toy").raw.iloc[0]
    kept_value = json.loads((kept / "summary.json").read_text())["final_metrics"]["neg_mse"]
    assert table["runs"] == 1 and table["mean"] == pytest.approx(kept_value)
    assert build_context(loaded)["n_inconsistent"] == 1  # the report's header counts it

    assert _snapshot(results) == before  # checking changes nothing


def test_runs_as_the_engine_wrote_them_are_consistent(two_seeds, tmp_path, capsys):
    """The other side of the table above: nothing is flagged in untouched results."""
    results = tmp_path / "results"
    shutil.copytree(two_seeds, results)
    assert main(["verify", str(results)]) == 0
    assert "2 run(s) checked, 0 inconsistent" in capsys.readouterr().out
    assert "inconsistent" not in status_report(results)
    loaded = load_results(results)
    assert len(loaded.runs) == 2 and loaded.inconsistent == 0


def test_verify_refuses_a_missing_results_folder(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    assert "results directory not found" in capsys.readouterr().err
