"""The `nightbench` CLI: listings, exit statuses (0 ok, 1 failed run, 2 bad input), plugin files."""

from __future__ import annotations

import pytest

from nightbench.optimizers import registry as optimizer_registry
from nightbench.suites.cli import main
from tests.plugin_files import sign_sgd_plugin

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
])
def test_bad_input_exits_2_with_what_is_accepted(capsys, toy_suite, tmp_path, argv, message):
    assert main(argv + (["--results", str(tmp_path)] if argv[0] == "run" else [])) == 2
    assert message in capsys.readouterr().err
