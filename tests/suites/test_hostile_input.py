"""Input a hostile but realistic user gives (issue 22): each refusal exits 2 naming what is wrong and
what would be accepted, before anything is written; nothing is silently ignored; odd locales work.

One test per class of the issue; a class with several cases holds them in a table. (Classes 1, 2 and
5, about what a report and `status` show, are tested in tests/reports/test_verify.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nightbench.optimizers import registry as optimizer_registry
from nightbench.suites import catalog
from nightbench.suites.cli import main

REPO = Path(__file__).resolve().parents[2]
TOY_FILE = REPO / "tests" / "suites" / "toy_suite.py"
TOY = ["--suite", "toy", "--optimizer", "sgd", "--preset", "ci"]


@pytest.fixture
def clean_catalog(monkeypatch):
    """Suites a test adds to the catalog are gone after it."""
    monkeypatch.setattr(catalog, "SUITE_MODULES", dict(catalog.SUITE_MODULES))
    monkeypatch.setattr(catalog, "_FILES", {})
    monkeypatch.setitem(catalog.SUITE_MODULES, "toy", "tests.suites.toy_suite")


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _request(tmp_path: Path, results: Path, **fields) -> str:
    record = {"suite": "toy", "optimizer": "sgd", "preset": "ci", "results_root": str(results), **fields}
    path = tmp_path / f"request-{len(list(tmp_path.glob('request-*.json')))}.json"
    path.write_text(json.dumps(record))
    return str(path)


def _suite_file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "my_suite.py"
    path.write_text("from tests.suites.toy_suite import ToySuite\n\n" + body)
    return str(path)


# --- class 3: a suite file or request file whose fields have the wrong types -----------------------------------
WRONG_TYPES = {
    "presets a list": ("suite", 'class S(ToySuite):\n    name = "s3"\n    presets = ["ci"]\nSUITE = S()\n',
                       "'presets' is of type list; expected a dict"),
    "preset value an int": ("suite", 'class S(ToySuite):\n    name = "s3"\n    presets = {"ci": 5}\nSUITE = S()\n',
                            "preset 'ci' maps to 5 (of type int)"),
    "name an int": ("suite", "class S(ToySuite):\n    name = 5\nSUITE = S()\n", "'name' is 5 (of type int)"),
    "request seed a string": ("request", {"seed": "zero"}, "field 'seed' is \"zero\"; expected an integer"),
    "request seed a bool": ("request", {"seed": True}, "field 'seed' is true; expected an integer"),
    "request overrides a list": ("request", {"overrides": ["lr=0.3"]}, "field 'overrides' is [\"lr=0.3\"]"),
    "request suite_files a string": ("request", {"suite_files": "toy_suite.py"},
                                     "expected a list of file paths (strings)"),
    "request device a number": ("request", {"device": 0}, "field 'device' is 0; expected a string or null"),
}


@pytest.mark.parametrize("kind, content, message", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_wrong_types_in_a_suite_or_request_file_exit_2_naming_the_field(clean_catalog, tmp_path, capsys,
                                                                         kind, content, message):
    results = tmp_path / "results"
    if kind == "suite":
        argv = ["run", "--suite", "s3", "--optimizer", "sgd", "--preset", "ci",
                "--suite-file", _suite_file(tmp_path, content), "--results", str(results), "--quiet"]
    else:
        argv = ["run", "--quiet", "--request", _request(tmp_path, results, **content)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "internal error" not in err, err
    assert not results.exists()


# --- class 4: input that used to be silently ignored -----------------------------------------------------------
def _ignored_inputs(tmp_path: Path, results: Path) -> dict[str, tuple[list[str], str]]:
    cluster = tmp_path / "cluster.toml"
    cluster.write_text('partition = "gpu"\n')
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    twins = _suite_file(tmp_path, 'class A(ToySuite):\n    name = "twin"\nclass B(ToySuite):\n    name = "twin"\n'
                                  "a, b = A(), B()\n")
    board = ["leaderboard", "--suites", "toy", "--preset", "ci", "--seeds", "1", "--jobs", "1",
             "--results", str(results)]
    return {
        "request: misspelt overides": (["run", "--request", _request(tmp_path, results, overides={"lr": 0.3})],
                                       "unknown field 'overides' (did you mean 'overrides'?)"),
        "request with --seed": (["run", "--request", _request(tmp_path, results), "--seed", "3"],
                                "--seed would be ignored"),
        "request with --set and --results": (["run", "--request", _request(tmp_path, results), "--set", "lr=0.3",
                                              "--results", str(results)], "--set, --results would be ignored"),
        "--executor-config without slurm": ([*board, "--optimizers", "sgd", "--executor-config", str(cluster)],
                                            "--executor-config applies only to --executor slurm"),
        "SLURM flags without slurm": ([*board, "--optimizers", "sgd", "--slurm-partition", "gpu", "--gpus-per-run",
                                       "2"], "--slurm-partition, --gpus-per-run apply only to --executor slurm"),
        "two suites of one name": (["run", "--suite", "twin", "--optimizer", "sgd", "--preset", "ci",
                                    "--suite-file", twins, "--results", str(results)], "several named 'twin'"),
        "an optimizer twice": ([*board, "--optimizers", "sgd", "adam", "sgd"], "--optimizers lists sgd more than once"),
        "a suite twice": ([*board, "--suites", "toy", "toy", "--optimizers", "sgd"], "--suites lists toy more than once"),
        "--report under a file": ([*board, "--optimizers", "sgd", "--report", str(a_file / "r.html")],
                                  "which is a file, not a folder"),
        "--report a folder": ([*board, "--optimizers", "sgd", "--report", str(tmp_path)], "is a folder"),
    }


IGNORED_CASES = ["request: misspelt overides", "request with --seed", "request with --set and --results",
                 "--executor-config without slurm", "SLURM flags without slurm", "two suites of one name",
                 "an optimizer twice", "a suite twice", "--report under a file", "--report a folder"]


@pytest.mark.parametrize("case", IGNORED_CASES)
def test_input_that_would_be_ignored_is_refused_before_anything_is_written(clean_catalog, tmp_path, capsys, case):
    results = tmp_path / "results"
    argv, message = _ignored_inputs(tmp_path, results)[case]
    before = sorted(_files_under(tmp_path))
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert message in err and "internal error" not in err, err
    assert sorted(_files_under(tmp_path)) == before  # nothing written, not even a results folder
    assert not results.exists()


def test_with_request_the_quiet_and_deepspeed_flags_still_apply(clean_catalog, tmp_path):
    """The refusal above is for flags that describe the run, not for how a request is executed."""
    results = tmp_path / "results"
    assert main(["run", "--quiet", "--request", _request(tmp_path, results)]) == 0
    assert len(list(results.glob("toy/ci/sgd/*/summary.json"))) == 1


# --- class 6: paths outside ASCII under a non-UTF-8 locale ---------------------------------------------------
def test_a_non_ascii_results_path_under_lc_all_c_runs_and_is_reported(tmp_path):
    results = tmp_path / "résultats"
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "",
           "PYTHONPATH": str(REPO)}
    env.pop("LANG", None)
    base = [sys.executable, "-m", "nightbench.suites.cli"]
    run = subprocess.run([*base, "run", *TOY, "--suite-file", str(TOY_FILE), "--results", str(results), "--quiet"],
                         env=env, capture_output=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    summary = json.loads(next(results.glob("toy/ci/sgd/*/summary.json")).read_text())
    assert summary["status"] == "completed"
    assert list(results.glob("toy/ci/sgd/*/checkpoint.pt"))  # the checkpoint was saved and checked
    report = subprocess.run([*base, "report", str(results), "-o", str(tmp_path / "report.html")],
                            env=env, capture_output=True, cwd=tmp_path)
    assert report.returncode == 0, report.stderr.decode(errors="replace")
    assert "résultats" in (tmp_path / "report.html").read_text(encoding="utf-8")  # the path as the user named it


# --- also: a small_batch_variance run whose every unit diverged -------------------------------------------------
NAN_OPTIMIZER = '''
import torch
from nightbench.optimizers import register_optimizer

@register_optimizer("always_nan_cli")
class AlwaysNaN(torch.optim.Optimizer):
    def __init__(self, params, lr=0.1):
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.fill_(float("nan"))
'''


def test_an_experiment_whose_every_unit_diverged_prints_no_stray_none(tmp_path, capsys):
    plugin = tmp_path / "nan_opt.py"
    plugin.write_text(NAN_OPTIMIZER)
    try:
        code = main(["run", "--suite", "small_batch_variance", "--optimizer", "always_nan_cli", "--preset", "ci",
                     "--optimizer-file", str(plugin), "--results", str(tmp_path / "r"), "--quiet"])
    finally:
        optimizer_registry._REGISTRY.pop("always_nan_cli", None)
    out, err = capsys.readouterr()
    assert code == 1 and out.startswith("diverged:")
    assert "None" not in (out + err).split(), out + err
