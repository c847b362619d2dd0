"""The recipes (schedules and per-optimizer defaults), through the suite: the epoch-based schedules'
milestones and warmups, and the per-optimizer defaults (the paper's, and valid for every optimizer)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nightbench.optimizers import get_spec, names
from nightbench.suites.config import resolve_config
from nightbench.suites.resnet50_imagenet import SUITE
from nightbench.suites.resnet50_imagenet.config import check_config
from nightbench.suites.tuned_defaults import tuned_overrides


IMAGENET_TRAIN_IMAGES = 1_281_167  # ILSVRC-2012 training set


def schedule_for(optimizer, preset, steps_per_epoch, **overrides):
    config = check_config({**SUITE.presets[preset], **overrides})
    return SUITE.schedule(optimizer, config, SimpleNamespace(steps_per_epoch=steps_per_epoch))


def test_paper_sgd_schedule_warms_up_five_epochs_then_divides_by_ten_at_30_60_80():
    spe = IMAGENET_TRAIN_IMAGES // 1024  # 1251 steps per epoch at batch 1024
    schedule = schedule_for("sgd", "paper", spe)
    assert schedule.warmup_steps == 5 * spe and schedule.total_steps == 90 * spe
    assert schedule.milestones == (30 * spe, 60 * spe, 80 * spe)
    m = schedule.multiplier
    assert m(0) == pytest.approx(1 / (5 * spe)) and m(5 * spe - 1) == pytest.approx(1.0)
    assert m(30 * spe - 1) == pytest.approx(1.0) and m(30 * spe) == pytest.approx(0.1)
    assert m(60 * spe) == pytest.approx(0.01) and m(80 * spe) == pytest.approx(0.001)


def test_small_sgd_schedule_is_the_paper_scaled_to_12_epochs():
    schedule = schedule_for("sgd", "small", 22)  # 1437 digits // 64
    assert schedule.warmup_steps == round(5 / 90 * 12 * 22)  # 5/90 of 12 epochs = 14.7 steps
    # 30/90, 60/90, 80/90 of 12 epochs = epochs 4, 8, 10.67
    assert schedule.milestones == (4 * 22, 8 * 22, round(80 / 90 * 12 * 22))
    assert schedule.total_steps == 12 * 22


def test_normalized_schedule_warms_up_then_decays_quadratically():
    spe = IMAGENET_TRAIN_IMAGES // 1024
    schedule = schedule_for("nigt", "paper", spe)
    total, warmup = 90 * spe, 5 * spe
    assert (schedule.kind, schedule.power, schedule.warmup_steps, schedule.total_steps) == ("poly", 2.0, warmup, total)
    assert schedule.multiplier(warmup - 1) == pytest.approx(1.0)
    assert schedule.multiplier(total // 2) == pytest.approx((1 - (total // 2) / total) ** 2)
    assert schedule.multiplier(total) == 0.0


def test_a_warmup_asked_for_lasts_at_least_one_step():
    assert schedule_for("nigt", "ci", 6).warmup_steps == 1  # 5/90 of 1.5 epochs = half a step
    assert schedule_for("nigt", "ci", 6, warmup_epochs=0.0).warmup_steps == 0


@pytest.mark.parametrize("preset", ["paper", "small", "ci"])
def test_every_registered_optimizer_has_valid_suite_defaults(preset):
    for name in names():
        defaults = SUITE.optimizer_defaults(name, dict(SUITE.presets[preset]))
        assert "lr" in defaults, name
        resolved = resolve_config(SUITE, preset, get_spec(name), {})  # every default key is accepted
        in_effect = {**defaults, **tuned_overrides(SUITE, preset, name)}  # a shipped study's choice wins
        assert resolved.hyperparameters["lr"] == in_effect["lr"], name


def test_paper_defaults_follow_the_paper():
    paper = dict(SUITE.presets["paper"])
    assert SUITE.optimizer_defaults("sgd", paper)["lr"] == pytest.approx(0.4)  # 0.1 x 1024 / 256
    assert SUITE.optimizer_defaults("sgd", paper)["momentum"] == 0.9
    nigt = SUITE.optimizer_defaults("nigt", paper)
    assert {k: nigt[k] for k in ("lr", "beta", "norm", "weight_norm_scaling", "policy.excluded_lr_multiplier")} == {
        "lr": 0.01, "beta": 0.9, "norm": "layer", "weight_norm_scaling": True,
        "policy.excluded_lr_multiplier": 1000.0}
    assert SUITE.optimizer_defaults("my_plugin_optimizer", paper) == {}


def test_weight_decay_is_settable():
    resolved = resolve_config(SUITE, "small", get_spec("nigt"), {"weight_decay": "3e-4"})
    assert resolved.hyperparameters["weight_decay"] == 3e-4
    # at ci, where no study has shipped, the hand-picked default is in effect
    assert resolve_config(SUITE, "ci", get_spec("sgd"), {}).hyperparameters["weight_decay"] == 1e-4
