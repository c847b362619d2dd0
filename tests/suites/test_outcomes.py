"""outcomes.py is the one home of the run states and exit codes: no module spells them again."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

from nightbench.suites.outcomes import FINISHED_STATES, SUMMARY_STATES, ExitCode, RunState

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("optimizers", "suites", "reports")
HOME = REPO / "suites" / "outcomes.py"
# The states a module would be tempted to spell out. UNKNOWN is left out: "unknown" is an
# ordinary word there too (a claim's verdict, a target's reach).
SPELT_STATES = {state.value for state in RunState} - {RunState.UNKNOWN.value}


def bare_state_strings(source: str) -> list[tuple[int, str]]:
    """(line, literal) of every string literal that is exactly a run state's value.

    Read with tokenize, so docstrings and comments that mention a state in prose do not count."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.STRING:
            continue
        literal = token.string.lstrip("rRbBuU")
        for quote in ('"', "'"):
            if literal.startswith(quote) and not literal.startswith(quote * 3) and literal[1:-1] in SPELT_STATES:
                found.append((token.start[0], token.string))
    return found


def test_the_scanner_finds_a_bare_state_but_not_prose():
    source = 'x = "completed"\ny = \'failed\'\n"""docstring: \'diverged\' runs"""\n# "queued"\nz = "completed run"\n'
    assert bare_state_strings(source) == [(1, '"completed"'), (2, "'failed'")]


def test_no_module_spells_a_run_state_outside_outcomes():
    offenders = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path == HOME:
                continue
            offenders += [f"{path.relative_to(REPO)}:{line}: {text}"
                          for line, text in bare_state_strings(path.read_text())]
    assert not offenders, "use nightbench.suites.outcomes.RunState instead of:\n" + "\n".join(offenders)


def test_state_groups_and_their_on_disk_words():
    assert [s.value for s in SUMMARY_STATES] == ["completed", "diverged", "failed"]
    assert set(FINISHED_STATES) < set(SUMMARY_STATES) and RunState.FAILED not in FINISHED_STATES
    assert RunState.parse("diverged") is RunState.DIVERGED and RunState.parse("exploded") is None
    assert f"{RunState.QUEUED:>8}" == "  queued"  # the status table formats states as their words


def test_exit_codes_are_the_documented_numbers():
    assert (ExitCode.OK, ExitCode.FAILED, ExitCode.BAD_INPUT) == (0, 1, 2)
    assert (ExitCode.RUNNING_ELSEWHERE, ExitCode.INTERRUPTED) == (75, 130)
