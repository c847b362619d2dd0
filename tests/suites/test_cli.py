"""The `nightbench` CLI: listings, exit statuses (0 ok, 1 failed run, 2 bad input), plugin files.

Also the input a hostile but realistic user gives (issue 22): each refusal exits 2 naming what is wrong
and what would be accepted, before anything is written; nothing is silently ignored; odd locales work;
a failing disk is one line naming the cause and the path, not a bug.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nightbench.optimizers import registry as optimizer_registry
from nightbench.suites.cli import main
from tests.optimizers.builtins import MODERN, PAPER
from tests.plugin_files import always_nan_plugin, sign_sgd_plugin

PLUGIN = sign_sgd_plugin("cli_test_sign_sgd", lr=0.01)


@pytest.fixture
def plugin_file(tmp_path):
    path = tmp_path / "my_opt.py"
    path.write_text(PLUGIN)
    yield path
    optimizer_registry.REGISTRY.entries.pop("cli_test_sign_sgd", None)


def test_list_optimizers_shows_names_papers_and_defaults(capsys):
    assert main(["list", "optimizers"]) == 0
    out = capsys.readouterr().out
    for name in ("sgd", "adam"):
        assert f"\n{name} " in "\n" + out
    assert "lr = 0.1" in out and "paper:" in out


def test_list_suites_and_presets(capsys):
    assert main(["list", "presets"]) == 0
    out = capsys.readouterr().out
    for name in ("bert_mlm", "resnet50_imagenet", "memory_overhead", "small_batch_variance"):
        assert name in out
    assert "ci:" in out and "paper:" in out
    preset_lines = [line for line in out.splitlines() if line.strip().startswith(("paper:", "small:", "ci:"))]
    assert len(preset_lines) == 12  # four suites x three presets, each with every key --set accepts:
    assert all("threads=1" in line and "checkpoint_every=0" in line and "log_every=" in line for line in preset_lines)


def test_plugin_file_appears_in_list(capsys, plugin_file):
    assert main(["list", "optimizers", "--optimizer-file", str(plugin_file)]) == 0
    out = capsys.readouterr().out
    assert "cli_test_sign_sgd" in out and "from file" in out


def test_run_completes_with_exit_0(capsys, toy_suite, tmp_path, plugin_file):
    code = main(["run", "--suite", "toy", "--optimizer", "cli_test_sign_sgd", "--preset", "ci", "--quiet",
                 "--optimizer-file", str(plugin_file), "--results", str(tmp_path)])
    assert code == 0
    assert "completed" in capsys.readouterr().out


def test_failed_run_exits_1(capsys, toy_suite, tmp_path):
    code = main(["run", "--suite", "toy", "--optimizer", "sgd", "--preset", "ci", "--quiet",
                 "--results", str(tmp_path), "--set", "fail_at_step=3"])
    assert code == 1
    assert "toy failure requested" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["run", "--suite", "bert", "--optimizer", "sgd"], "Did you mean 'bert_mlm'"),
    (["run", "--suite", "toy", "--optimizer", "nigtt"], "unknown optimizer 'nigtt'"),
    (["run", "--suite", "toy", "--optimizer", "sgd", "--preset", "huge"], "accepted: paper, small, ci"),
    (["run", "--suite", "toy", "--optimizer", "sgd", "--set", "lr"], "expected key=value"),
    (["run", "--suite", "toy", "--optimizer", "sgd", "--set", "momentum=1.5"], "'momentum'"),
    (["run", "--suite", "toy", "--optimizer", "sgd", "--optimizer-file", "/nonexistent/opt.py"], "not found"),
    (["report", "/nonexistent/results"], "results directory not found"),
    (["verify", __file__], "is a file, not a folder (expected the --results folder"),
    (["status", __file__], "is a file, not a folder (expected the --results folder"),
])
def test_bad_input_exits_2_with_what_is_accepted(capsys, toy_suite, tmp_path, argv, message):
    assert main(argv + (["--results", str(tmp_path)] if argv[0] == "run" else [])) == 2
    assert message in capsys.readouterr().err


REPO = Path(__file__).resolve().parents[2]

TOY_FILE = REPO / "tests" / "suites" / "toy_suite.py"

TOY = ["--suite", "toy", "--optimizer", "sgd", "--preset", "ci"]


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
def test_wrong_types_in_a_suite_or_request_file_exit_2_naming_the_field(clean_catalog, toy_suite, tmp_path, capsys,
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
        "--report with --no-report": ([*board, "--optimizers", "sgd", "--report", "r.html", "--no-report"],
                                      "contradict each other"),
    }


IGNORED_CASES = ["request: misspelt overides", "request with --seed", "request with --set and --results",
                 "--executor-config without slurm", "SLURM flags without slurm", "two suites of one name",
                 "an optimizer twice", "a suite twice", "--report under a file", "--report a folder",
                 "--report with --no-report"]


@pytest.mark.parametrize("case", IGNORED_CASES)
def test_input_that_would_be_ignored_is_refused_before_anything_is_written(clean_catalog, toy_suite, tmp_path, capsys,
                                                                           case):
    results = tmp_path / "results"
    argv, message = _ignored_inputs(tmp_path, results)[case]
    before = sorted(_files_under(tmp_path))
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert message in err and "internal error" not in err, err
    assert sorted(_files_under(tmp_path)) == before  # nothing written, not even a results folder
    assert not results.exists()


def test_with_request_the_quiet_and_deepspeed_flags_still_apply(clean_catalog, toy_suite, tmp_path):
    """The refusal above is for flags that describe the run, not for how a request is executed."""
    results = tmp_path / "results"
    assert main(["run", "--quiet", "--request", _request(tmp_path, results)]) == 0
    assert len(list(results.glob("toy/ci/sgd/*/summary.json"))) == 1


# --- class 6: paths outside ASCII under a non-UTF-8 locale ---------------------------------------------------
@pytest.mark.slow  # 13 s (pytest --durations, session 6): a whole run and report in a subprocess
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


def test_an_experiment_whose_every_unit_diverged_prints_no_stray_none(tmp_path, capsys):
    plugin = tmp_path / "nan_opt.py"
    plugin.write_text(always_nan_plugin("always_nan_cli"))
    try:
        code = main(["run", "--suite", "small_batch_variance", "--optimizer", "always_nan_cli", "--preset", "ci",
                     "--optimizer-file", str(plugin), "--results", str(tmp_path / "r"), "--quiet"])
    finally:
        optimizer_registry.REGISTRY.entries.pop("always_nan_cli", None)
    out, err = capsys.readouterr()
    assert code == 1 and out.startswith("diverged:")
    assert "None" not in (out + err).split(), out + err


# --- class 3: failures of the machine, and files of the wrong types, are not bugs ------------------------------
def _fail_writes(monkeypatch, code: int, message: str) -> None:
    from nightbench.suites import run_dir

    def refuse(path, text):
        raise OSError(code, message, str(path))

    monkeypatch.setattr(run_dir, "atomic_write_text", refuse)


ENVIRONMENT = {
    # root ignores permission bits, so a read-only folder is simulated by the error its writes would get
    "a full disk": (errno.ENOSPC, "No space left on device", "free some space"),
    "a read-only run folder": (errno.EROFS, "Read-only file system", "choose a writable --results folder"),
    "no permission": (errno.EACCES, "Permission denied", "check the folder's permissions"),
}


@pytest.mark.parametrize("code, message, advice", ENVIRONMENT.values(), ids=ENVIRONMENT.keys())
def test_a_failing_disk_exits_1_with_one_line_naming_cause_and_path(clean_catalog, toy_suite, tmp_path, capsys,
                                                                     monkeypatch, code, message, advice):
    _fail_writes(monkeypatch, code, message)
    assert main(["run", *TOY, "--results", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "internal error" not in err, err
    assert err.startswith(f"nightbench: {message}: {tmp_path}") and "config.json" in err and advice in err


PAPER_SET, MODERN_SET = set(PAPER), set(MODERN)


def test_list_optimizers_groups_them_by_set(capsys):
    assert main(["list", "optimizers"]) == 0
    current, seen = None, {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("== "):
            current = line.split()[1]
        elif line and not line.startswith(" ") and current is not None and line.split()[0] in PAPER_SET | MODERN_SET:
            seen[line.split()[0]] = current
    assert seen == {**{n: "paper" for n in PAPER_SET}, **{n: "modern" for n in MODERN_SET}}
