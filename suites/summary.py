"""summary.json's one schema (`RunSummary`), its one writer and its one reader; the format versions
of a run's two JSON files (summary.json, config.json).

summary.json is written once, atomically, when a run ends: by the run itself (engine.finish_run),
or by an executor for a run whose process died or whose job was refused. Every writer builds a
`RunSummary` and calls `write_summary`; every reader calls `read_summary` (or `parse_summary`, to
learn why a file was refused). Files written before the format was versioned (nightbench 0.1.0)
carry no `format_version`: they are version 0, and read as they are. A file of a newer version
than this module knows is refused (FormatVersionError): an older nightbench must neither guess at
it nor run again over it.

Imports nothing heavy: the engine, the executors, `nightbench status` and the reports use it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightbench.optimizers.errors import InputError

from .layout import CONFIG_FILE, SUMMARY_FILE
from .outcomes import SUMMARY_STATES, RunState
from .run_dir import atomic_write_json, read_json

SUMMARY_FORMAT_VERSION = 1
CONFIG_FORMAT_VERSION = 1
# 0: a file without format_version (written before it existed); read as it is.
KNOWN_SUMMARY_VERSIONS = (0, 1)
KNOWN_CONFIG_VERSIONS = (0, 1)
VERSION_KEY = "format_version"
# The target pair is written only by a run that tracked its target (a trained run), so that its
# absence keeps meaning "not recorded" (a failed run; an experiment) rather than "not reached".
TARGET_FIELDS = ("steps_to_target", "time_to_target")

_NUMBER = {"number": True}  # metadata of the fields read as numbers (the engine's "nan"/"inf" strings too)
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class FormatVersionError(InputError):
    """A summary.json or config.json written by a newer nightbench than this one."""


class SummaryError(ValueError):
    """A summary.json that holds JSON but not a run's summary (no status, an unknown status)."""


@dataclass(frozen=True)
class RunSummary:
    """How a run ended: summary.json's content, field by field."""

    status: RunState  # completed | diverged | failed (outcomes.SUMMARY_STATES)
    error: str | None = None  # a failed run's exception, or what ended a diverged one
    diverged_step: int | None = field(default=None, metadata=_NUMBER)
    final_metrics: dict[str, Any] = field(default_factory=dict)  # the last evaluation (an experiment: its summary)
    target_metric: str | None = None
    target_value: float | None = field(default=None, metadata=_NUMBER)
    started: str | None = None  # ISO times (UTC) of this session's start and of the summary
    finished: str | None = None
    # the training loop's figures (trainer.summary_fields); an experiment records wall_time only
    steps: int | None = field(default=None, metadata=_NUMBER)
    wall_time: float | None = field(default=None, metadata=_NUMBER)
    step_time_median: float | None = field(default=None, metadata=_NUMBER)
    data_wait_fraction: float | None = field(default=None, metadata=_NUMBER)
    # whether the run tracked its target; then steps/time to target are None when it never got there
    target_recorded: bool = False
    steps_to_target: int | None = field(default=None, metadata=_NUMBER)
    time_to_target: float | None = field(default=None, metadata=_NUMBER)
    # where a failure is told in full
    traceback: str | None = None
    rank_failures: list[dict] | None = None  # a DeepSpeed run: every rank's failure of the session
    executor: str | None = None  # the executor that wrote the summary of a run that could not
    log: str | None = None  # that run's process or job log, and its last lines
    log_tail: str | None = None
    job_id: str | None = None
    format_version: int = SUMMARY_FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """summary.json's object: every field but `target_recorded`, which the target pair's presence says."""
        value = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "target_recorded"}
        value["status"] = self.status.value
        if not self.target_recorded:
            for name in TARGET_FIELDS:
                del value[name]
        return value


# Every field but the bookkeeping ones: what a report shows of a summary, in the schema's order.
SUMMARY_FIELDS = tuple(f.name for f in dataclasses.fields(RunSummary) if f.name not in ("target_recorded",
                                                                                       VERSION_KEY))
NUMBER_FIELDS = tuple(f.name for f in dataclasses.fields(RunSummary) if f.metadata.get("number"))


def check_format_version(value: dict[str, Any], path: Path | str, known: tuple[int, ...]) -> int:
    """The file's format version (0 when it has none); FormatVersionError for one this module does not know."""
    version = value.get(VERSION_KEY, 0)
    if isinstance(version, bool) or not isinstance(version, int) or version not in known:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > max(known)
        raise FormatVersionError(
            f"{path} has format_version {version!r}; this nightbench reads versions "
            f"{', '.join(map(str, known))} (0: a file without the field). "
            + ("It was written by a newer nightbench: read it with that one." if newer else "The file is damaged."))
    return version


def _number(value: Any) -> int | float | None:
    if isinstance(value, str):
        return _NON_FINITE.get(value.strip().lower())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_summary(value: dict[str, Any], path: Path | str) -> RunSummary:
    """The RunSummary in a summary.json's object. Lenient about what version 0 left out or typed
    loosely (a missing or mistyped field reads as None); raises SummaryError for an object with no
    summary state, FormatVersionError for a newer version."""
    version = check_format_version(value, path, KNOWN_SUMMARY_VERSIONS)
    status = RunState.parse(value.get("status"))
    if status not in SUMMARY_STATES:
        raise SummaryError(f"{Path(path).name} status {value.get('status')!r} is not "
                           f"{'/'.join(s.value for s in SUMMARY_STATES)}")
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(RunSummary):
        if f.name in ("status", "target_recorded", VERSION_KEY) or f.name not in value:
            continue
        raw = value[f.name]
        if f.metadata.get("number"):
            fields[f.name] = _number(raw)
        elif f.name == "final_metrics":
            fields[f.name] = dict(raw) if isinstance(raw, dict) else {}
        elif f.name == "rank_failures":
            fields[f.name] = list(raw) if isinstance(raw, list) else None
        else:
            fields[f.name] = _text(raw)
    return RunSummary(status=status, target_recorded=TARGET_FIELDS[0] in value, format_version=version, **fields)


def read_summary(run_dir: Path | str) -> RunSummary | None:
    """The run's summary; None when it has none yet, or one that cannot be read (half-written,
    damaged, no summary state): such a run is unfinished. A newer format raises FormatVersionError."""
    path = Path(run_dir) / SUMMARY_FILE
    value = read_json(path)
    if value is None:
        return None
    try:
        return parse_summary(value, path)
    except SummaryError:
        return None


def write_summary(run_dir: Path | str, summary: RunSummary) -> None:
    """Write summary.json atomically (a reader never sees half of it)."""
    atomic_write_json(Path(run_dir) / SUMMARY_FILE, summary.to_json())


def read_config(run_dir: Path | str) -> dict[str, Any] | None:
    """The run's config.json; None when missing or unreadable. A newer format raises FormatVersionError."""
    path = Path(run_dir) / CONFIG_FILE
    value = read_json(path)
    if value is not None:
        check_format_version(value, path, KNOWN_CONFIG_VERSIONS)
    return value
