"""Tuned defaults that ship: a committed study's choice becomes the preset's default, with its source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nightbench.suites import tuned_defaults
from nightbench.suites.plan import RunRequest, plan_run
from nightbench.suites.tuned_defaults import HAND_PICKED, compact_record, ship

SEARCH_RECORD = {
    "protocol": "search", "suite": "bert_mlm", "preset": "ci", "optimizer": "adam", "metric": "mlm_accuracy",
    "higher_is_better": True, "tuning_seed": 1000, "budget": 6, "studies": 1, "space": {"lr": "..."},
    "space_declared": True, "space_dropped": [], "study_bests": [{"study": 0, "trial": 4, "value": 0.12}],
    "trials": [{"study": 0, "trial": 4, "values": {"lr": 0.002, "warmup_fraction": 0.05},
                "overrides": {"lr": 0.002, "beta2": 0.99, "warmup_steps": 0}, "hyperparameters": {"lr": 0.002},
                "run_dir": "bert_mlm/ci/adam/tuning-x", "status": "completed", "value": 0.12}],
    "chosen": {"study": 0, "trial": 4, "values": {"lr": 0.002, "warmup_fraction": 0.05},
               "overrides": {"lr": 0.002, "beta2": 0.99, "warmup_steps": 0}, "value": 0.12},
}
PROVENANCE = {"study": "test-study", "date": "2026-12-06", "commit": "abc1234", "machine": "2-core CPU"}


@pytest.fixture
def suite_folder(tmp_path, monkeypatch):
    """Every suite's tuned/ folder lives under tmp_path for the test."""
    monkeypatch.setattr(tuned_defaults, "_suite_folder", lambda suite: tmp_path / "suites" / suite.name)
    return tmp_path / "suites"


def _ship(folder, record=SEARCH_RECORD):
    path = folder / record["suite"] / "tuned" / record["preset"] / f"{record['optimizer']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(compact_record(record, PROVENANCE)))
    return path


def test_without_a_shipped_study_the_defaults_are_hand_picked(suite_folder, tmp_path):
    plan = plan_run(RunRequest(suite="bert_mlm", optimizer="adam", preset="ci", results_root=str(tmp_path)))
    assert plan.config["defaults_source"] == HAND_PICKED
    assert plan.resolved.hyperparameters["lr"] == 1e-3


def test_a_shipped_study_sets_the_defaults_and_names_its_source(suite_folder, tmp_path):
    _ship(suite_folder)
    plan = plan_run(RunRequest(suite="bert_mlm", optimizer="adam", preset="ci", results_root=str(tmp_path)))
    assert plan.resolved.hyperparameters["lr"] == 0.002 and plan.resolved.hyperparameters["beta2"] == 0.99
    assert plan.resolved.suite_config["warmup_steps"] == 0  # the warmup, as the suite's own key
    assert plan.config["defaults_source"] == {"tuned_by": "test-study", "budget": 6, "date": "2026-12-06",
                                              "commit": "abc1234", "machine": "2-core CPU"}
    # a user's --set still wins; other optimizers and presets keep theirs
    mine = plan_run(RunRequest(suite="bert_mlm", optimizer="adam", preset="ci", overrides={"lr": "0.01"},
                               results_root=str(tmp_path)))
    assert mine.resolved.hyperparameters["lr"] == 0.01 and mine.resolved.hyperparameters["beta2"] == 0.99
    other = plan_run(RunRequest(suite="bert_mlm", optimizer="nigt", preset="ci", results_root=str(tmp_path)))
    assert other.config["defaults_source"] == HAND_PICKED


def test_the_shipped_record_is_compact(suite_folder):
    shipped = json.loads(_ship(suite_folder).read_text())
    assert shipped["provenance"] == PROVENANCE and shipped["chosen"] == SEARCH_RECORD["chosen"]
    assert "run_dir" not in shipped["trials"][0] and "hyperparameters" not in shipped["trials"][0]
    assert shipped["trials"][0]["values"] == {"lr": 0.002, "warmup_fraction": 0.05}


def test_ship_writes_every_finished_search_of_a_preset(suite_folder, tmp_path):
    results = tmp_path / "results"
    for optimizer, chosen in (("adam", SEARCH_RECORD["chosen"]), ("nigt", None)):
        path = results / "_tuning" / "ci" / "bert_mlm" / f"{optimizer}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**SEARCH_RECORD, "optimizer": optimizer, "chosen": chosen}))
    written = ship(results, "ci", "test-study", "2-core CPU")
    assert [p.name for p in written] == ["adam.json"]  # nigt's search chose nothing: nothing ships
    assert json.loads(written[0].read_text())["provenance"]["study"] == "test-study"


def test_ship_names_the_commit_and_day_the_trials_ran_at_not_the_shipping_checkout(suite_folder, tmp_path):
    results = tmp_path / "results"
    path = results / "_tuning" / "ci" / "bert_mlm" / "adam.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(SEARCH_RECORD))
    run_dir = results / SEARCH_RECORD["trials"][0]["run_dir"]
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"environment": {"git_commit": "b24d51c856f6ba3fe535"}}))
    (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "finished": "2026-11-30T23:59:00+00:00"}))
    provenance = json.loads(ship(results, "ci", "test-study", "2-core CPU")[0].read_text())["provenance"]
    assert provenance == {"study": "test-study", "date": "2026-11-30", "commit": "b24d51c856f6",
                          "machine": "2-core CPU"}


SHIPPED = sorted(Path(tuned_defaults.__file__).parent.glob(f"*/{tuned_defaults.TUNED_DIR}/*/*.json"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: "/".join(p.parts[-4:]))
def test_every_shipped_study_chose_its_best_trial_and_sets_those_defaults(path):
    from nightbench.optimizers import get_spec
    from nightbench.suites.catalog import get_suite
    from nightbench.suites.config import resolve_config

    record = json.loads(path.read_text())
    suite_name, preset, optimizer = path.parts[-4], path.parts[-2], path.stem
    assert (record["suite"], record["preset"], record["optimizer"]) == (suite_name, preset, optimizer)
    trials = record["trials"]
    assert len(trials) == record["budget"] * record["studies"] and trials[0]["overrides"] == {}  # trial 0: the default
    sign = 1 if record["higher_is_better"] else -1
    finished = [t for t in trials if t["value"] is not None]
    best = max(finished, key=lambda t: (sign * t["value"], -t["trial"]))  # ties go to the earlier trial
    assert record["studies"] > 1 or record["chosen"]["trial"] == best["trial"]
    assert set(record["provenance"]) == {"study", "date", "commit", "machine"} and all(record["provenance"].values())
    resolved = resolve_config(get_suite(suite_name), preset, get_spec(optimizer), {})
    for key, value in record["chosen"]["overrides"].items():
        got = resolved.hyperparameters.get(key, resolved.suite_config.get(key))
        assert got == pytest.approx(value), (key, got, value)
