"""The paper's claims side by side with what this run measured, each with a verdict.

A verdict is 'supports', 'does not support' or 'cannot tell'. Comparisons of means need a 95%
interval on both sides (two or more seeds) that do not overlap; anything less is 'cannot tell',
and every verdict is stated at the scale of the preset that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import fmt
from .stats import Interval, floor_samples, floor_summary, memory_summary, reported_records, reported_runs, t_interval

SUPPORTS, REFUTES, UNKNOWN = "supports", "does not support", "cannot tell"
PRESET_PREFERENCE = ("paper", "small", "ci")  # the largest scale present decides a claim
RESCUERS = ("nsgd_momentum", "nigt")


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
    return f"{name} {fmt.mean_ci(interval.mean, interval.low, interval.high, interval.n)} ({interval.n} seed(s))"


def compare(ours: Interval, theirs: Interval, higher_is_better: bool = True) -> str:
    """'better', 'worse', 'overlap' or 'no interval' for `ours` against `theirs`."""
    if not (ours.has_interval and theirs.has_interval):
        return "no interval"
    if ours.overlaps(theirs):
        return "overlap"
    above = ours.low > theirs.high
    return "better" if above == higher_is_better else "worse"


def final_metric_claim(runs: pd.DataFrame, key: str, title: str, suite: str, ours: str, baseline: str,
                       paper: str) -> Claim:
    """`ours` reaches at least `baseline`'s final target metric on `suite` (paper: a small edge)."""
    suite_runs = reported_runs(runs[runs["suite"] == suite]) if len(runs) else runs
    presets = {p for p in suite_runs["preset"].dropna()} if len(suite_runs) else set()
    both = {p for p in presets if {ours, baseline} <= set(suite_runs[suite_runs["preset"] == p]["optimizer"])}
    preset = _pick_preset(both) or _pick_preset(presets)
    if not both:
        have = sorted(set(suite_runs["optimizer"])) if len(suite_runs) else []
        return Claim(key, title, paper, f"runs of {suite} found for: {', '.join(have) or 'none'}", UNKNOWN,
                     f"this run needs both {ours} and {baseline} on {suite}", _scale(preset))
    chosen = suite_runs[suite_runs["preset"] == preset]
    metric = next((m for m in chosen["target_metric"] if isinstance(m, str)), "final metric")
    higher = bool(chosen["higher_is_better"].iloc[0])
    ours_runs, base_runs = chosen[chosen["optimizer"] == ours], chosen[chosen["optimizer"] == baseline]
    ours_iv = t_interval(ours_runs[ours_runs["status"] == "completed"]["final_value"])
    base_iv = t_interval(base_runs[base_runs["status"] == "completed"]["final_value"])
    tag = {}  # name the protocol when tuned ('final') runs are compared
    for name, frame in ((ours, ours_runs), (baseline, base_runs)):
        protocols = sorted(set(frame["protocol"]))
        tag[name] = name if protocols == ["default"] else f"{name} ({', '.join(protocols)})"
    measured = f"{metric}: {_described(tag[ours], ours_iv)} vs {_described(tag[baseline], base_iv)}"
    if ours_iv.n == 0 and base_iv.n > 0:
        bad = ", ".join(sorted(set(ours_runs["status"])))
        return Claim(key, title, paper, measured, REFUTES, f"{ours} finished no run ({bad}) where {baseline} did",
                     _scale(preset))
    if ours_iv.n == 0 or base_iv.n == 0:
        return Claim(key, title, paper, measured, UNKNOWN, "no completed runs to compare", _scale(preset))
    outcome = compare(ours_iv, base_iv, higher)
    direction = "higher" if higher else "lower"
    verdict, reason = {
        "better": (SUPPORTS, f"{ours}'s 95% interval lies entirely on the better ({direction}) side of {baseline}'s"),
        "worse": (REFUTES, f"{ours}'s 95% interval lies entirely on the worse side of {baseline}'s"),
        "overlap": (UNKNOWN, "the 95% intervals overlap: the seeds do not separate the two"),
        "no interval": (UNKNOWN, "fewer than two completed seeds on a side: no confidence interval"),
    }[outcome]
    return Claim(key, title, paper, measured, verdict, reason, _scale(preset))


def memory_claim(memory: pd.DataFrame, runs: pd.DataFrame) -> Claim:
    """NIGT's state is one parameter-sized slot (momentum only), Adam's two."""
    title, paper = "Memory: NIGT keeps one slot, Adam two", \
        "NIGT stores only its momentum (one parameter-sized slot); Adam stores two moments."
    preset, suite_runs = _suite_runs_at_preset(runs, "memory_overhead")
    summary = memory_summary(reported_records(memory, suite_runs))
    if summary.empty or not {"nigt", "adam"} <= set(summary["optimizer"]):
        return Claim("memory", title, paper, "no memory_overhead measurements of both nigt and adam", UNKNOWN,
                     "this run needs the memory_overhead suite with nigt and adam", _scale(preset))
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
        return Claim("memory", title, paper, measured, UNKNOWN, "no model was measured with both", _scale(preset))
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


def _rescue_on_problem(sbv: pd.DataFrame, problem: str) -> tuple[str, str] | None:
    """(verdict, description) on one problem, or None when nsgd has no floor there."""
    summary = floor_summary(sbv)
    here = summary[summary["problem"] == problem]
    nsgd = here[here["optimizer"] == "nsgd"]
    if nsgd.empty:
        return None
    batch = int(nsgd["batch_size"].min())
    base = t_interval(floor_samples(sbv, problem, "nsgd", batch))
    parts = [f"{problem}, batch {batch}: {_described('nsgd', base)}"]
    outcomes = []
    for rescuer in RESCUERS:
        samples = floor_samples(sbv, problem, rescuer, batch)
        if not samples:
            continue
        interval = t_interval(samples)
        parts.append(_described(rescuer, interval))
        outcomes.append(compare(interval, base, higher_is_better=False))
    if not outcomes:
        return UNKNOWN, parts[0] + "; no nsgd_momentum/nigt floor at that batch size"
    if all(o == "better" for o in outcomes):
        verdict = SUPPORTS
    elif any(o == "worse" for o in outcomes):
        verdict = REFUTES
    else:
        verdict = UNKNOWN
    return verdict, ", ".join(parts)


def momentum_rescue_claim(sbv: pd.DataFrame, runs: pd.DataFrame) -> Claim:
    """At batch 1, momentum (nsgd_momentum, nigt) shrinks the gradient-norm floor that nsgd stalls at."""
    title = "Momentum rescues normalized SGD at small batch"
    paper = ("Normalized SGD without momentum needs large batches: at batch 1 it stalls at a gradient-norm "
             "floor; with momentum (NSGD-momentum, NIGT) it keeps converging (Sections 2-4).")
    preset, suite_runs = _suite_runs_at_preset(runs, "small_batch_variance")
    records = reported_records(sbv, suite_runs)
    if records.empty or "problem" not in records.columns:
        return Claim("momentum_rescue", title, paper, "no small_batch_variance records", UNKNOWN,
                     "this run needs the small_batch_variance suite with nsgd and nsgd_momentum or nigt",
                     _scale(preset))
    results = {}
    for problem in sorted(records["problem"].dropna().astype(str).unique()):
        outcome = _rescue_on_problem(records, problem)
        if outcome is not None:
            results[problem] = outcome
    if not results:
        return Claim("momentum_rescue", title, paper, "no nsgd floors recorded", UNKNOWN,
                     "this run needs nsgd in the small_batch_variance suite", _scale(preset))
    skewed = [p for p in results if "skew" in p.lower()]  # the paper's own example decides when present
    deciding_problems = skewed or list(results)
    deciding = [results[p][0] for p in deciding_problems]
    measured = " | ".join(results[p][1] for p in deciding_problems)
    others = [f"{p}: {results[p][0]}" for p in results if p not in deciding_problems]
    if others:
        measured += " | other problems: " + "; ".join(others)
    if all(v == SUPPORTS for v in deciding):
        verdict, reason = SUPPORTS, "every momentum variant's 95% interval lies below nsgd's floor"
    elif any(v == REFUTES for v in deciding):
        verdict, reason = REFUTES, "a momentum variant's floor lies above nsgd's"
    else:
        verdict, reason = UNKNOWN, "intervals overlap or too few unit seeds for an interval"
    if skewed:
        reason += f" (decided on {', '.join(skewed)}, the paper's skewed-noise example)"
    return Claim("momentum_rescue", title, paper, measured, verdict, reason, _scale(preset))


def paper_claims(runs: pd.DataFrame, sbv: pd.DataFrame, memory: pd.DataFrame) -> list[Claim]:
    """The four claims the report checks, in the paper's order."""
    if runs.empty:
        runs = pd.DataFrame(columns=["suite", "preset", "optimizer", "protocol", "run_id"])
    return [
        final_metric_claim(runs, "bert", "NIGT vs Adam on BERT pre-training", "bert_mlm", "nigt", "adam",
                           "BERT-Base MLM accuracy at 500k steps: NIGT 70.91% vs Adam 70.76%."),
        final_metric_claim(runs, "resnet", "NIGT vs SGD on ResNet-50 / ImageNet", "resnet50_imagenet", "nigt",
                           "sgd", "Top-1 accuracy at 90 epochs: NIGT 76.37% vs SGD-momentum 76.2%."),
        memory_claim(memory, runs),
        momentum_rescue_claim(sbv, runs),
    ]

