"""The paper's claims side by side with what this run measured, each with a verdict.

A verdict is 'supports', 'does not support' or 'cannot tell'. The BERT and ResNet-50 claims are
parity claims ("NIGT matches Adam / SGD"), tested as the paper states them: non-inferiority within
the margin delta that the suite declares for the preset (differences.parity_test). The claim holds
("matches: not worse by more than delta") when the lower end of the 90% interval of (NIGT -
baseline) lies above -delta (the one-sided 95% test); "worse by more than delta" when its upper end
lies below -delta; otherwise "cannot tell". A match whose interval also clears zero says NIGT is
clearly better. Where a suite declares no margin for the preset, the comparison falls back to the
95% interval of the difference against zero, and says so. Other comparisons rest on that interval:
clear of zero on the better side supports the claim, on the worse side it does not, across zero it
cannot tell. Every comparison says what this run could detect at 80% power (for the test it used)
and how many seeds per optimizer its observed difference needs; every verdict is stated at the
scale of the preset that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from nightbench.suites.outcomes import RunState
from nightbench.suites.small_batch_variance import findings

from . import fmt
from .bounds import NON_NEGATIVE, metric_range
from .differences import (BETTER, CLEARLY_BETTER, MATCHES, TOO_FEW, UNCLEAR, WORSE, WORSE_BY_MARGIN, Difference,
                          ParityTest, compare_seeds, parity_test)
from .facts import suite_facts
from .stats import Interval, floor_samples, floor_summary, memory_summary, reported_records, reported_runs

SUPPORTS, REFUTES, UNKNOWN = "supports", "does not support", "cannot tell"
NOT_RUN = "not run"  # shown instead of "cannot tell" when the runs a claim reads are absent, not undecided
PRESET_PREFERENCE = ("paper", "small", "ci")  # the largest scale present decides a claim
# The suites the claims read, in the order the claims come (the report has a section for each).
CLAIM_SUITES = {"bert_mlm": "NIGT vs Adam on BERT pre-training",
                "resnet50_imagenet": "NIGT vs SGD on ResNet-50 / ImageNet",
                "memory_overhead": "Memory: NIGT keeps one slot, Adam two",
                "small_batch_variance": "Momentum rescues normalized SGD at small batch"}


@dataclass(frozen=True)
class Comparison:
    """One comparison behind a verdict: `ours` against `theirs` on `what` (a metric, a floor)."""

    ours: str
    theirs: str
    what: str
    difference: Difference
    parity: ParityTest | None = None  # the non-inferiority test, for a parity claim with a margin

    @property
    def sides(self) -> str:
        return f"{self.ours} − {self.theirs}"

    @property
    def reason(self) -> str:
        if self.parity is not None:
            return parity_reason(self.parity, self.ours, self.theirs)
        return difference_reason(self.difference, self.ours, self.theirs)


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and what this run says about it."""

    key: str
    title: str
    paper: str  # what the paper reports
    measured: str  # what this run measured
    verdict: str  # SUPPORTS | REFUTES | UNKNOWN
    reason: str
    scale: str  # "at this run's scale (preset X)"
    comparisons: tuple[Comparison, ...] = ()
    label: str = ""  # the verdict as shown, where it says more than `verdict` (a parity claim's outcome)

    @property
    def shown_verdict(self) -> str:
        return self.label or self.verdict


def _scale(preset: str | None) -> str:
    return f"at this run's scale (preset {preset})" if preset else "at this run's scale (no runs)"


def _pick_preset(presets: set[str]) -> str | None:
    for preset in PRESET_PREFERENCE:
        if preset in presets:
            return preset
    return sorted(presets)[0] if presets else None


def _suite_runs_at_preset(runs: pd.DataFrame, suite: str) -> tuple[str | None, pd.DataFrame]:
    """The largest-scale preset a suite ran at, and its runs there (records never mix presets)."""
    suite_runs = runs[runs["suite"] == suite] if len(runs) else runs
    preset = _pick_preset(set(suite_runs["preset"].dropna())) if len(suite_runs) else None
    return preset, suite_runs[suite_runs["preset"] == preset] if preset else suite_runs


def _described(name: str, interval: Interval) -> str:
    shown = fmt.mean_ci(interval.mean, interval.low, interval.high, interval.n)
    if interval.n < 2:
        return f"{name} {shown}"
    return f"{name} {shown} ({interval.n} seeds, {interval.method})"


def _reason(head: str, outcome: str, seeds: str, endings: dict[str, str], overlapped: str) -> str:
    """A verdict's reason: `head`, then the ending of its outcome; too few seeds, or an interval that
    overlaps `overlapped` (no ending of its own), also say how many seeds there are and need to be."""
    if outcome == TOO_FEW:
        return f"fewer than two completed seeds on a side, so no interval: {head}; {seeds}"
    if outcome in endings:
        return head + endings[outcome]
    return f"{head}, which overlaps {overlapped}; {seeds}"


def difference_reason(diff: Difference, ours: str, theirs: str) -> str:
    """The verdict's reason for one comparison: the difference, its interval, and the seeds it needs."""
    head = f"the difference {ours} − {theirs} is {diff.interval_text()}"
    endings = {BETTER: ", clear of zero on the better side", WORSE: ", clear of zero on the worse side"}
    return _reason(head, diff.outcome, diff.seeds_text(), endings, "zero")


def parity_reason(test: ParityTest, ours: str, theirs: str) -> str:
    """A parity verdict's reason: the difference, its 90% interval against the margin, the seeds."""
    margin = fmt.number(test.margin, 3)
    head = (f"the difference {ours} − {theirs} is {test.difference.interval_text()} (90% Welch interval, the "
            f"one-sided 95% test of non-inferiority) against the margin δ = {margin}")
    endings = {
        CLEARLY_BETTER: (f": not worse by more than δ, and clear of zero on the better side "
                         f"({ours} is clearly better)"),
        MATCHES: f": its lower end lies above −δ, so {ours} is not worse by more than δ",
        WORSE_BY_MARGIN: f": its upper end lies below −δ, so {ours} is worse by more than δ",
    }
    return _reason(head, test.outcome, test.seeds_text(), endings, "−δ")


def _protocol_note(tuned: dict[str, bool], ours: str, baseline: str) -> str:
    """Where one side was tuned (by --tune, or by a shipped study) and the other not, the verdict says so."""
    if tuned[ours] == tuned[baseline]:
        return ""
    t, u = (ours, baseline) if tuned[ours] else (baseline, ours)
    return f" (note: {t} was tuned and {u} was not, which favours {t})"


def final_metric_claim(runs: pd.DataFrame, key: str, title: str, suite: str, ours: str, baseline: str,
                       paper: str) -> Claim:
    """`ours` matches `baseline`'s final target metric on `suite`: non-inferiority within the suite's
    margin for the preset, or, where it declares none, the difference against zero."""
    suite_runs = reported_runs(runs[runs["suite"] == suite]) if len(runs) else runs
    presets = {p for p in suite_runs["preset"].dropna()} if len(suite_runs) else set()
    both = {p for p in presets if {ours, baseline} <= set(suite_runs[suite_runs["preset"] == p]["optimizer"])}
    preset = _pick_preset(both) or _pick_preset(presets)
    if not both:
        have = sorted(set(suite_runs["optimizer"])) if len(suite_runs) else []
        return Claim(key, title, paper, f"runs of {suite} found for: {', '.join(have) or 'none'}", UNKNOWN,
                     f"this run needs both {ours} and {baseline} on {suite}", _scale(preset), label=NOT_RUN)
    chosen = suite_runs[suite_runs["preset"] == preset]
    metric = next((m for m in chosen["target_metric"] if isinstance(m, str)), "final metric")
    higher = bool(chosen["higher_is_better"].iloc[0])
    ours_runs, base_runs = chosen[chosen["optimizer"] == ours], chosen[chosen["optimizer"] == baseline]
    diff = compare_seeds(ours_runs[ours_runs["status"] == RunState.COMPLETED]["final_value"],
                         base_runs[base_runs["status"] == RunState.COMPLETED]["final_value"], higher, metric_range(metric))
    tag, tuned = {}, {}  # name the protocol when tuned ('final') runs are compared
    for name, frame in ((ours, ours_runs), (baseline, base_runs)):
        protocols = sorted(set(frame["protocol"]))
        studies = sorted(set(frame["tuned_by"].dropna())) if "tuned_by" in frame else []
        tuned[name] = protocols != ["default"] or bool(studies)
        tag[name] = name if protocols == ["default"] else f"{name} ({', '.join(protocols)})"
        if studies:
            tag[name] += f" (tuned by {', '.join(studies)})"
    measured = f"{metric}: {_described(tag[ours], diff.ours)} vs {_described(tag[baseline], diff.theirs)}"
    comparisons = (Comparison(ours, baseline, f"final {metric}", diff),)
    if diff.ours.n == 0 and diff.theirs.n > 0:
        bad = ", ".join(sorted(set(ours_runs["status"])))
        return Claim(key, title, paper, measured, REFUTES, f"{ours} finished no run ({bad}) where {baseline} did",
                     _scale(preset))
    if diff.ours.n == 0 or diff.theirs.n == 0:
        return Claim(key, title, paper, measured, UNKNOWN, "no completed runs to compare", _scale(preset))
    note = _protocol_note(tuned, ours, baseline)
    facts = suite_facts(chosen)
    declared = facts.parity_margin(preset) if facts is not None else None
    if declared is None:
        verdict = {BETTER: SUPPORTS, WORSE: REFUTES}.get(diff.outcome, UNKNOWN)
        reason = (f"{difference_reason(diff, ours, baseline)}; {suite} declares no parity margin at preset {preset}, "
                  "so the difference was tested against zero")
        return Claim(key, title, paper, measured, verdict, reason + note, _scale(preset), comparisons)
    margin, why = declared
    test = parity_test(ours_runs[ours_runs["status"] == RunState.COMPLETED]["final_value"],
                       base_runs[base_runs["status"] == RunState.COMPLETED]["final_value"], margin, higher,
                       metric_range(metric))
    comparisons = (Comparison(ours, baseline, f"final {metric}", test.difference, test),)
    verdict = {MATCHES: SUPPORTS, CLEARLY_BETTER: SUPPORTS, WORSE_BY_MARGIN: REFUTES}.get(test.outcome, UNKNOWN)
    delta = fmt.number(margin, 3)
    label = {MATCHES: f"matches (not worse by more than δ = {delta})",
             CLEARLY_BETTER: f"matches (not worse by more than δ = {delta}); clearly better",
             WORSE_BY_MARGIN: f"worse by more than δ = {delta}"}.get(test.outcome, UNKNOWN)
    reason = f"{parity_reason(test, ours, baseline)}. Why δ = {delta} at preset {preset}: {why}"
    return Claim(key, title, paper, measured, verdict, reason + note, _scale(preset), comparisons, label)


def memory_claim(memory: pd.DataFrame, runs: pd.DataFrame) -> Claim:
    """NIGT's state is one parameter-sized slot (momentum only), Adam's two."""
    title = CLAIM_SUITES["memory_overhead"]
    paper = "NIGT stores only its momentum (one parameter-sized slot); Adam stores two moments."
    preset, suite_runs = _suite_runs_at_preset(runs, "memory_overhead")
    summary = memory_summary(reported_records(memory, suite_runs))
    if summary.empty or not {"nigt", "adam"} <= set(summary["optimizer"]):
        return Claim("memory", title, paper, "no memory_overhead measurements of both nigt and adam", UNKNOWN,
                     "this run needs the memory_overhead suite with nigt and adam", _scale(preset), label=NOT_RUN)
    copies = summary["param_copies"].where(summary["param_copies"].notna(), summary["state_bytes_per_param"] / 4)
    summary = summary.assign(copies=copies)
    nigt = summary[summary["optimizer"] == "nigt"]
    adam = summary[summary["optimizer"] == "adam"]
    per_model = []
    for model in sorted(set(nigt["family"]) & set(adam["family"])):
        n = float(nigt[nigt["family"] == model]["copies"].mean())
        a = float(adam[adam["family"] == model]["copies"].mean())
        per_model.append((model, n, a))
    measured = "; ".join(f"{m}: nigt {fmt.number(n, 3)} vs adam {fmt.number(a, 3)} parameter-sized copies"
                         for m, n, a in per_model) or "no model measured for both"
    if not per_model:
        return Claim("memory", title, paper, measured, UNKNOWN, "no model was measured with both", _scale(preset),
                     label=NOT_RUN)
    # State sizes are exact byte counts, so no interval is needed; 10% slack covers scalars per group.
    one_slot = all(abs(n - 1) <= 0.1 for _, n, _ in per_model)
    two_slots = all(abs(a - 2) <= 0.1 for _, _, a in per_model)
    if one_slot and two_slots:
        return Claim("memory", title, paper, measured, SUPPORTS,
                     "state sizes are exact byte counts: nigt holds one copy of the parameters, adam two",
                     _scale(preset))
    if any(n >= a or n > 1.1 for _, n, a in per_model):
        return Claim("memory", title, paper, measured, REFUTES,
                     "nigt keeps more than one parameter-sized slot (or no less than adam)", _scale(preset))
    return Claim("memory", title, paper, measured, UNKNOWN,
                 "nigt is leaner than adam but the counts are not one and two slots", _scale(preset))


def _rescue_on_problem(sbv: pd.DataFrame, problem: str, rescuers: tuple[str, ...]
                       ) -> tuple[str, list[Comparison]] | None:
    """(what was measured, each rescuer's comparison against nsgd) on one problem, or None when nsgd
    has no floor there. Compared at nsgd's smallest batch, each optimizer at its best lr."""
    summary = floor_summary(sbv)
    here = summary[summary["problem"] == problem]
    nsgd = here[here["optimizer"] == "nsgd"]
    if nsgd.empty:
        return None
    batch = int(nsgd["batch_size"].min())
    base = floor_samples(sbv, problem, "nsgd", batch)
    parts, comparisons = [], []
    for rescuer in rescuers:
        samples = floor_samples(sbv, problem, rescuer, batch)
        if not samples:
            continue
        diff = compare_seeds(samples, base, higher_is_better=False, bounds=NON_NEGATIVE)
        if not parts:
            parts.append(f"{problem}, batch {batch}: {_described('nsgd', diff.theirs)}")
        parts.append(_described(rescuer, diff.ours))
        comparisons.append(Comparison(rescuer, "nsgd", f"floor on {problem} at batch {batch}", diff))
    if not comparisons:
        return f"{problem}, batch {batch}: nsgd only; no nsgd_momentum/nigt floor at that batch size", []
    return ", ".join(parts), comparisons


def _listed(comparisons) -> str:
    return " (" + "; ".join(f"{c.sides}, {c.what}: {c.difference.interval_text()}" for c in comparisons) + ")" \
        if comparisons else ""


def _undecided_rescue(comparisons: tuple[Comparison, ...]) -> str:
    """Why the rescue comparisons do not decide: too few unit seeds, or intervals across zero."""
    if len(comparisons) == 1:
        return comparisons[0].reason
    too_few = [c for c in comparisons if c.difference.outcome == TOO_FEW]
    overlapping = [c for c in comparisons if c.difference.outcome == UNCLEAR]
    parts = []
    if too_few:
        parts.append("fewer than two unit seeds on a side, so no interval" + _listed(too_few))
    if overlapping:
        needed = [c.difference.seeds_needed for c in overlapping if c.difference.seeds_needed is not None]
        part = "the interval of the difference overlaps zero" + _listed(overlapping)
        if needed:
            part += f"; about {max(needed):,} seeds per optimizer would separate the smallest of these differences"
        parts.append(part)
    return "; ".join(parts) or "no momentum variant was measured at nsgd's smallest batch"


def momentum_rescue_claim(sbv: pd.DataFrame, runs: pd.DataFrame) -> Claim:
    """At batch 1, momentum (nsgd_momentum, nigt) shrinks the gradient-norm floor that nsgd stalls at."""

    title = CLAIM_SUITES["small_batch_variance"]
    paper = ("Normalized SGD without momentum needs large batches: at batch 1 it stalls at a gradient-norm "
             "floor; with momentum (NSGD-momentum, NIGT) it keeps converging (Sections 2-4).")
    preset, suite_runs = _suite_runs_at_preset(runs, "small_batch_variance")
    records = reported_records(sbv, suite_runs)
    if records.empty or "problem" not in records.columns:
        return Claim("momentum_rescue", title, paper, "no small_batch_variance records", UNKNOWN,
                     "this run needs the small_batch_variance suite with nsgd and nsgd_momentum or nigt",
                     _scale(preset), label=NOT_RUN)
    results = {}
    for problem in sorted(records["problem"].dropna().astype(str).unique()):
        outcome = _rescue_on_problem(records, problem, findings.RESCUERS)
        if outcome is not None:
            results[problem] = outcome
    if not results:
        return Claim("momentum_rescue", title, paper, "no nsgd floors recorded", UNKNOWN,
                     "this run needs nsgd in the small_batch_variance suite", _scale(preset), label=NOT_RUN)
    as_findings = {BETTER: findings.LOWER, WORSE: findings.HIGHER}  # a lower floor is the better one
    holds, deciding = findings.momentum_rescue(
        {p: [as_findings.get(c.difference.outcome, c.difference.outcome) for c in comparisons]
         for p, (_, comparisons) in results.items()})
    measured = " | ".join(results[p][0] for p in deciding)
    others = [p for p in results if p not in deciding]
    if others:
        measured += " | other problems: " + "; ".join(results[p][0] for p in others)
    comparisons = tuple(c for p in deciding for c in results[p][1])
    if holds is True:
        verdict = SUPPORTS
        reason = ("every momentum variant's floor lies below nsgd's, each difference's interval clear of zero"
                  + _listed(comparisons))
    elif holds is False:
        verdict = REFUTES
        reason = "a momentum variant's floor lies above nsgd's" + _listed(
            [c for c in comparisons if c.difference.outcome == WORSE])
    else:
        verdict, reason = UNKNOWN, _undecided_rescue(comparisons)
    skewed = [p for p in deciding if findings.is_skewed_example(p)]
    if skewed:
        examples = "example" if len(skewed) == 1 else "examples"
        reason += f" (decided on {', '.join(skewed)}, the paper's skewed-noise {examples})"
    return Claim("momentum_rescue", title, paper, measured, verdict, reason, _scale(preset), comparisons)


def paper_claims(runs: pd.DataFrame, sbv: pd.DataFrame, memory: pd.DataFrame) -> list[Claim]:
    """The four claims the report checks, in the paper's order."""
    if runs.empty:
        runs = pd.DataFrame(columns=["suite", "preset", "optimizer", "protocol", "run_id"])
    return [
        final_metric_claim(runs, "bert", CLAIM_SUITES["bert_mlm"], "bert_mlm", "nigt", "adam",
                           "BERT-Base MLM accuracy at 500k steps: NIGT 70.91% vs Adam 70.76%."),
        final_metric_claim(runs, "resnet", CLAIM_SUITES["resnet50_imagenet"], "resnet50_imagenet", "nigt",
                           "sgd", "Top-1 accuracy at 90 epochs: NIGT 76.37% vs SGD-momentum 76.2%."),
        memory_claim(memory, runs),
        momentum_rescue_claim(sbv, runs),
    ]

