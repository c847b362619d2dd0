"""The command line's options that several commands share, each declared once as an argparse parent parser.

    nightbench list         plugin_options
    nightbench run          plugin_options, preset_options, set_options, results_options
    nightbench leaderboard  the same four (the rest: leaderboard.add_leaderboard_arguments)
"""

from __future__ import annotations

import argparse

from .base import DEFAULT_PRESET, PRESET_NAMES


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def plugin_options() -> argparse.ArgumentParser:
    """--optimizer-file, --suite-file: Python files that register optimizers or define suites."""
    p = _parent()
    p.add_argument("--optimizer-file", action="append", metavar="FILE", help="a Python file that registers optimizers")
    p.add_argument("--suite-file", action="append", metavar="FILE", help="a Python file that defines a suite")
    return p


def preset_options() -> argparse.ArgumentParser:
    p = _parent()
    p.add_argument("--preset", default=DEFAULT_PRESET,
                   help=f"{', '.join(PRESET_NAMES)} (default {DEFAULT_PRESET})")
    return p


def set_options(help: str) -> argparse.ArgumentParser:
    """--set KEY=VALUE (repeatable); `help` says what the command applies it to."""
    p = _parent()
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=help)
    return p


def results_options() -> argparse.ArgumentParser:
    p = _parent()
    p.add_argument("--results", default="results", help="results root (default ./results)")
    return p


def run_options(set_help: str) -> list[argparse.ArgumentParser]:
    """The parents of a command that runs runs: plugins, preset, --set, results."""
    return [plugin_options(), preset_options(), set_options(set_help), results_options()]
