"""Facts the report reads rather than works out again: the tuning record's best lr, the summary's
target, the suite's declared sections, the results layout, and the momentum-rescue rule."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser

import pytest

from nightbench.reports import build_report, find_run_dirs, load_results, paper_claims, tables
from nightbench.reports.claims import REFUTES, SUPPORTS, UNKNOWN
from nightbench.suites.layout import tuning_record_path
from nightbench.suites.small_batch_variance import findings


def _tuning_runs(writer, optimizer, values):
    tried = []
    for lr, value in zip((1e-4, 1e-3, 1e-2), values):
        path = writer.training_run("bert_mlm", optimizer, 0, value, metric="mlm_accuracy", target=0.3,
                                   protocol="tuning", lr=lr)
        tried.append((lr, path, "completed", value))
    return tried


def test_best_lr_is_the_tuning_records_not_recomputed(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    # the runs alone would pick 1e-2 (0.40); the leaderboard's record says 1e-4 (say, a tie rule of its own)
    tried = _tuning_runs(writer, "nigt", (0.30, 0.38, 0.40))
    writer.tuning_record("bert_mlm", "nigt", tried, metric="mlm_accuracy", best_lr=1e-4, best_value=0.30)
    _tuning_runs(writer, "adam", (0.33, 0.35, 0.20))  # no record: an older board
    r = load_results(tmp_path)
    table = tables.tuning_table(r.runs, "bert_mlm", r.tuning)
    raw = table.raw.set_index("optimizer")
    assert raw.loc["nigt", "best_lr_on_tuning_seed"] == 1e-4 and raw.loc["nigt", "best_tuning_value"] == 0.30
    assert math.isnan(raw.loc["adam", "best_lr_on_tuning_seed"])
    shown = table.display.set_index("Optimizer")
    assert shown.loc["adam", "Best lr (tuning)"].startswith("— (no tuning record")
    assert shown.loc["nigt", "LRs tried"] == "0.0001 0.001 0.01"


def test_a_record_without_a_best_lr_shows_its_reason(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    path = writer.training_run("bert_mlm", "nigt", 0, 0.0, metric="mlm_accuracy", target=0.3, protocol="tuning",
                               lr=1.0, status="diverged")
    writer.tuning_record("bert_mlm", "nigt", [(1.0, path, "diverged", None)], metric="mlm_accuracy",
                         reason="every learning rate diverged")
    r = load_results(tmp_path)
    shown = tables.tuning_table(r.runs, "bert_mlm", r.tuning).display.set_index("Optimizer")
    assert shown.loc["nigt", "Best lr (tuning)"] == "— (every learning rate diverged)"
    assert shown.loc["nigt", "Diverged/failed"] == "1"


def test_a_damaged_tuning_record_is_a_listed_problem(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    writer.training_run("bert_mlm", "nigt", 0, 0.3, metric="mlm_accuracy", target=0.3, protocol="tuning")
    record = tuning_record_path(tmp_path, writer.preset, "bert_mlm", "nigt")
    record.parent.mkdir(parents=True)
    record.write_text('{"suite": "bert_mlm", "best_lr": ')
    r = load_results(tmp_path)
    assert r.tuning.empty
    problem = r.problems.set_index("run_dir").loc[record.relative_to(tmp_path).as_posix()]
    assert problem["status"] == "damaged" and "not valid JSON" in problem["reason"]


def test_runs_without_target_fields_are_unknown_and_noted(synthetic_results):
    table = tables.leaderboard(synthetic_results.runs, "bert_mlm")
    adam = table.raw.set_index("optimizer").loc["adam"]
    assert adam["reached_target"] == 0 and adam["target_unknown"] == 3
    assert table.display.set_index("Optimizer").loc["adam", "Reached target"] == "0/3 (3 unknown)"
    assert any("no steps_to_target" in n and "adam 3" in n for n in table.notes)


def test_layout_folders_hold_no_runs(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    writer.training_run("bert_mlm", "adam", 0, 0.4, metric="mlm_accuracy", target=0.3)
    for folder in ("_logs/final", "_tuning/ci/bert_mlm"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "config.json").write_text("{}")
    assert [p.relative_to(tmp_path).parts[0] for p in find_run_dirs(tmp_path)] == ["bert_mlm"]


# ---- suite facts: the sections a suite gets are the ones it declared ---------------------------------

class Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.ids |= {v for k, v in attrs if k == "id"}


def _ids(path) -> set[str]:
    parser = Ids()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.ids


USER_FACTS = {"kind": "training", "seed_independent": False, "title": "My own suite", "description": "Mine.",
              "report_sections": ["leaderboard", "learning_curves"]}


@pytest.mark.parametrize("facts, legacy_kind", [(USER_FACTS, None), (None, "training")])
def test_a_users_own_training_suite_gets_its_leaderboard_and_curves(tmp_path, run_writer, facts, legacy_kind):
    results = tmp_path / "results"
    writer = run_writer(results)
    for optimizer in ("adam", "nigt"):
        for seed in range(2):
            path = writer.training_run("my_suite", optimizer, seed, 0.4 + seed / 100, metric="score", target=0.3,
                                       facts=facts)
            if legacy_kind:  # a config from before suite_facts: only the kind
                config = json.loads((path / "config.json").read_text())
                (path / "config.json").write_text(json.dumps({**config, "suite_kind": legacy_kind}))
    ids = _ids(build_report(results, tmp_path / "report.html"))
    assert {"suite-my_suite", "leaderboard-my_suite", "curves-my_suite-ci"} <= ids
    page = (tmp_path / "report.html").read_text()
    assert ("My own suite" in page) == (facts is not None)


def test_declared_sections_decide_even_against_the_suite_name(tmp_path, run_writer):
    results = tmp_path / "results"
    writer = run_writer(results)
    facts = {**USER_FACTS, "title": "Curves only", "report_sections": ["learning_curves"]}
    for seed in range(2):
        writer.training_run("bert_mlm", "adam", seed, 0.4, metric="mlm_accuracy", target=0.3, facts=facts)
    ids = _ids(build_report(results, tmp_path / "report.html"))
    assert "curves-bert_mlm-ci" in ids and "leaderboard-bert_mlm" not in ids


def test_a_config_without_facts_falls_back_by_suite(synthetic, synthetic_results, synthetic_report):
    # the synthetic memory_overhead runs carry only "suite_kind": "experiment"
    memory = synthetic_results.runs[synthetic_results.runs["suite"] == "memory_overhead"]
    assert all(not f.declared and f.sections == ("memory",) for f in memory["suite_facts"])
    assert {"memory", "step-time-ratio"} <= _ids(synthetic_report)
    assert "predate recorded suite facts" in synthetic_report.read_text()


# ---- the momentum-rescue verdict has one home: findings.momentum_rescue ---------------------------

@pytest.mark.parametrize("per_problem, expected", [
    ({"skewed_noise": ["lower", "lower"]}, (True, ["skewed_noise"])),
    ({"skewed_noise": ["lower", "unclear"]}, (None, ["skewed_noise"])),
    ({"skewed_noise": ["lower", "higher"]}, (False, ["skewed_noise"])),
    ({"skewed_noise": []}, (None, ["skewed_noise"])),
    ({"skewed_noise": ["lower"], "mlp": ["higher"]}, (True, ["skewed_noise"])),  # the paper's example decides
    ({"mlp": ["lower"], "nonconvex": ["lower"]}, (True, ["mlp", "nonconvex"])),
    ({"mlp": ["lower"], "nonconvex": ["unclear"]}, (None, ["mlp", "nonconvex"])),
])
def test_momentum_rescue_rule(per_problem, expected):
    assert findings.momentum_rescue(per_problem) == expected


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
