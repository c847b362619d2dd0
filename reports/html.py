"""Assemble the report page: loaded results -> tables, figures, claims -> one self-contained HTML file.

Every string from the results reaches the page through jinja2 with autoescaping on (the template
never marks data `|safe`); figures are PNGs (text inside them cannot run) embedded as data URIs;
CSV downloads are base64 data URIs.
"""

from __future__ import annotations

import base64
import datetime as _dt
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from nightbench.suites.outcomes import SUMMARY_STATES
from nightbench.suites.run_dir import atomic_write_text

from . import budget, figures, search_figures, tables
from .claims import CLAIM_SUITES, REFUTES, SUPPORTS, Claim, paper_claims
from .facts import LEADERBOARD, LEARNING_CURVES, MEMORY, SMALL_BATCH_VARIANCE, suite_facts
from .load import DAMAGED, INCOMPLETE, Results, load_results
from .output import check_output_path
from .palette import is_paper_optimizer, optimizer_colors
from .profiles import R_MAX

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
ENVIRONMENT_KEYS = ("nightbench", "git_commit", "python", "torch", "transformers", "timm", "deepspeed",
                    "platform", "hostname", "cpu", "cpu_count", "gpu", "device")
LONG_TEXT_COLUMNS = {"Hyperparameters", "Reason"}
VALUE_LIST_COLUMNS = {"Seed values"}  # lists of numbers: wrap between values, never inside one
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class TableView:
    key: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]]  # {"cells": [str], "paper": bool}
    classes: list[str]  # per column: "num" (right-aligned), "opt" (the optimizer), "hp" (long settings)
    notes: list[str]
    csv_uri: str
    csv_name: str
    caption: str = ""
    downloads: list[dict[str, str]] = field(default_factory=list)  # {"label", "uri", "name"}: more CSVs


@dataclass
class FigureView:
    key: str
    title: str
    uri: str
    caption: str
    alt: str = ""  # the title and the legend's entries: what the image shows, for screen readers and tests


@dataclass
class SuiteSection:
    key: str
    name: str
    title: str
    description: str
    status_line: str
    has_runs: bool
    items: list[tuple[str, Any]] = field(default_factory=list)  # ("table", TableView) | ("figure", FigureView)
    notes: list[str] = field(default_factory=list)


def _csv_cell(value: Any) -> Any:
    """A spreadsheet-safe CSV cell: text that a spreadsheet would run as a formula gets a quote."""
    if isinstance(value, (dict, list, tuple)):
        value = str(value)
    if isinstance(value, str) and value.startswith(CSV_FORMULA_PREFIXES):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def csv_data_uri(frame: pd.DataFrame) -> str:
    """The frame as a base64 CSV data URI (a download link that needs no script or server)."""
    safe = frame.apply(lambda column: column.map(_csv_cell)) if len(frame) else frame
    data = safe.to_csv(index=False).encode("utf-8")
    return "data:text/csv;charset=utf-8;base64," + base64.b64encode(data).decode("ascii")


def table_view(table: tables.Table) -> TableView:
    columns = [str(c) for c in table.display.columns]
    highlight = table.highlight or [False] * len(table.display)
    rows = [{"cells": ["" if v is None else str(v) for v in values], "paper": bool(flag)}
            for values, flag in zip(table.display.itertuples(index=False, name=None), highlight)]
    classes = ["num" if c in table.numeric else "opt" if c == "Optimizer" else "hp" if c in LONG_TEXT_COLUMNS
               else "vals" if c in VALUE_LIST_COLUMNS else "" for c in columns]
    downloads = [{"label": label, "uri": csv_data_uri(frame), "name": name} for label, name, frame in table.downloads]
    return TableView(table.key, table.title, columns, rows, classes, table.notes, csv_data_uri(table.raw),
                     f"{tables.slug(table.key)}.csv", table.caption, downloads)


def figure_view(key: str, title: str, fig: Any, caption: str, subject: str = "") -> FigureView | None:
    if fig is None:
        return None
    drawn = figures.legend_entries(fig)
    alt = title + (f", {subject}" if subject else "") + "."
    if drawn:
        alt += f" Optimizers drawn: {', '.join(drawn)}."
    return FigureView(key, title, figures.to_data_uri(fig), caption, alt)


def _status_line(runs: pd.DataFrame) -> str:
    counts = Counter(runs["status"])
    order = [*SUMMARY_STATES, INCOMPLETE, DAMAGED]  # inconsistent runs are not in `runs`
    parts = [f"{counts[s]} {s}" for s in order if counts[s]]
    parts += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in order]
    protocols = Counter(runs["protocol"])
    return (f"{len(runs)} run(s) of {runs['optimizer'].nunique()} optimizer(s): " + ", ".join(parts)
            + " · protocols: " + ", ".join(f"{p} {n}" for p, n in sorted(protocols.items())))


CURVES_CAPTION = ("Mean over seeds of the reported runs (completed or diverged); the band is ±1 standard "
                  "deviation across seeds. Long runs are averaged into step bins. A dashed line marks the target.")
SWEEP_CAPTION = ("Final metric of the tuning runs against the learning rate (mean ± s.d. over tuning seeds); "
                 "× marks a learning rate at which a run diverged or failed.")
FLOOR_CAPTION = ("Floor at each optimizer's best learning rate (mean over unit seeds; bars span the lowest to the "
                 "highest seed); log-log.")
MEMORY_CAPTION = "Bytes of optimizer state per model parameter; dotted lines mark one and two fp32 slots."


def _preset_parts(section: SuiteSection, suite: str, preset: str, runs: pd.DataFrame, results: Results,
                  colors: dict[str, str], suffix: str, sections: tuple[str, ...]) -> None:
    """The per-preset tables and figures of a suite's sections, in reading order (figures never mix presets)."""
    own = {name: frame[frame["run_id"].isin(set(runs["run_id"]))] if len(frame) else frame
           for name, frame in (("curves", results.curves), ("sbv", results.sbv), ("memory", results.memory))}
    slug = tables.slug(f"{suite}-{preset}")
    label = f" (preset {preset})" if suffix else ""
    parts: list[tuple[str, Any]] = []
    if LEARNING_CURVES in sections:
        parts.append(("figure", figure_view(f"curves-{slug}", "Learning curves" + label,
                                            figures.learning_curves(own["curves"], runs, suite, colors),
                                            CURVES_CAPTION, subject=suite)))
    searched = any(r.get("suite") == suite and r.get("preset") == preset for r in results.searches)
    if LEADERBOARD in sections and runs["target_metric"].notna().any() and not searched:  # a search draws its own
        sweep = figure_view(f"lr-{slug}", "Learning-rate sensitivity" + label,
                            figures.lr_sensitivity(runs, suite, colors), SWEEP_CAPTION, subject=suite)
        parts.append(("figure", sweep))
        if sweep is None:
            section.notes.append(f"No learning-rate sweep ran for this suite{label} (the leaderboard's --tune adds "
                                 "one), so there is no sensitivity figure.")
    if SMALL_BATCH_VARIANCE in sections:
        parts += [
            ("table", tables.floor_table(own["sbv"], runs)),
            ("figure", figure_view(f"floors-{slug}", "Gradient-norm floor against batch size" + label,
                                   figures.floor_vs_batch(own["sbv"], runs, colors), FLOOR_CAPTION,
                                   subject=suite)),
        ]
    if MEMORY in sections:
        parts += [
            ("table", tables.memory_table(own["memory"], runs)),
            ("table", tables.step_time_ratio_table(own["memory"], runs)),
            ("figure", figure_view(f"memory-{slug}", "Optimizer state per parameter" + label,
                                   figures.memory_bars(own["memory"], runs, colors), MEMORY_CAPTION,
                                   subject=suite)),
        ]
    for kind, item in parts:
        if item is None:
            continue
        if kind == "table":
            if suffix:
                item.key, item.title = f"{item.key}-{tables.slug(preset)}", item.title + label
            item = table_view(item)
        section.items.append((kind, item))


def _search_parts(section: SuiteSection, suite: str, records: list[dict], colors: dict[str, str]) -> None:
    """The budgeted search of this suite: what ran and chose, the budget curve and ranks, sensitivity."""
    if not any(r.get("suite") == suite for r in records):
        return
    slug = tables.slug(suite)
    parts = [("table", budget.search_table(records, suite)),
             ("figure", figure_view(f"budget-curve-{slug}", "Budget curve and rank at each budget",
                                    search_figures.budget_curve(records, suite, colors),
                                    search_figures.BUDGET_CAPTION, subject=suite)),
             ("table", budget.budget_table(records, suite)),
             ("figure", figure_view(f"sensitivity-{slug}", "Sensitivity to the learning rate, every trial",
                                    search_figures.sensitivity(records, suite, colors),
                                    search_figures.SENSITIVITY_CAPTION, subject=suite)),
             ("table", budget.trials_table(records, suite))]
    for kind, item in parts:
        if item is not None:
            section.items.append((kind, table_view(item) if kind == "table" else item))


def suite_section(suite: str, results: Results, colors: dict[str, str]) -> SuiteSection:
    """Tables and figures for one suite: the report sections its runs recorded (facts.py) decide."""
    runs = results.runs[results.runs["suite"] == suite] if len(results.runs) else results.runs
    key = "suite-" + tables.slug(suite)
    facts = suite_facts(runs)
    if runs.empty or facts is None:
        claim = CLAIM_SUITES.get(suite)
        return SuiteSection(key, suite, suite, f"The claim “{claim}” reads this suite." if claim else "",
                            "no runs", False, notes=["No runs of this suite in these results."])
    section = SuiteSection(key, suite, facts.title, facts.description or "A suite found in the results.",
                           _status_line(runs), True)
    if not facts.declared:
        section.notes.append("These runs predate recorded suite facts: the report shows the sections such a suite "
                             f"had ({', '.join(facts.sections) or 'none'}).")
    if LEADERBOARD in facts.sections and runs["target_metric"].notna().any():  # these tables span presets
        searched = {(r.get("preset"), r.get("optimizer")) for r in results.searches if r.get("suite") == suite}
        for table in (tables.leaderboard(runs, suite), tables.tuning_table(runs, suite, results.tuning, searched)):
            if table is not None:
                section.items.append(("table", table_view(table)))
        _search_parts(section, suite, results.searches, colors)
    presets = sorted(runs["preset"].dropna().astype(str).unique())
    for preset in presets:
        _preset_parts(section, suite, preset, runs[runs["preset"] == preset], results, colors,
                      suffix=preset if len(presets) > 1 else "", sections=facts.sections)
    if not section.items:
        section.notes.append("These runs recorded nothing this report knows how to tabulate.")
    return section


def environment_rows(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """Each environment field with its value, or every distinct value with its run count."""
    values: dict[str, Counter] = {}
    for env in runs["environment"] if len(runs) else []:
        if isinstance(env, dict):
            for k, v in env.items():
                values.setdefault(str(k), Counter())[str(v)] += 1
    keys = [k for k in ENVIRONMENT_KEYS if k in values] + sorted(k for k in values if k not in ENVIRONMENT_KEYS)
    rows = []
    for k in keys:
        counted = values[k].most_common()
        rows.append((k, counted[0][0] if len(counted) == 1 else
                     "; ".join(f"{v} ({n} runs)" for v, n in counted)))
    return rows


def claim_view(claim: Claim) -> dict[str, Any]:
    css = {SUPPORTS: "supports", REFUTES: "refutes"}.get(claim.verdict, "unknown")
    comparisons = [{"sides": c.sides, "what": c.what, "difference": c.difference.difference_cell(),
                    "detectable": (c.parity or c.difference).detectable_cell(),
                    "seeds": (c.parity or c.difference).seeds_cell()}
                   for c in claim.comparisons]
    return {"title": claim.title, "paper": claim.paper, "measured": claim.measured, "verdict": claim.shown_verdict,
            "reason": claim.reason, "scale": claim.scale, "css": css, "comparisons": comparisons}


def _when(stamp: str) -> str:
    """'2025-01-01 04:13 UTC' from an ISO timestamp; anything unparsable is shown as written."""
    try:
        moment = _dt.datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if moment.tzinfo is not None:
        return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M")


def shown_path(path: os.PathLike) -> str:
    """A path as text for the page: its bytes read as UTF-8, whatever the locale decoded them as
    (under LC_ALL=C a name outside ASCII arrives as surrogates, which no page can hold)."""
    return os.fsencode(path).decode("utf-8", errors="replace")


def build_context(results: Results) -> dict[str, Any]:
    """Everything the template shows, as plain strings, lists and small dataclasses."""
    runs = results.runs
    colors = optimizer_colors(results.optimizers)
    present = set(runs["suite"].dropna().astype(str)) if len(runs) else set()
    # suites with runs first (the paper's in its claims' order), then the claims' suites that did not run
    suites = ([s for s in CLAIM_SUITES if s in present] + sorted(present - set(CLAIM_SUITES))
              + [s for s in CLAIM_SUITES if s not in present])
    sections = [suite_section(s, results, colors) for s in suites]
    profile = figure_view("profile", "Performance profile", figures.performance_profile(runs, colors),
                          "For each optimizer, the fraction of training suites on which its median time (or steps) "
                          "to the target is within a factor τ of the best optimizer's; never reaching the target "
                          f"counts as infinitely slow. The dotted line marks r_max = {R_MAX:g}, where the "
                          "benchmark score's area ends.")
    score = tables.benchmark_score_table(runs)
    runs_table = tables.runs_table(runs)
    problems = tables.problems_table(results.problems, runs)
    presets = sorted(runs["preset"].dropna().astype(str).unique()) if len(runs) else []
    created = sorted(str(c) for c in runs["created"].dropna()) if len(runs) else []
    return {
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "results_dir": shown_path(results.results_dir),
        "presets": presets,
        "n_runs": len(runs),
        "n_inconsistent": results.inconsistent,
        "first_created": _when(created[0]) if created else None,
        "last_created": _when(created[-1]) if created else None,
        "optimizers": [{"name": o, "color": colors[o], "paper": is_paper_optimizer(o)} for o in results.optimizers],
        "claims": [claim_view(c) for c in paper_claims(runs, results.sbv, results.memory)],
        "sections": sections,
        "profile": profile,
        "score_table": table_view(score) if score else None,
        "runs_table": table_view(runs_table) if runs_table else None,
        "problems_table": table_view(problems) if problems else None,
        "environment": environment_rows(runs),
    }


def render(context: dict[str, Any]) -> str:
    """The page's HTML from a context built by `build_context`."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html").render(**context)


def build_report(results_dir: str | os.PathLike, output_path: str | os.PathLike) -> Path:
    """Load the runs under `results_dir` and write the HTML report to `output_path` (returned).

    A path that cannot be written (a folder, a path under a file, an unwritable folder) raises
    output.ReportOutputError, and a missing results folder load.ResultsNotFoundError, before any
    work; both are InputErrors."""
    output = check_output_path(output_path)
    results = load_results(results_dir)
    page = render(build_context(results))
    # atomic: an interrupted build never leaves a half-written report behind; a report is meant to be shared.
    # surrogateescape: a path whose bytes the locale could not decode is written back as it was.
    atomic_write_text(output, page, mode=0o644, errors="surrogateescape")
    log.info("wrote report %s (%d runs)", output, len(results.runs))
    return output
