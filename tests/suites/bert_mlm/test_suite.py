"""The suite object: presets, per-optimizer defaults that the engine accepts, the schedule, the corpus."""

from __future__ import annotations

import json
import math

import pytest

from nightbench.optimizers import PAPER_RECIPE_HYPERPARAMETERS, PAPER_RECIPE_POLICY, get_spec, names
from nightbench.suites.base import PRESET_NAMES
from nightbench.suites.bert_mlm import SUITE
from nightbench.suites.config import resolve_config
from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.tuned_defaults import tuned_overrides


def test_presets_and_targets():
    assert set(SUITE.presets) == set(PRESET_NAMES)
    paper = SUITE.presets["paper"]
    assert (paper["num_layers"], paper["hidden_size"], paper["num_heads"], paper["intermediate_size"]) == (12, 768, 12, 3072)
    assert (paper["seq_len"], paper["global_batch_size"], paper["steps"], paper["mask_probability"]) == (512, 256, 500_000, 0.15)
    assert SUITE.target_values["paper"] == 0.70 and SUITE.target_metric == "mlm_accuracy" and SUITE.higher_is_better


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("optimizer", names())
def test_every_builtin_optimizer_has_defaults_the_engine_accepts(preset, optimizer):
    resolved = resolve_config(SUITE, preset, get_spec(optimizer), {})
    defaults = SUITE.optimizer_defaults(optimizer, resolved.suite_config)
    assert "lr" in defaults and defaults["lr"] > 0
    in_effect = {**defaults, **tuned_overrides(SUITE, preset, optimizer)}  # a shipped study's choice wins
    assert resolved.hyperparameters["lr"] == in_effect["lr"]


def test_paper_defaults_are_the_papers():
    paper = SUITE.presets["paper"]
    adam = SUITE.optimizer_defaults("adam", paper)
    assert (adam["lr"], adam["beta1"], adam["beta2"]) == (1e-4, 0.9, 0.999)
    nigt = SUITE.optimizer_defaults("nigt", paper)
    recipe = {**PAPER_RECIPE_HYPERPARAMETERS, "policy.excluded_lr_multiplier": PAPER_RECIPE_POLICY.excluded_lr_multiplier}
    assert nigt == {"lr": 1e-3, "beta": 0.9, **recipe}


def test_unknown_plugin_optimizers_get_no_opinion():
    assert SUITE.optimizer_defaults("my_plugin_optimizer", SUITE.presets["small"]) == {}


def test_schedule_is_linear_warmup_then_linear_decay(ci_task):
    schedule = SUITE.schedule("nigt", {**SUITE.presets["ci"], "warmup_steps": 2}, ci_task)
    total = ci_task.total_steps
    assert schedule.multiplier(0) == pytest.approx(0.5) and schedule.multiplier(1) == pytest.approx(1.0)
    assert schedule.multiplier(total - 1) == pytest.approx(1 / total)
    assert (schedule.kind, schedule.power, schedule.total_steps) == ("poly", 1.0, total)


@pytest.mark.parametrize("optimizer", names())
def test_ci_preset_completes_with_finite_metrics(results_root, optimizer):
    outcome = execute_run(RunRequest(suite="bert_mlm", optimizer=optimizer, preset="ci", seed=0,
                                     results_root=str(results_root), progress=False))
    assert outcome.status == "completed", outcome.summary.get("error")
    final = outcome.summary["final_metrics"]
    assert 0.0 <= final["mlm_accuracy"] <= 1.0
    assert math.isfinite(final["mlm_loss"]) and final["eval_masked_tokens"] > 0
    records = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) for r in train)
    assert 0.0 <= outcome.summary["data_wait_fraction"] < 1.0
