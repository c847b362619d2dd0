"""Tuned defaults that ship: the chosen settings of a committed tuning study become a preset's defaults.

A suite folder may hold `tuned/<preset>/<optimizer>.json`: the compact record of the budgeted search
that tuned that optimizer on that suite and preset (`compact_record`), with the study's provenance
(study, budget, date, commit, machine). Where one exists, its chosen settings (hyperparameters, and
the warmup as the suite's own key) override the suite's hand-picked defaults for that optimizer at
that preset; a user's --set still wins. Every run's config.json records where its defaults came
from (`defaults_source`), and the report says "tuned by the shipped study (budget N)".

`python -m nightbench.suites.tuned_defaults RESULTS --preset small --study NAME` writes these files
from a finished study's records (a developer's step; the README says when).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

TUNED_DIR = "tuned"
HAND_PICKED = "hand-picked"  # defaults_source of a run whose defaults no study chose
# What a shipped record keeps of a search record: enough to re-read the study, not its run folders.
KEPT_KEYS = ("protocol", "suite", "preset", "optimizer", "metric", "higher_is_better", "tuning_seed", "budget",
             "studies", "space", "space_declared", "space_dropped", "study_bests", "chosen")
KEPT_TRIAL_KEYS = ("study", "trial", "values", "overrides", "status", "value")


def _suite_folder(suite: Any) -> Path:
    return Path(inspect.getfile(type(suite))).parent


def shipped_record(suite: Any, preset: str, optimizer: str) -> dict[str, Any] | None:
    """The committed record that tuned `optimizer` on `suite` at `preset`, or None."""
    path = _suite_folder(suite) / TUNED_DIR / preset / f"{optimizer}.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or not isinstance(record.get("chosen"), dict):
        raise ValueError(f"{path} is not a shipped tuning record (no 'chosen' settings)")
    return record


def tuned_overrides(suite: Any, preset: str, optimizer: str) -> dict[str, Any]:
    """The chosen settings a shipped study gives this optimizer here ({} where none shipped)."""
    record = shipped_record(suite, preset, optimizer)
    return dict(record["chosen"].get("overrides") or {}) if record else {}


def defaults_source(suite: Any, preset: str, optimizer: str) -> dict[str, Any] | str:
    """Where this optimizer's defaults on this suite and preset come from (recorded in config.json)."""
    record = shipped_record(suite, preset, optimizer)
    if record is None:
        return HAND_PICKED
    return {"tuned_by": record.get("provenance", {}).get("study"), "budget": record.get("budget"),
            **{k: v for k, v in record.get("provenance", {}).items() if k != "study"}}


def compact_record(search_record: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Any]:
    """A search record (suites/leaderboard/protocols.py:search_record) as it ships: every trial's values
    and result, the choice, and the study's provenance; no run folders."""
    out = {key: search_record.get(key) for key in KEPT_KEYS}
    out["trials"] = [{key: trial.get(key) for key in KEPT_TRIAL_KEYS} for trial in search_record.get("trials", [])]
    out["provenance"] = dict(provenance)
    return out


def _study_provenance(results: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The commit(s) the study's trials ran at and the day its last trial finished, read from the
    trials' own run folders (not from the checkout that ships them)."""
    from .summary import read_config, read_summary

    run_dirs = [results / trial["run_dir"] for trial in record.get("trials", []) if trial.get("run_dir")]
    configs = [read_config(run_dir) or {} for run_dir in run_dirs]
    commits = {c.get("environment", {}).get("git_commit") for c in configs} - {None}
    summaries = [read_summary(run_dir) for run_dir in run_dirs]
    days = sorted(s.finished[:10] for s in summaries if s is not None and s.finished)
    return {"date": days[-1] if days else None,
            "commit": ", ".join(sorted(commit[:12] for commit in commits)) or None}


def ship(results: Path, preset: str, study: str, machine: str) -> list[Path]:
    """Write every finished search record of `results` at `preset` into its suite's tuned/ folder."""
    from .catalog import get_suite
    from .layout import TUNING_DIR
    from .run_dir import atomic_write_text

    written = []
    for path in sorted((results / TUNING_DIR / preset).glob("*/*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("protocol") != "search" or not record.get("chosen"):
            continue
        provenance = {"study": study, **_study_provenance(results, record), "machine": machine}
        target = _suite_folder(get_suite(record["suite"])) / TUNED_DIR / preset / f"{record['optimizer']}.json"
        # a failed write leaves the shipped record before it whole (package data: readable by all)
        atomic_write_text(target, json.dumps(compact_record(record, provenance), indent=1, sort_keys=True) + "\n",
                          mode=0o644)
        written.append(target)
    return written


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Ship a finished tuning study's choices as a preset's defaults.")
    parser.add_argument("results", type=Path)
    parser.add_argument("--preset", required=True)
    parser.add_argument("--study", required=True, help="the study's name, recorded as the defaults' source")
    parser.add_argument("--machine", required=True, help="where the study ran, e.g. '2-core CPU, torch 2.14.1'")
    options = parser.parse_args()
    for written_path in ship(options.results, options.preset, options.study, options.machine):
        print(written_path)
