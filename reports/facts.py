"""What a suite says about itself, as its runs recorded it: kind, title, and the report sections it gets.

A run's config.json carries the suite's facts under "suite_facts" (written by the engine from the
suite's own declaration). Runs written before that field existed get the sections their suite had
then: a training suite its leaderboard and learning curves, the two experiment suites their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from nightbench.suites.base import LEADERBOARD, LEARNING_CURVES, MEMORY, SMALL_BATCH_VARIANCE, TrainingSuite
from nightbench.suites.base import REPORT_SECTIONS as SECTIONS

TRAINING_SECTIONS = TrainingSuite.report_sections
# Before suites declared their sections: the experiment suites' sections, by suite name.
LEGACY_EXPERIMENT_SECTIONS = {"memory_overhead": (MEMORY,), "small_batch_variance": (SMALL_BATCH_VARIANCE,)}


@dataclass(frozen=True)
class SuiteFacts:
    kind: str  # "training" | "experiment"
    title: str
    description: str
    sections: tuple[str, ...]
    declared: bool  # False: inferred for a run written before configs carried suite_facts
    # preset -> (margin, reason): the parity margin of the paper's "matches" claims on this suite
    parity_margins: tuple[tuple[str, float, str], ...] = ()

    def parity_margin(self, preset: str | None) -> tuple[float, str] | None:
        for name, margin, reason in self.parity_margins:
            if name == preset:
                return margin, reason
        return None


def facts_from_config(config: dict[str, Any], suite: str | None) -> SuiteFacts:
    """The facts one run recorded, or the fallback for a config without "suite_facts"."""
    name = str(suite or config.get("suite") or "")
    description = config.get("suite_description") if isinstance(config.get("suite_description"), str) else ""
    declared = config.get("suite_facts")
    if isinstance(declared, dict):
        sections = declared.get("report_sections")
        sections = tuple(s for s in sections if s in SECTIONS) if isinstance(sections, (list, tuple)) else ()
        kind = declared.get("kind") if declared.get("kind") in ("training", "experiment") else "experiment"
        title = declared.get("title") if isinstance(declared.get("title"), str) and declared.get("title") else name
        text = declared.get("description") if isinstance(declared.get("description"), str) else description
        return SuiteFacts(kind, title, text, sections, True, _margins(declared.get("parity_margins")))
    kind = config.get("suite_kind")
    if kind not in ("training", "experiment"):  # older still: a suite with a target metric trains
        kind = "experiment" if name in LEGACY_EXPERIMENT_SECTIONS or not config.get("target_metric") else "training"
    sections = TRAINING_SECTIONS if kind == "training" else LEGACY_EXPERIMENT_SECTIONS.get(name, ())
    return SuiteFacts(kind, name, description, sections, False)


def _margins(declared: Any) -> tuple[tuple[str, float, str], ...]:
    """The declared parity margins that are usable: a positive finite number and a reason per preset."""
    if not isinstance(declared, dict):
        return ()
    out = []
    for preset, entry in declared.items():
        margin = entry.get("margin") if isinstance(entry, dict) else None
        if isinstance(margin, (int, float)) and not isinstance(margin, bool) and 0 < margin < float("inf"):
            out.append((str(preset), float(margin), str(entry.get("reason") or "")))
    return tuple(out)


def suite_facts(runs: pd.DataFrame) -> SuiteFacts | None:
    """One suite's facts from its runs: the most recent run that declared them, else the fallback
    (a training suite's if any run looks like training: a damaged run may have lost its target)."""
    if runs.empty or "suite_facts" not in runs.columns:
        return None
    facts = [f for f in runs.sort_values("created", na_position="first")["suite_facts"] if isinstance(f, SuiteFacts)]
    declared = [f for f in facts if f.declared]
    if declared:
        return declared[-1]
    training = [f for f in facts if f.kind == "training"]
    return (training or facts or [None])[-1]
