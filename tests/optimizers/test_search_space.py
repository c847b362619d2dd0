"""Search spaces: the distributions, reproducible quasi-random trials, the builtins' spaces, plugins."""

from __future__ import annotations

import pytest
import torch

from nightbench.optimizers import get_spec, names, register_optimizer
from nightbench.optimizers.search_space import (FALLBACK_SPACE, WARMUP_FRACTION, AroundDefault, Choice, LogUniform,
                                                OneMinusLogUniform, SearchSpaceError, Uniform, bind, draw, trials)
from nightbench.suites.catalog import get_suite
from nightbench.suites.config import resolve_config
from nightbench.suites.leaderboard.search import warmup_fraction

PAPER_SET = ("sgd", "adam", "lars", "lamb", "nsgd", "nsgd_momentum", "nigt", "nigt_adaptive")
SPACE = {"lr": LogUniform(1e-4, 1e-1), "beta": OneMinusLogUniform(0.5, 0.99), "wd": Uniform(0.0, 0.1),
         "kind": Choice("a", "b", "c")}


def test_distributions_map_the_unit_interval_onto_their_range():
    assert LogUniform(1e-4, 1e-2).value(0.0) == pytest.approx(1e-4)
    assert LogUniform(1e-4, 1e-2).value(0.5) == pytest.approx(1e-3)
    assert Uniform(0.0, 0.25).value(0.5) == pytest.approx(0.125)
    assert OneMinusLogUniform(0.9, 0.999).value(0.5) == pytest.approx(0.99)  # 1 - beta from 0.1 to 0.001
    assert OneMinusLogUniform(0.9, 0.999).value(0.0) == pytest.approx(0.9)
    assert [Choice("a", "b").value(u) for u in (0.0, 0.49, 0.5, 0.999)] == ["a", "a", "b", "b"]
    assert AroundDefault(10).around(0.05, "lr") == LogUniform(0.005, 0.5)


def test_draws_are_reproducible_inside_the_space_and_seed_dependent():
    first, again, other = draw(SPACE, 8, seed=0), draw(SPACE, 8, seed=0), draw(SPACE, 8, seed=1)
    assert first == again
    assert first != other
    for point in first + other:
        assert 1e-4 <= point["lr"] <= 1e-1 and 0.5 <= point["beta"] <= 0.99 and 0 <= point["wd"] <= 0.1
        assert point["kind"] in ("a", "b", "c")
    # quasi-random: 8 points cover the lr range's four quarters (in log scale)
    quarters = {min(int(LogUniform(1e-4, 1e-1).position(p["lr"]) * 4), 3) for p in first}
    assert quarters == {0, 1, 2, 3}


def test_trial_zero_is_the_default_and_the_budget_counts_it():
    planned = trials(SPACE, 3, seed=0)
    assert planned[0] == {} and len(planned) == 3
    assert planned[1:] == draw(SPACE, 2, seed=0)
    assert trials(SPACE, 1, seed=0) == [{}]
    with pytest.raises(SearchSpaceError, match="at least 1 trial"):
        trials(SPACE, 0, seed=0)


def test_bad_distributions_are_refused():
    for make in (lambda: LogUniform(0.0, 1.0), lambda: Uniform(1.0, 1.0), lambda: OneMinusLogUniform(0.5, 1.0),
                 lambda: AroundDefault(1.0), lambda: Choice()):
        with pytest.raises(SearchSpaceError):
            make()
    with pytest.raises(SearchSpaceError, match="positive"):
        bind({"lr": AroundDefault(10)}, {"lr": 0.0})


@pytest.mark.parametrize("optimizer", PAPER_SET)
def test_every_builtin_declares_lr_weight_decay_and_warmup(optimizer):
    spec = get_spec(optimizer)
    assert spec.search_space is not None
    assert {"lr", "weight_decay", WARMUP_FRACTION} <= set(spec.search_space)
    momentum_names = {"momentum", "beta", "beta1"} & {h.name for h in spec.hyperparameters}
    assert momentum_names <= set(spec.search_space)  # momentum or betas where the optimizer has them


@pytest.mark.parametrize("suite_name", ["bert_mlm", "resnet50_imagenet"])
@pytest.mark.parametrize("preset", ["small", "paper"])
@pytest.mark.parametrize("optimizer", PAPER_SET)
def test_the_suite_default_is_inside_the_space_and_not_at_its_edge(suite_name, preset, optimizer, monkeypatch):
    # the hand-picked default, around which the space is drawn (a shipped study's choice is a search
    # result and may lie anywhere inside the space: tests/suites/test_tuned_defaults.py checks those)
    monkeypatch.setattr("nightbench.suites.config.tuned_overrides", lambda suite, preset, optimizer: {})
    suite, spec = get_suite(suite_name), get_spec(optimizer)
    resolved = resolve_config(suite, preset, spec, {})
    bound = bind(spec.search_space, resolved.hyperparameters)
    defaults = {**resolved.hyperparameters, WARMUP_FRACTION: warmup_fraction(suite, resolved.suite_config)}
    for name, dist in bound.items():
        value = defaults[name]
        if name == "weight_decay" and value == 0:
            continue  # no decay by default: trial 0 keeps it, the log-uniform space searches positive decays
        position = dist.position(value)
        assert position is not None, f"{optimizer} on {suite_name}/{preset}: default {name}={value} outside {dist}"
        assert 0.1 <= position <= 0.9, f"{optimizer} on {suite_name}/{preset}: default {name}={value} at the edge"


def test_a_plugin_declares_its_own_space_and_one_without_gets_the_fallback(fresh_registry):
    @register_optimizer("space_plugin", search_space={"lr": LogUniform(1e-3, 1.0), "momentum": Uniform(0.0, 0.9)})
    class WithSpace(torch.optim.SGD):
        def __init__(self, params, lr=0.1, momentum=0.5):
            super().__init__(params, lr=lr, momentum=momentum)

    @register_optimizer("no_space_plugin")
    class WithoutSpace(torch.optim.SGD):
        def __init__(self, params, lr=0.1):
            super().__init__(params, lr=lr)

    assert "space_plugin" in names()
    assert dict(get_spec("space_plugin").tuning_space) == {"lr": LogUniform(1e-3, 1.0), "momentum": Uniform(0.0, 0.9)}
    assert get_spec("space_plugin").to_dict()["search_space_declared"] is True
    assert get_spec("no_space_plugin").tuning_space == FALLBACK_SPACE
    assert get_spec("no_space_plugin").to_dict()["search_space_declared"] is False
    assert get_spec("no_space_plugin").to_dict()["search_space"] == {"lr": "log-uniform [default / 10, default x 10]"}


def test_a_space_naming_an_unknown_hyperparameter_or_an_unaccepted_value_is_refused(fresh_registry):
    with pytest.raises(SearchSpaceError, match="'gamma', which is not one of its hyperparameters"):
        @register_optimizer("bad_space", search_space={"gamma": Uniform(0.0, 1.0)})
        class Bad(torch.optim.SGD):
            def __init__(self, params, lr=0.1):
                super().__init__(params, lr=lr)
    with pytest.raises(Exception, match="momentum"):
        @register_optimizer("bad_range", search_space={"momentum": Uniform(0.0, 1.5)})
        class BadRange(torch.optim.SGD):
            def __init__(self, params, lr=0.1, momentum=0.5):
                super().__init__(params, lr=lr, momentum=momentum)
