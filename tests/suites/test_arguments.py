"""The shared command-line options: declared once, the same in every command that takes them."""

from __future__ import annotations

import pytest

from nightbench.suites.base import DEFAULT_PRESET, PRESET_NAMES
from nightbench.suites.cli import build_parser
from nightbench.suites.leaderboard.planner import DEFAULT_SEEDS, DEFAULT_TUNED_SEEDS
from nightbench.suites.plan import PROTOCOLS, RunRequest

PLUGINS = ["--optimizer-file", "a.py", "--suite-file", "b.py"]


@pytest.mark.parametrize("command", [["list"], ["run"], ["leaderboard"]])
def test_every_command_that_loads_plugins_takes_both_plugin_files(command):
    args = build_parser().parse_args(command + PLUGINS + PLUGINS)
    assert args.optimizer_file == ["a.py", "a.py"] and args.suite_file == ["b.py", "b.py"]


@pytest.mark.parametrize("command", [["run"], ["leaderboard"]])
def test_run_and_leaderboard_share_preset_set_and_results(command):
    defaults = build_parser().parse_args(command)
    assert (defaults.preset, defaults.set, defaults.results) == (DEFAULT_PRESET, None, "results")
    args = build_parser().parse_args(command + ["--preset", "ci", "--set", "steps=3", "--set", "lr=1",
                                                "--results", "out"])
    assert (args.preset, args.set, args.results) == ("ci", ["steps=3", "lr=1"], "out")


def test_the_default_preset_is_the_same_for_a_request_and_the_command_line():
    assert RunRequest(suite="toy", optimizer="sgd").preset == DEFAULT_PRESET == build_parser().parse_args(["run"]).preset


def test_help_texts_name_the_presets_and_seeds_from_their_definitions(capsys):
    for command in ("run", "leaderboard"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert f"{', '.join(PRESET_NAMES)} (default {DEFAULT_PRESET})" in text, command
    with pytest.raises(SystemExit):
        build_parser().parse_args(["leaderboard", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default {DEFAULT_SEEDS}; with --tune {DEFAULT_TUNED_SEEDS})" in text


def test_protocol_choices_are_the_plans_protocols(capsys):
    assert build_parser().parse_args(["run"]).protocol == PROTOCOLS[0]
    for protocol in PROTOCOLS:
        assert build_parser().parse_args(["run", "--protocol", protocol]).protocol == protocol
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--protocol", "nightly"])
    assert "invalid choice: 'nightly'" in capsys.readouterr().err
