"""Suite facts: the sections a suite gets in the report are the ones it declared; a config without facts falls back by suite."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from nightbench.reports import build_report


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
