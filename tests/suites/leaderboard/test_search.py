"""The budgeted search, planned: trials per optimizer, trial 0 the default, studies, the record, the seeds."""

from __future__ import annotations

import json

import pytest

from nightbench.optimizers.search_space import WARMUP_FRACTION
from nightbench.suites.outcomes import RunState
from nightbench.suites.leaderboard.planner import TUNING_SEED, BoardSettings, final_stage, reporting_seeds
from nightbench.suites.leaderboard.protocols import plan_searches, search_record


def settings(tmp_path, **kw):
    return BoardSettings.create(suites=["bert_mlm"], optimizers=["adam", "nigt"], preset="ci", tune=True,
                                results=str(tmp_path), **kw)


def test_each_optimizer_gets_budget_trials_in_its_own_space_with_trial_0_the_default(tmp_path):
    searches, untunable = plan_searches(settings(tmp_path, budget=3))
    assert untunable == [] and [s.optimizer for s in searches] == ["adam", "nigt"]
    for search in searches:
        assert len(search.trials) == 3 and len(search.runs) == 3
        default, *drawn = search.trials
        assert default.index == 0 and default.values == {} and default.run.request.overrides == {}
        assert all(t.run.request.seed == TUNING_SEED and t.run.request.protocol == "tuning" for t in search.trials)
        for trial in drawn:  # every drawn trial differs from the default in at least two hyperparameters
            changed = {k for k, v in trial.run.resolved.hyperparameters.items()
                       if v != default.run.resolved.hyperparameters[k]}
            assert len(changed) >= 2, changed
            # the warmup fraction becomes the suite's warmup key
            steps = trial.run.resolved.suite_config["steps"]
            assert trial.run.resolved.suite_config["warmup_steps"] == round(trial.values[WARMUP_FRACTION] * steps)
    adam, nigt = searches
    assert "beta2" in adam.space and "beta" in nigt.space  # each its own space


def test_planning_is_reproducible_and_studies_share_trial_0(tmp_path):
    first = plan_searches(settings(tmp_path, budget=3))[0]
    again = plan_searches(settings(tmp_path, budget=3))[0]
    assert [t.values for s in first for t in s.trials] == [t.values for s in again for t in s.trials]
    two = plan_searches(settings(tmp_path, budget=3, studies=2))[0][0]
    assert {t.study for t in two.trials} == {0, 1}
    assert two.study(0)[0].run.run_dir == two.study(1)[0].run.run_dir  # one default run serves both
    assert [t.values for t in two.study(0)[1:]] != [t.values for t in two.study(1)[1:]]
    assert len(two.runs) == 5


def test_a_plugin_without_a_space_is_searched_over_lr_alone(tmp_path, fresh_registry):
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import torch\nfrom nightbench.optimizers import register_optimizer\n"
        "@register_optimizer('search_test_plain_sgd')\n"
        "class Plain(torch.optim.SGD):\n"
        "    def __init__(self, params, lr=0.05, momentum=0.9):\n"
        "        super().__init__(params, lr=lr, momentum=momentum)\n")
    board = BoardSettings.create(suites=["bert_mlm"], optimizers=["search_test_plain_sgd"], preset="ci", tune=True,
                                 budget=4, results=str(tmp_path / "r"), optimizer_files=(str(plugin),))
    (search,), _ = plan_searches(board)
    assert not search.declared and set(search.space) == {"lr"}
    lrs = [t.run.resolved.hyperparameters["lr"] for t in search.trials]
    assert lrs[0] == 0.05 and all(0.005 <= lr <= 0.5 for lr in lrs)
    assert all(t.run.resolved.hyperparameters["momentum"] == 0.9 for t in search.trials)


def _finish(run, status, value):
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / "summary.json").write_text(json.dumps(
        {"status": status, "final_metrics": {"mlm_accuracy": value} if value is not None else {}}))


def test_the_record_holds_every_trial_and_chooses_the_median_studys_best(tmp_path):
    board = settings(tmp_path, budget=3, studies=3)
    search = plan_searches(board)[0][0]
    values = {0: [0.20, 0.30, 0.10], 1: [0.20, 0.50, None], 2: [0.20, 0.25, 0.40]}  # study bests 0.30, 0.50, 0.40
    for trial in search.trials:
        value = values[trial.study][trial.index]
        _finish(trial.run, "completed" if value is not None else "diverged", value)
    record = search_record(board, search)
    assert len(record["trials"]) == 9 and record["budget"] == 3 and record["studies"] == 3
    assert record["space_declared"] and "lr" in record["space"]
    assert [b["value"] for b in record["study_bests"]] == [0.30, 0.40, 0.50]
    assert record["chosen"]["study"] == 2 and record["chosen"]["value"] == 0.40  # the median study's best
    diverged = [t for t in record["trials"] if t["study"] == 1 and t["trial"] == 2][0]
    assert diverged["status"] == "diverged" and diverged["value"] is None
    # the chosen setting is what the final stage reruns, on seeds that exclude the tuning seed
    chosen = {(search.suite, search.optimizer): record["chosen"]["overrides"]}
    finals = final_stage(board, chosen, [])
    assert {p.request.seed for p in finals} == {0, 1, 2}
    assert all(p.resolved.hyperparameters["lr"] == search.study(2)[2].run.resolved.hyperparameters["lr"]
               for p in finals)


def test_a_failed_or_diverged_trial_never_wins_and_a_tie_goes_to_the_default(tmp_path):
    board = settings(tmp_path, budget=3)
    search = plan_searches(board)[0][0]
    for trial, (status, value) in zip(search.trials, [("completed", 0.3), ("failed", None), ("completed", 0.3)]):
        _finish(trial.run, status, value)
    assert search_record(board, search)["chosen"]["trial"] == 0


def test_reporting_seeds_never_include_the_tuning_seed():
    assert reporting_seeds(3) == [0, 1, 2]
    seeds = reporting_seeds(TUNING_SEED + 5)
    assert TUNING_SEED not in seeds and len(seeds) == TUNING_SEED + 5 and len(set(seeds)) == len(seeds)


@pytest.mark.parametrize("flags, message", [
    ({"budget": 3, "tune": False}, "--budget 3 applies only with --tune"),
    ({"studies": 2, "tune": False}, "--studies 2 applies only with --tune"),
    ({"budget": 0}, "--budget must be an integer >= 1"),
    ({"budget": 3, "tune_grid": "local"}, "use one or the other"),
])
def test_search_flags_are_checked(tmp_path, flags, message):
    kw = {"tune": True, **flags}
    with pytest.raises(Exception, match=message):
        BoardSettings.create(suites=["bert_mlm"], optimizers=["adam"], preset="ci", results=str(tmp_path), **kw)


class _RecordingExecutor:
    """Runs nothing: remembers what each stage submitted (every tuning trial is already finished)."""

    def __init__(self):
        self.submitted = {}

    def submit(self, plans, stage):
        self.submitted[stage] = list(plans)

    def wait(self, on_end):
        pass

    def status(self, plan):
        return RunState.PENDING

    def adopt(self, plans):
        pass

    def refused(self):
        return ()


@pytest.mark.parametrize("tuning_only", [False, True])
def test_tuning_only_records_every_choice_and_runs_no_final_seeds(tmp_path, tuning_only):
    from nightbench.suites.layout import tuning_record_path
    from nightbench.suites.leaderboard.protocols import run_tuning

    board = settings(tmp_path, budget=2, seeds=1, tuning_only=tuning_only)
    for search in plan_searches(board)[0]:
        for trial in search.trials:
            _finish(trial.run, "completed", 0.1 + 0.1 * trial.index)
    executor, said = _RecordingExecutor(), []
    run_tuning(board, executor, wait=True, echo=said.append)
    for optimizer in ("adam", "nigt"):
        record = json.loads(tuning_record_path(tmp_path, "ci", "bert_mlm", optimizer).read_text())
        assert record["chosen"]["trial"] == 1
    assert "tuning" not in executor.submitted  # every trial had finished
    assert ("final" in executor.submitted) is not tuning_only
    if not tuning_only:
        assert len(executor.submitted["final"]) == 2  # one reporting seed per optimizer


def test_tuning_only_needs_tune(tmp_path):
    with pytest.raises(Exception, match="--tuning-only applies only with --tune"):
        BoardSettings.create(suites=["bert_mlm"], optimizers=["adam"], preset="ci", results=str(tmp_path),
                             tuning_only=True)
