"""Whether a finished run's files agree with each other: the one check the report, `nightbench status`
and `nightbench verify` make before they use a run.

Two facts are checked, each against the run's own record of it:

* identity: the hyperparameters, policy, suite config, suite, preset, optimizer and seed in
  config.json hash to the identity its directory is named by (`<protocol>-lr<lr>-<hash>-seed<N>`,
  see plan.run_name). An edited config.json no longer does.
* final metrics: each final metric a training run's summary.json records is the value of the last
  evaluation in its metrics.jsonl (the trainer writes both from the same numbers). An edited summary
  no longer agrees.

A run that fails either is `RunState.INCONSISTENT`: shown with the reason, left out of every
aggregate. A finished run whose config.json cannot be read, or any run whose summary.json cannot be
read, is `DAMAGED`: it cannot be checked at all. Runs without a summary, and failed runs, have no
result to check. A directory not named the engine's way (no identity hash in its name, e.g. written
by hand) is checked on its metrics only.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .layout import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE
from .outcomes import FINISHED_STATES, RunState
from .run_dir import identity_hash, read_metrics
from .summary import RunSummary, read_config, read_summary

# A summary.json (or a finished run's config.json) that cannot be read: what the report calls such a
# run too (no RunState names it: the run's own state is unknown).
DAMAGED = "damaged"
UNREADABLE_SUMMARY = f"{SUMMARY_FILE} cannot be read (cut short, or not a run's summary)"
UNREADABLE_CONFIG = f"{CONFIG_FILE} is missing or cannot be read, so the run cannot be checked"
# why a run has no result to check (`nightbench verify` counts them apart from the checked ones)
NOT_STARTED = "not started (a request file or job record only)"
UNFINISHED = "unfinished (no summary.json: running, interrupted or killed)"
FAILED_RUN = "failed (a failed run has no result to check)"

# plan.run_name: '<protocol>-[lr<lr>-]<8 hex digits>-seed<seed>'
NAMED_IDENTITY = re.compile(r"-(?P<hash>[0-9a-f]{8})-seed(?P<seed>\d+)$")
IDENTITY_KEYS = ("suite", "preset", "optimizer", "hyperparameters", "policy", "suite_config", "seed")
OPTIONAL_IDENTITY_KEYS = ("optimizer_source",)  # in the identity only where present (plan.plan_run)
EVAL_BOOKKEEPING = ("kind", "step", "time")  # the fields of an eval record that are not metrics
RELATIVE_TOLERANCE = 1e-9  # JSON keeps a float exactly; this only forgives a last-digit rewrite


@dataclass(frozen=True)
class Inconsistency:
    run_dir: Path
    reasons: tuple[str, ...]
    state: str = RunState.INCONSISTENT  # or DAMAGED: a file that cannot be read

    def __str__(self) -> str:
        return "; ".join(self.reasons)


def identity_problem(config: dict, run_name: str) -> str | None:
    """Why config.json does not hash to the identity in the run's name, or None (agrees, or unnamed)."""
    named = NAMED_IDENTITY.search(run_name)
    if named is None:
        return None
    missing = [key for key in IDENTITY_KEYS if key not in config]
    if missing:
        return f"config.json lacks {', '.join(missing)}, so it cannot be checked against the directory name"
    actual = identity_hash({key: config[key] for key in (*IDENTITY_KEYS, *OPTIONAL_IDENTITY_KEYS) if key in config})
    if actual != named["hash"]:
        return (f"config.json's hyperparameters/settings hash to {actual}, but the run directory was named for "
                f"{named['hash']}: config.json was changed after the run")
    return None


def _as_number(value: Any) -> float | None:
    """A metric value as a float (the engine's "nan"/"inf" strings included); None when not a number."""
    if isinstance(value, str):
        return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(value.strip().lower())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _same(a: Any, b: Any) -> bool:
    x, y = _as_number(a), _as_number(b)
    if x is None or y is None:
        return a == b
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return x == y or math.isclose(x, y, rel_tol=RELATIVE_TOLERANCE)


def _is_training(config: dict) -> bool:
    facts = config.get("suite_facts")
    kind = facts.get("kind") if isinstance(facts, dict) else config.get("suite_kind")
    return kind != "experiment"  # experiment suites aggregate their units; there is no last evaluation


def metrics_problem(config: dict, final: dict, records: list[dict]) -> str | None:
    """Why summary.json's final metrics are not the last evaluation in metrics.jsonl, or None."""
    if not _is_training(config):
        return None
    evals = [r for r in records if r.get("kind") == "eval"]
    if not evals:
        return ("summary.json has final metrics but metrics.jsonl holds no evaluation" if final else None)
    last = {k: v for k, v in evals[-1].items() if k not in EVAL_BOOKKEEPING}
    # a metric the summary leaves out claims nothing (a run that diverged may record none)
    differing = sorted(k for k in final if k not in last or not _same(final[k], last[k]))
    if not differing:
        return None
    key = differing[0]
    return (f"summary.json's final {key} = {final.get(key, 'missing')} but the last evaluation in metrics.jsonl "
            f"(step {evals[-1].get('step')}) has {last.get(key, 'missing')}"
            + (f" ({len(differing) - 1} more metric(s) differ)" if len(differing) > 1 else ""))


def check_run(run_dir: Path, config: dict | None, status: Any, final_metrics: Any, records: list[dict]) -> list[str]:
    """The reasons a finished run's files disagree (`status` and `final_metrics` as its summary.json
    records them); [] when they agree, or when there is no finished result to check."""
    if not isinstance(config, dict) or RunState.parse(status) not in FINISHED_STATES:
        return []
    if not isinstance(final_metrics, dict):
        return [f"summary.json's final_metrics is a {type(final_metrics).__name__}, not an object of metric -> value"]
    reasons = [identity_problem(config, Path(run_dir).name), metrics_problem(config, final_metrics, records)]
    return [r for r in reasons if r]


def verify_run_dir(run_dir: Path) -> list[str]:
    """check_run on the files of one run directory, read through the one reader (suites/summary.py)."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    if summary is None:
        return []
    return check_run(run_dir, read_config(run_dir), summary.status, summary.final_metrics, read_metrics(run_dir))


def damage(run_dir: Path, summary: RunSummary | None) -> str | None:
    """Why a run that claims a result cannot be checked at all, or None: its summary.json is there but
    unreadable (`summary`: the caller's read_summary of it), or its summary is finished but its
    config.json is missing or unreadable."""
    if summary is None:
        return UNREADABLE_SUMMARY if (run_dir / SUMMARY_FILE).exists() else None
    if summary.status in FINISHED_STATES and read_config(run_dir) is None:
        return UNREADABLE_CONFIG
    return None


@dataclass
class Verification:
    """What `nightbench verify` found among a results root's runs."""

    checked: int = 0  # finished runs whose files were checked (consistent or not)
    problems: list[Inconsistency] = field(default_factory=list)  # inconsistent, then damaged, in run order
    not_checked: Counter = field(default_factory=Counter)  # why (NOT_STARTED, ...) -> how many

    def count(self, state: str) -> int:
        return sum(problem.state == state for problem in self.problems)


def verify_runs(run_dirs: list[Path]) -> Verification:
    """Check every finished run among `run_dirs`; count the others by why they were not checked."""
    found = Verification()
    for run_dir in map(Path, run_dirs):
        summary = read_summary(run_dir)
        broken = damage(run_dir, summary)
        if broken:
            found.problems.append(Inconsistency(run_dir, (broken,), DAMAGED))
        elif summary is None:
            started = any((run_dir / name).exists() for name in (CONFIG_FILE, METRICS_FILE))
            found.not_checked[UNFINISHED if started else NOT_STARTED] += 1
        elif summary.status not in FINISHED_STATES:
            found.not_checked[FAILED_RUN] += 1
        else:
            found.checked += 1
            reasons = verify_run_dir(run_dir)
            if reasons:
                found.problems.append(Inconsistency(run_dir, tuple(reasons)))
    return found

