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


def _counts(shown: str) -> dict[str, str]:
    """`nightbench status`'s counts summed over the toy suite's rows (a run whose config cannot be read
    has no known stage: its row is 'toy / ?')."""
    header, *rows = [line.split() for line in shown.splitlines() if line.startswith(("suite /", "toy /"))]
    return {state: str(sum(int(row[i + 3]) for row in rows)) for i, state in enumerate(header[3:])}


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
    assert "2 finished run(s) checked, 1 inconsistent" in out and "not checked" not in out, out
    # what verify says the other readers do with it is what they do (the report: below)
    assert ("`nightbench status` counts them as inconsistent, not as completed or diverged" in out
            and "leave them out" not in out), out

    shown = status_report(results)
    assert "inconsistent" in shown and reason in shown, shown
    assert _counts(shown)["inconsistent"] == "1" and _counts(shown)["completed"] == "1", shown

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
    out = capsys.readouterr().out
    assert "2 finished run(s) checked, 0 inconsistent" in out and "damaged" not in out, out
    assert "inconsistent" not in status_report(results)
    loaded = load_results(results)
    assert len(loaded.runs) == 2 and loaded.inconsistent == 0


def test_verify_refuses_a_missing_results_folder(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    assert "results directory not found" in capsys.readouterr().err


def test_a_summary_cut_short_is_reported_damaged_and_fails_verify(two_seeds, tmp_path, capsys):
    """A summary.json verify cannot read is not a consistent run: named, with why, exit 1, as status calls it."""
    results = tmp_path / "results"
    shutil.copytree(two_seeds, results)
    cut, kept = sorted(results.glob("toy/ci/sgd/*-seed*/"))
    (cut / "summary.json").write_text('{"status": "comp')

    assert main(["verify", str(results)]) == 1
    out = capsys.readouterr().out
    assert f"damaged       {cut.relative_to(results)}: summary.json cannot be read" in out, out
    assert kept.name not in out
    assert "1 finished run(s) checked, 0 inconsistent; 1 damaged" in out, out
    assert _counts(status_report(results))["damaged"] == "1"


def test_a_finished_run_whose_config_cannot_be_read_is_damaged_in_verify_and_status(two_seeds, tmp_path, capsys):
    """Its identity cannot be checked: it is not passed as consistent (the report calls it damaged too)."""
    results = tmp_path / "results"
    shutil.copytree(two_seeds, results)
    cut, _ = sorted(results.glob("toy/ci/sgd/*-seed*/"))
    (cut / "config.json").write_text('{"suite": "to')

    assert main(["verify", str(results)]) == 1
    out = capsys.readouterr().out
    assert f"damaged       {cut.relative_to(results)}: config.json is missing or cannot be read" in out, out
    shown = status_report(results)
    assert _counts(shown)["damaged"] == "1" and _counts(shown)["completed"] == "1", shown
    assert list(load_results(results).problems["status"]) == ["damaged"]


def test_verify_counts_only_the_finished_runs_it_checked(two_seeds, tmp_path, capsys):
    """Planned runs (a request file only), unfinished and failed runs have no result: not counted as checked."""
    results = tmp_path / "results"
    shutil.copytree(two_seeds, results)
    finished, unfinished = sorted(results.glob("toy/ci/sgd/*-seed*/"))
    (unfinished / "summary.json").unlink()
    for seed in (5, 6):  # what a leaderboard writes before it starts a run
        (finished.parent / f"default-lr0.1-0123abcd-seed{seed}.request.json").write_text("{}")

    assert main(["verify", str(results)]) == 0
    out = capsys.readouterr().out
    assert "1 finished run(s) checked, 0 inconsistent; not checked: 2 not started" in out, out
    assert "1 unfinished (no summary.json" in out, out

    _edit(finished / "summary.json", lambda s: s.update(status="failed"))
    assert main(["verify", str(results)]) == 0
    out = capsys.readouterr().out
    assert "0 finished run(s) checked, 0 inconsistent; not checked: 1 failed" in out, out

    planned_only = tmp_path / "planned"
    (planned_only / "toy/ci/sgd").mkdir(parents=True)
    for seed in (0, 1):
        (planned_only / f"toy/ci/sgd/default-lr0.1-0123abcd-seed{seed}.request.json").write_text("{}")
    assert main(["verify", str(planned_only)]) == 0
    assert "0 finished run(s) checked, 0 inconsistent; not checked: 2 not started" in capsys.readouterr().out
