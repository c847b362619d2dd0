"""The paper's claims against synthetic runs: supports, does not support, cannot tell."""

from __future__ import annotations

import pytest

from nightbench.reports import load_results, paper_claims
from nightbench.reports.claims import REFUTES, SUPPORTS, UNKNOWN
from nightbench.suites.small_batch_variance import findings


@pytest.fixture(scope="module")
def claims(synthetic_results):
    r = synthetic_results
    return {c.key: c for c in paper_claims(r.runs, r.sbv, r.memory)}


def test_every_claim_is_stated_at_this_runs_scale(claims, synthetic):
    assert set(claims) == {"bert", "resnet", "memory", "momentum_rescue"}
    for claim in claims.values():
        assert claim.scale == f"at this run's scale (preset {synthetic.preset})"
        assert claim.verdict in (SUPPORTS, REFUTES, UNKNOWN)


def test_bert_claim_supported_when_intervals_separate(claims):
    # nigt's final runs (0.401, 0.404, 0.399) against adam's defaults (0.350, 0.352, 0.349)
    assert claims["bert"].verdict == SUPPORTS
    assert "70.91" in claims["bert"].paper
    assert "0.4013" in claims["bert"].measured and "0.3503" in claims["bert"].measured
    assert claims["bert"].measured.startswith("mlm_accuracy: nigt (final) 0.4013")


def test_resnet_claim_cannot_tell_when_intervals_overlap(claims):
    # nigt 0.62/0.66 vs sgd 0.61/0.63: two seeds each, wide overlapping intervals
    assert claims["resnet"].verdict == UNKNOWN
    assert "overlap" in claims["resnet"].reason


def test_memory_claim_from_measured_slots(claims):
    assert claims["memory"].verdict == SUPPORTS
    assert "nigt 1 vs adam 2" in claims["memory"].measured


def test_momentum_rescue_claim(claims):
    assert claims["momentum_rescue"].verdict == SUPPORTS
    assert "skewed_noise" in claims["momentum_rescue"].reason


def _claims_for(root):
    r = load_results(root)
    return {c.key: c for c in paper_claims(r.runs, r.sbv, r.memory)}


def test_claims_refuted_when_nigt_is_clearly_worse(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    for seed, (ours, theirs) in enumerate([(0.30, 0.40), (0.31, 0.41), (0.29, 0.405)]):
        writer.training_run("bert_mlm", "nigt", seed, ours, metric="mlm_accuracy", target=0.2)
        writer.training_run("bert_mlm", "adam", seed, theirs, metric="mlm_accuracy", target=0.2)
    memory = [{"kind": "memory", "unit": "m", "model": "m", "params": 10, "state_bytes": 80,
               "state_bytes_per_param": 8.0, "param_copies": 2.0, "peak_step_bytes": None, "step_time": 0.1,
               "device": "cpu"}]
    writer.experiment_run("memory_overhead", "nigt", memory)  # a naive NIGT that stores w_{t-1}
    writer.experiment_run("memory_overhead", "adam", memory)
    claims = _claims_for(tmp_path)
    assert claims["bert"].verdict == REFUTES
    assert claims["memory"].verdict == REFUTES


def test_claims_cannot_tell_without_runs(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    writer.training_run("bert_mlm", "nigt", 0, 0.5, metric="mlm_accuracy", target=0.2)
    writer.training_run("bert_mlm", "adam", 0, 0.4, metric="mlm_accuracy", target=0.2)
    claims = _claims_for(tmp_path)
    assert claims["bert"].verdict == UNKNOWN and "fewer than two" in claims["bert"].reason
    assert claims["bert"].shown_verdict == "cannot tell"  # it has runs of both: undecided
    assert claims["resnet"].verdict == UNKNOWN and "needs both" in claims["resnet"].reason
    assert claims["memory"].verdict == UNKNOWN
    assert claims["momentum_rescue"].verdict == UNKNOWN
    assert {claims[k].shown_verdict for k in ("resnet", "memory", "momentum_rescue")} == {"not run"}


def test_claims_on_empty_results(tmp_path):
    claims = _claims_for(tmp_path)
    assert {c.verdict for c in claims.values()} == {UNKNOWN}
    assert {c.shown_verdict for c in claims.values()} == {"not run"}
    assert all(c.scale == "at this run's scale (no runs)" for c in claims.values())


def test_nigt_that_never_finishes_does_not_support(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    for seed in range(2):
        writer.training_run("resnet50_imagenet", "nigt", seed, 0.0, metric="top1", target=0.5, status="diverged")
        writer.training_run("resnet50_imagenet", "sgd", seed, 0.6 + seed / 100, metric="top1", target=0.5)
    claim = _claims_for(tmp_path)["resnet"]
    assert claim.verdict == REFUTES and "diverged" in claim.reason


def test_rescue_refuted_when_momentum_floor_is_higher(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    for optimizer, floor in (("nsgd", 0.01), ("nsgd_momentum", 0.5)):
        records = [{"kind": "sbv_unit", "unit": f"u{s}", "problem": "skewed_noise", "batch_size": 1, "lr": 0.1,
                    "unit_seed": s, "floor": floor * (1 + 0.01 * s)} for s in range(3)]
        writer.experiment_run("small_batch_variance", optimizer, records)
    assert _claims_for(tmp_path)["momentum_rescue"].verdict == REFUTES


def _floors(writer, floors_by_optimizer, problem="skewed_noise"):
    for optimizer, floors in floors_by_optimizer.items():
        records = [{"kind": "sbv_unit", "unit": f"u{s}", "problem": problem, "batch_size": 1, "lr": 0.1,
                    "unit_seed": s, "floor": floor} for s, floor in enumerate(floors)]
        writer.experiment_run("small_batch_variance", optimizer, records)


def test_rescue_cannot_tell_from_one_unit_seed(tmp_path, run_writer):
    _floors(run_writer(tmp_path), {"nsgd": [0.5], "nsgd_momentum": [0.05], "nigt": [0.04]})
    claim = _claims_for(tmp_path)["momentum_rescue"]
    assert claim.verdict == UNKNOWN
    assert claim.reason.startswith("fewer than two unit seeds on a side, so no interval (nsgd_momentum − nsgd, "
                                   "floor on skewed_noise at batch 1: -0.45; nigt − nsgd")
    assert len(claim.comparisons) == 2


def test_rescue_cannot_tell_when_intervals_cross_zero(tmp_path, run_writer):
    _floors(run_writer(tmp_path), {"nsgd": [0.5, 0.3], "nsgd_momentum": [0.45, 0.2], "nigt": [0.01, 0.011]})
    claim = _claims_for(tmp_path)["momentum_rescue"]
    assert claim.verdict == UNKNOWN
    (overlapping,) = [c for c in claim.comparisons if c.ours == "nsgd_momentum"]
    needed = overlapping.difference.seeds_needed
    assert needed and needed > 2
    assert "overlaps zero (nsgd_momentum − nsgd" in claim.reason
    assert f"about {needed:,} seeds per optimizer would separate the smallest of these differences" in claim.reason


def test_a_tuned_optimizer_against_an_untuned_one_says_so(tmp_path, run_writer):
    import json

    writer = run_writer(tmp_path)
    for seed in range(3):
        ours = writer.training_run("bert_mlm", "nigt", seed, 0.40 + seed / 1000, metric="mlm_accuracy", target=0.2)
        writer.training_run("bert_mlm", "adam", seed, 0.40 + seed / 1000, metric="mlm_accuracy", target=0.2)
        config = json.loads((ours / "config.json").read_text())
        config["defaults_source"] = {"tuned_by": "small-study", "budget": 6}
        (ours / "config.json").write_text(json.dumps(config))
    claim = _claims_for(tmp_path)["bert"]
    assert claim.verdict == SUPPORTS and claim.label.startswith("matches (not worse by more than δ = 0.01)")
    assert "tuned by the shipped study small-study (budget 6)" in claim.measured
    assert "note: nigt was tuned and adam was not, which favours nigt" in claim.reason


def test_the_claim_takes_its_verdict_from_findings(synthetic_results, monkeypatch):
    r = synthetic_results

    def rescue():
        return {c.key: c for c in paper_claims(r.runs, r.sbv, r.memory)}["momentum_rescue"]

    assert rescue().verdict == SUPPORTS
    seen = []

    def refuting(per_problem):
        seen.append({p: list(o) for p, o in per_problem.items()})
        return False, list(per_problem)

    monkeypatch.setattr(findings, "momentum_rescue", refuting)
    assert rescue().verdict == REFUTES
    assert seen == [{"skewed_noise": ["lower", "lower"]}]  # nsgd_momentum and nigt, both below nsgd
    monkeypatch.setattr(findings, "momentum_rescue", lambda per_problem: (None, list(per_problem)))
    assert rescue().verdict == UNKNOWN
