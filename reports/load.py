"""Run directories and tuning records -> tidy pandas DataFrames.

Reads only the files a board writes (each run's `config.json`, `metrics.jsonl`, `summary.json`,
and the tuning protocol's records), where `nightbench.suites.layout` says they live. A damaged or
half-written run directory never stops the load: it becomes a row with status 'damaged' or
'incomplete' and a reason, and the records that could be read are kept.

Facts are read, never recomputed: whether a run reached its target is what its summary.json says
(`steps_to_target`, `time_to_target`), and the best learning rate is what the tuning record says.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nightbench.optimizers.errors import InputError
from nightbench.suites import layout
from nightbench.suites.memory_overhead.suite import RECORD_KIND as MEMORY_RECORD
from nightbench.suites.outcomes import SUMMARY_STATES, RunState
from nightbench.suites.small_batch_variance.findings import RECORD_KIND as SBV_RECORD
from nightbench.suites.run_dir import identity_hash
from nightbench.suites.summary import (KNOWN_CONFIG_VERSIONS, NUMBER_FIELDS, SUMMARY_FIELDS, FormatVersionError,
                                       RunSummary, SummaryError, check_format_version, parse_summary)
from nightbench.suites.verify import check_run

from .facts import facts_from_config

log = logging.getLogger(__name__)

ANY_RUN_FILE = (*layout.RUN_FILES, layout.CHECKPOINT_FILE)  # what a run directory that started holds
IDENTITY = ["run_id", "suite", "preset", "optimizer", "run_name", "seed", "protocol"]
# from config.json, and what the report works out from the two files
CONFIG_COLUMNS = ["higher_is_better", "hyperparameters", "lr", "paper", "state_slots", "environment", "world_size",
                  "suite_kind", "suite_facts", "suite_description", "created", "tuned_by"]
# experiment: one set of resolved settings (a report row); environment_key: where times were measured
DERIVED_COLUMNS = ["problems", "run_dir", "final_value", "target_reached", "experiment", "environment_key"]
# summary.json's fields are RunSummary's (suites/summary.py): each one is a column
RUN_COLUMNS = IDENTITY + ["status"] + DERIVED_COLUMNS + [f for f in SUMMARY_FIELDS if f != "status"] + CONFIG_COLUMNS
TUNING_COLUMNS = ["suite", "preset", "optimizer", "metric", "higher_is_better", "tuning_seed", "grid", "tried",
                  "best_lr", "best_value", "reason", "record"]
# What summary.json says about the target: the engine's fields, read as they are.
REACHED, NOT_REACHED, UNKNOWN_REACH = "reached", "not reached", "unknown"
# A row's status beside the RunStates a summary names: a run directory without a (readable) summary.
INCOMPLETE, DAMAGED = "incomplete", "damaged"
BROKEN_STATES = (RunState.DIVERGED, RunState.FAILED)  # ended without a value: a tuning lr that lost


class ResultsNotFoundError(InputError, FileNotFoundError):
    """The results folder to report on does not exist or is not a folder."""


@dataclass
class Results:
    """Everything the report reads, as DataFrames (each keyed by the IDENTITY columns)."""

    results_dir: Path
    runs: pd.DataFrame  # one row per run directory
    curves: pd.DataFrame  # one row per 'train'/'eval' record
    sbv: pd.DataFrame  # one row per small_batch_variance 'sbv_unit' record
    memory: pd.DataFrame  # one row per memory_overhead 'memory' record
    problems: pd.DataFrame = field(default_factory=pd.DataFrame)  # run_id, run_dir, status, reason
    tuning: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TUNING_COLUMNS))  # one per record
    searches: list[dict[str, Any]] = field(default_factory=list)  # the budgeted search's records (budget.py)

    @property
    def inconsistent(self) -> int:
        """Finished runs whose files disagree (suites/verify.py): listed in `problems`, absent from `runs`."""
        return int((self.problems["status"] == RunState.INCONSISTENT).sum()) if len(self.problems) else 0

    @property
    def optimizers(self) -> list[str]:
        return sorted(self.runs["optimizer"].dropna().astype(str).unique()) if len(self.runs) else []


def find_run_dirs(results_dir: Path) -> list[Path]:
    """Every directory holding a run file, plus empty directories at the run depth (layout.find_runs)."""
    return layout.find_runs(results_dir, ANY_RUN_FILE, empty=True)


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(value, None) or (None, reason)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path.name} cannot be read ({exc.__class__.__name__}: {exc})"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno})"
    if not isinstance(value, dict):
        return None, f"{path.name} holds a {type(value).__name__}, expected a JSON object"
    return value, None


def _read_metrics(path: Path) -> tuple[list[dict], list[str]]:
    """The records of metrics.jsonl; unreadable lines are skipped and reported."""
    if not path.exists():
        return [], []
    records: list[dict] = []
    bad_lines: list[int] = []
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    bad_lines.append(number)
                    continue
                if isinstance(record, dict):
                    records.append(record)
                else:
                    bad_lines.append(number)
    except OSError as exc:
        return records, [f"metrics.jsonl cannot be read ({exc})"]
    if not bad_lines:
        return records, []
    shown = ", ".join(str(n) for n in bad_lines[:5]) + (" ..." if len(bad_lines) > 5 else "")
    return records, [f"metrics.jsonl: {len(bad_lines)} unreadable line(s) skipped (line {shown}; truncated write?)"]


NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}  # how the engine writes them (strict JSON)


def _number(value: Any) -> float:
    """A float (the engine's "nan"/"inf"/"-inf" strings included), or NaN for anything else."""
    if isinstance(value, str):
        return NON_FINITE.get(value.strip().lower(), math.nan)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _target_reached(summary: RunSummary | None, target_value: float) -> str | None:
    """REACHED / NOT_REACHED as summary.json records it, UNKNOWN_REACH when it does not say
    (no summary yet, a failed run, or one written before the engine recorded it); None without a target."""
    if math.isnan(target_value):
        return None
    if summary is None or not summary.target_recorded:
        return UNKNOWN_REACH
    return NOT_REACHED if math.isnan(_number(summary.steps_to_target)) else REACHED


def _read_config(path: Path) -> tuple[dict | None, str | None]:
    """config.json's object, or (None, why it cannot be read)."""
    config, error = _read_json(path)
    if config is not None:
        try:
            check_format_version(config, path.name, KNOWN_CONFIG_VERSIONS)
        except FormatVersionError as exc:
            return None, str(exc)
    return config, error


def _read_summary(path: Path) -> tuple[RunSummary | None, str | None]:
    """The run's summary, or (None, why it cannot be read) through the one reader (suites/summary.py)."""
    value, error = _read_json(path)
    if value is None:
        return None, error
    try:
        return parse_summary(value, path.name), None
    except (SummaryError, FormatVersionError) as exc:
        return None, str(exc)


def _run_row(run_dir: Path, results_dir: Path) -> tuple[dict[str, Any], list[dict], list[str]]:
    """One run's row, its records and the problems found."""
    problems: list[str] = []
    config, config_error = _read_config(run_dir / layout.CONFIG_FILE)
    summary, summary_error = _read_summary(run_dir / layout.SUMMARY_FILE)
    records, metric_problems = _read_metrics(run_dir / layout.METRICS_FILE)
    problems += metric_problems

    ident = layout.identity_from_path(run_dir, results_dir)
    config = config or {}
    for key in ident:  # the config is the authority; directory names are sanitized copies
        if isinstance(config.get(key), (str, int)) and str(config.get(key)):
            ident[key] = str(config[key])
    rel = run_dir.relative_to(results_dir).as_posix()

    if config_error and not any((run_dir / name).exists() for name in ANY_RUN_FILE):
        status = INCOMPLETE
        problems.insert(0, "empty run directory (no config.json yet: starting, or abandoned before writing)")
    elif config_error:
        status = DAMAGED
        problems.insert(0, config_error)
    elif summary_error and (run_dir / layout.SUMMARY_FILE).exists():
        status = DAMAGED
        problems.insert(0, summary_error)
    elif summary is None:
        status = INCOMPLETE
        problems.insert(0, "no summary.json: the run did not finish (still running, interrupted or crashed)")
    else:
        status = summary.status.value
        disagreements = check_run(run_dir, config, summary.status, summary.final_metrics, records)
        if disagreements:  # its numbers are not the run's own: shown, never counted
            status = RunState.INCONSISTENT.value
            problems[:0] = disagreements

    hyperparameters = config.get("hyperparameters") if isinstance(config.get("hyperparameters"), dict) else {}
    spec = config.get("optimizer_spec") if isinstance(config.get("optimizer_spec"), dict) else {}
    environment = config.get("environment") if isinstance(config.get("environment"), dict) else {}
    recorded = {name: getattr(summary, name) if summary is not None else None for name in SUMMARY_FIELDS}
    recorded.update({name: _number(recorded[name]) for name in NUMBER_FIELDS})
    recorded["final_metrics"] = recorded["final_metrics"] or {}
    # a summary an executor wrote for a dead run may lack what the config knows
    target_metric = recorded["target_metric"] or config.get("target_metric")
    if math.isnan(recorded["target_value"]):
        recorded["target_value"] = _number(config.get("target_value"))
    higher = config.get("higher_is_better", True)
    higher = bool(higher) if isinstance(higher, bool) else True
    final_metrics = recorded["final_metrics"]

    reach = _target_reached(summary, recorded["target_value"])
    facts = facts_from_config(config, ident["suite"])
    seed = config.get("seed")
    row = {
        "run_id": f"{ident['suite']}/{ident['preset']}/{ident['optimizer']}/{ident['run_name']}",
        **ident,
        "seed": int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else None,
        "protocol": str(config.get("protocol") or "default"),
        **recorded,
        "status": status,
        "problems": "; ".join(problems),
        "run_dir": rel,
        "target_metric": target_metric if isinstance(target_metric, str) else None,
        "higher_is_better": higher,
        "final_value": _number(final_metrics.get(target_metric)) if isinstance(target_metric, str) else math.nan,
        "target_reached": reach,
        "hyperparameters": hyperparameters,
        "lr": _number(hyperparameters.get("lr")),
        "paper": str(spec.get("paper") or ""),
        "state_slots": _number(spec.get("state_slots")),
        "environment": environment,
        "world_size": _number(config.get("world_size")),
        "suite_kind": facts.kind,
        "suite_facts": facts,
        "suite_description": facts.description or None,
        "created": config.get("created"),
        "tuned_by": _tuned_by(config.get("defaults_source")),
        "experiment": _experiment(config),
        "environment_key": environment_key(environment),
        "_settings": _settings(config),
    }
    return row, records, problems


def _tuned_by(source: Any) -> str | None:
    """'the shipped study NAME (budget N)' for a run whose defaults a shipped study chose, else None."""
    if not isinstance(source, dict):
        return None
    return f"the shipped study {source.get('tuned_by') or '?'} (budget {source.get('budget') or '?'})"


# --- one row = one experiment; times compared within one environment ------------------------------------
# what a run computes, less its seed (optimizer_source: the digest of a user's optimizer file)
EXPERIMENT_KEYS = ("hyperparameters", "policy", "suite_config", "optimizer_source")
ENVIRONMENT_TIMING_KEYS = ("cpu", "cpu_count", "gpu", "gpu_count", "device", "torch", "python")


def _experiment(config: dict) -> str:
    """The identity of what a run computes apart from its seed: runs with one value are seeds of one experiment."""
    return identity_hash({key: config.get(key) for key in EXPERIMENT_KEYS})


def _settings(config: dict) -> dict[str, Any]:
    """Hyperparameters, policy and suite config as one flat dict (to name how two experiments differ)."""
    flat: dict[str, Any] = {}
    for key in EXPERIMENT_KEYS:
        value = config.get(key)
        if isinstance(value, str):  # the optimizer file's digest: runs of an edited file are a row of their own
            flat["source"] = value
        for name, setting in (value.items() if isinstance(value, dict) else []):
            flat[name if key == "hyperparameters" else f"{key}.{name}"] = setting
    return flat


def environment_key(environment: dict) -> str:
    """The machine and software a run's times depend on, as one label ('' when not recorded)."""
    if not environment:
        return ""
    return " · ".join(f"{key} {environment[key]}" for key in ENVIRONMENT_TIMING_KEYS
                      if environment.get(key) not in (None, ""))


def _differences(settings: dict, reference: dict) -> str:
    changed = [f"{k}={settings.get(k, '-')}" for k in sorted(set(settings) | set(reference))
               if settings.get(k) != reference.get(k)]
    return ", ".join(changed[:4]) + (", …" if len(changed) > 4 else "")


def label_experiments(runs: pd.DataFrame) -> dict[str, str]:
    """run_id -> its row name, for runs that are not the main experiment of their optimizer.

    Within (suite, preset, optimizer, protocol) the experiment with the most runs keeps the optimizer's
    name; any other (say a `--set lr=0.3` run among the board's) becomes 'sgd [lr=0.3]', a row of its
    own. Tuning runs are left alone: they differ in lr by design and feed the sweep, never a mean."""
    renamed: dict[str, str] = {}
    chosen = runs[runs["protocol"] != "tuning"] if len(runs) else runs
    for (_, _, optimizer, _), group in chosen.groupby(["suite", "preset", "optimizer", "protocol"], dropna=False):
        sizes = group["experiment"].value_counts()
        if len(sizes) < 2:
            continue
        main = sorted(sizes.index, key=lambda e: (-sizes[e], e))[0]
        reference = group[group["experiment"] == main]["_settings"].iloc[0]
        others = group[group["experiment"] != main]
        for run_id, settings in zip(others["run_id"], others["_settings"]):
            renamed[run_id] = f"{optimizer} [{_differences(settings, reference)}]"
    return renamed


def _dedupe(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Keep the last copy of each record: a resumed run may log the same step or unit twice."""
    present = [k for k in keys if k in frame.columns]
    return frame.drop_duplicates(subset=present, keep="last").reset_index(drop=True) if len(frame) else frame


SEARCH_PROTOCOL = "search"  # a budgeted search's record (suites/leaderboard/protocols.py:search_record)


def _tuning_row(record: dict[str, Any], path: Path, root: Path) -> dict[str, Any]:
    """One lr-grid tuning record as a row (the leaderboard's choice of lr, read as written)."""
    preset, suite = path.relative_to(root / layout.TUNING_DIR).parts[:2]
    tried = []
    for entry in record.get("tried") if isinstance(record.get("tried"), list) else []:
        if isinstance(entry, dict):
            tried.append({"lr": _number(entry.get("lr")), "run_dir": _text(entry.get("run_dir")),
                          "status": _text(entry.get("status")), "value": _number(entry.get("value"))})
    higher = record.get("higher_is_better")
    return {
        "suite": str(record.get("suite") or suite), "preset": str(record.get("preset") or preset),
        "optimizer": str(record.get("optimizer") or path.stem), "metric": _text(record.get("metric")),
        "higher_is_better": higher if isinstance(higher, bool) else None,
        "tuning_seed": record.get("tuning_seed") if isinstance(record.get("tuning_seed"), int) else None,
        "grid": _text(record.get("grid")), "tried": tried, "best_lr": _number(record.get("best_lr")),
        "best_value": _number(record.get("best_value")), "reason": _text(record.get("reason")),
        "record": path.relative_to(root).as_posix(),
    }


def load_tuning_records(root: Path) -> tuple[pd.DataFrame, list[dict[str, Any]], list[dict[str, Any]]]:
    """Every record under <results>/_tuning/<preset>/<suite>/<optimizer>.json: the lr-grid records as
    rows, the unreadable ones as problems, and the budgeted search's records as written (budget.py
    reads them), each with its path under "record"."""
    rows, problems, searches = [], [], []
    folder = root / layout.TUNING_DIR
    for path in sorted(folder.glob("*/*/*.json")) if folder.is_dir() else []:
        record, error = _read_json(path)
        rel = path.relative_to(root).as_posix()
        if not error and record.get("protocol") == SEARCH_PROTOCOL and isinstance(record.get("trials"), list):
            searches.append({**record, "record": rel})
            continue
        if not error:
            rows.append(_tuning_row(record, path, root))
            continue
        preset, suite = path.relative_to(folder).parts[:2]
        problems.append({"run_id": rel, "suite": suite, "preset": preset, "optimizer": path.stem, "run_name": None,
                         "seed": None, "protocol": "tuning", "status": DAMAGED, "run_dir": rel,
                         "reason": f"tuning record: {error}"})
    return pd.DataFrame(rows, columns=TUNING_COLUMNS), problems, searches


def load_results(results_dir: str | os.PathLike) -> Results:
    """Load every run directory under `results_dir` (see the run-directory format in the README)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ResultsNotFoundError(
            f"results directory '{root}' does not exist or is not a directory; expected the folder "
            "that `nightbench run/leaderboard --results DIR` wrote (DIR/<suite>/<preset>/<optimizer>/<run>/)"
        )
    rows, curve_rows, sbv_rows, memory_rows, problem_rows = [], [], [], [], []
    for run_dir in find_run_dirs(root):
        try:
            row, records, problems = _run_row(run_dir, root)
        except Exception as exc:  # never let one odd directory stop the report
            log.warning("could not read run directory %s: %s", run_dir, exc)
            ident = layout.identity_from_path(run_dir, root)
            row = {"run_id": run_dir.relative_to(root).as_posix(), **ident, "seed": None, "protocol": "default",
                   "status": DAMAGED, "problems": f"unreadable: {exc.__class__.__name__}: {exc}",
                   "run_dir": run_dir.relative_to(root).as_posix()}
            records, problems = [], [row["problems"]]
        ident = {k: row.get(k) for k in IDENTITY}
        if problems or row["status"] not in SUMMARY_STATES:
            problem_rows.append({**ident, "status": row["status"], "run_dir": row["run_dir"],
                                 "reason": "; ".join(problems)})
        if row["status"] == RunState.INCONSISTENT:
            continue  # listed as a problem; its numbers and records enter nothing
        rows.append(row)
        for record in records:
            kind = record.get("kind")
            if kind in ("train", "eval"):
                scalars = {k: _number(v) for k, v in record.items() if k != "kind"}
                curve_rows.append({**ident, "kind": kind, **scalars})
            elif kind == SBV_RECORD:
                sbv_rows.append({**ident, **record})
            elif kind == MEMORY_RECORD:
                memory_rows.append({**ident, **record})

    runs = pd.DataFrame(rows).reindex(columns=RUN_COLUMNS + ["_settings"])
    renamed = label_experiments(runs)
    runs = runs.drop(columns="_settings")
    curves = _dedupe(pd.DataFrame(curve_rows), ["run_id", "kind", "step"])
    sbv = _dedupe(pd.DataFrame(sbv_rows), ["run_id", "unit"])
    memory = _dedupe(pd.DataFrame(memory_rows), ["run_id", "unit"])
    for frame in (runs, curves, sbv, memory):  # every table and figure then keeps the experiments apart
        if renamed and len(frame):
            frame["optimizer"] = [renamed.get(r, o) for r, o in zip(frame["run_id"], frame["optimizer"])]
    tuning, tuning_problems, searches = load_tuning_records(root)
    problems = pd.DataFrame(problem_rows + tuning_problems, columns=IDENTITY + ["status", "run_dir", "reason"])
    log.info("loaded %d runs, %d tuning records (%d problems) from %s", len(runs), len(tuning), len(problems), root)
    return Results(results_dir=root, runs=runs, curves=curves, sbv=sbv, memory=memory, problems=problems,
                   tuning=tuning, searches=searches)
