"""Hyperparameter declarations: coercion, ranges, messages that name the parameter and the range."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nightbench.optimizers import Hyperparameter, HyperparameterError, get_spec, names
from nightbench.optimizers.hyperparams import beta_param, infer_from_signature, lr_param, resolve


def test_numbers_are_coerced_and_checked_against_the_range():
    lr = lr_param(0.1)
    assert lr.validate("0.5") == 0.5 and isinstance(lr.validate(1), float)
    assert lr.validate(np.float32(0.25)) == 0.25
    assert lr.validate(torch.tensor(0.75)) == 0.75
    assert lr.validate(0.0) == 0.0  # closed at 0
    for bad in (-1e-9, "fast", None, True, float("nan"), [0.1]):
        with pytest.raises(HyperparameterError, match=r"'lr': expected a number in \[0, inf\]"):
            lr.validate(bad)


def test_half_open_ranges_include_the_low_end_and_exclude_the_high_end():
    beta = beta_param("beta1", 0.9, "decay")
    assert beta.validate(0.0) == 0.0
    assert beta.validate(0.999999) == 0.999999
    for bad in (1.0, 1.5, -0.01):
        with pytest.raises(HyperparameterError, match=r"'beta1': expected a number in \[0, 1\)"):
            beta.validate(bad)
    open_low = Hyperparameter("trust", 1e-3, float, low=0.0, low_open=True)
    with pytest.raises(HyperparameterError, match=r"\(0, inf\]"):
        open_low.validate(0.0)


def test_integers_refuse_fractions_and_booleans_parse_common_spellings():
    steps = Hyperparameter("steps", 3, int, low=1)
    assert steps.validate("4") == 4 and steps.validate(5.0) == 5
    with pytest.raises(HyperparameterError, match=r"'steps'.*an integer in \[1, inf\]"):
        steps.validate(2.5)
    with pytest.raises(HyperparameterError, match="'steps'"):
        steps.validate(0)
    flag = Hyperparameter("nesterov", False, bool)
    assert [flag.validate(v) for v in (True, "true", "YES", "1", "no", "0", False)] == [
        True, True, True, True, False, False, False]
    for bad in ("maybe", 1, 0.0, None):
        with pytest.raises(HyperparameterError, match="'nesterov': expected true or false"):
            flag.validate(bad)


def test_strings_with_choices_and_tuples_of_numbers():
    norm = Hyperparameter("norm", "layer", str, choices=("global", "layer"))
    assert norm.validate("global") == "global"
    with pytest.raises(HyperparameterError, match="'norm': expected one of 'global', 'layer'"):
        norm.validate("tensor")
    with pytest.raises(HyperparameterError, match="'norm'"):
        norm.validate(3)
    betas = Hyperparameter("betas", (0.9, 0.999), tuple, low=0.0, high=1.0, high_open=True, length=2)
    assert betas.validate("0.8, 0.99") == (0.8, 0.99)
    assert betas.validate([0.5, 0.5]) == (0.5, 0.5)
    for bad in ((0.9,), (0.9, 1.0), "0.9,x", 0.9):
        with pytest.raises(HyperparameterError, match=r"'betas': expected 2 numbers each in \[0, 1\)"):
            betas.validate(bad)


def test_resolve_fills_defaults_and_rejects_unknown_names_listing_the_accepted():
    declared = (lr_param(0.1), beta_param("beta", 0.9, ""))
    assert resolve(declared, {}, "opt") == {"lr": 0.1, "beta": 0.9}
    assert resolve(declared, {"beta": "0.5"}, "opt") == {"lr": 0.1, "beta": 0.5}
    with pytest.raises(HyperparameterError, match="'opt' has no hyperparameter 'momentum', 'x'; accepted: beta, lr"):
        resolve(declared, {"momentum": 0.9, "x": 1}, "opt")
    assert issubclass(HyperparameterError, ValueError)


def test_inference_from_a_signature_reads_types_and_safe_ranges():
    def factory(params, lr=1, momentum=0.9, nesterov=False, steps=5, betas=(0.9, 0.99), mode="a", *args, **kwargs):
        return None

    declared = {h.name: h for h in infer_from_signature(factory)}
    assert list(declared) == ["lr", "momentum", "nesterov", "steps", "betas", "mode"]
    assert declared["lr"].kind is float and declared["lr"].default == 1.0  # int default, float kind
    assert declared["steps"].kind is int and declared["nesterov"].kind is bool
    with pytest.raises(HyperparameterError, match="'lr'"):
        declared["lr"].validate(-1)
    with pytest.raises(HyperparameterError, match="'momentum'"):
        declared["momentum"].validate(1.0)
    with pytest.raises(HyperparameterError, match="'betas'"):
        declared["betas"].validate((0.5, 1.2))
    assert declared["steps"].validate(-3) == -3  # no range known for other names

    def no_default(params, lr):
        return None

    with pytest.raises(HyperparameterError, match="cannot infer hyperparameter 'lr'.*no default"):
        infer_from_signature(no_default)


def test_every_builtin_declares_valid_defaults_and_json_friendly_metadata():
    for name in names():
        spec = get_spec(name)
        for h in spec.hyperparameters:
            assert h.validate(h.default) == h.default, (name, h.name)
            d = h.to_dict()
            assert d["name"] == h.name and d["accepted"]
            assert not (isinstance(h.default, float) and math.isinf(h.default)), (name, h.name)
        assert "lr" in spec.defaults
