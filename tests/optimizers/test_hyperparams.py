"""Hyperparameter declarations: coercion, ranges, messages that name the parameter and the range.

Also: defaults live in the signatures only, one validation path (resolve, direct construction, param
groups), and values no optimizer can use (non-finite, `lr=1e308`) are refused naming the range.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

from nightbench.optimizers import Hyperparameter, HyperparameterError, get_spec, names
from nightbench.optimizers import InputError
from nightbench.optimizers import create
from nightbench.optimizers import lamb, lars, nigt, nigt_adaptive, nsgd
from nightbench.optimizers.hyperparams import MAX_MAGNITUDE
from nightbench.optimizers.hyperparams import UNSET, with_signature_defaults
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


DECLARATIONS = {
    "nsgd": nsgd.NSGD_HYPERPARAMETERS, "nsgd_momentum": nsgd.NSGD_MOMENTUM_HYPERPARAMETERS,
    "nigt": nigt.NIGT_HYPERPARAMETERS, "nigt_adaptive": nigt_adaptive.NIGT_ADAPTIVE_HYPERPARAMETERS,
    "lars": lars.HYPERPARAMETERS, "lamb": lamb.HYPERPARAMETERS,
}


@pytest.mark.parametrize("name", list(DECLARATIONS) + ["sgd", "adam"])
def test_defaults_live_in_the_signature_only(name):
    spec = get_spec(name)
    factory = spec.factory.__init__ if inspect.isclass(spec.factory) else spec.factory
    signature = inspect.signature(factory).parameters
    for h in spec.hyperparameters:
        assert signature[h.name].default == h.default, (name, h.name)
    for h in DECLARATIONS.get(name, ()):
        assert h.default is UNSET, f"{name}: '{h.name}' declares a default; it belongs in the signature"


def test_a_declaration_that_disagrees_with_the_signature_is_refused():
    def factory(params, lr=0.1, beta=0.5):
        return None

    assert with_signature_defaults(factory, [lr_param()])[0].default == 0.1
    with pytest.raises(HyperparameterError, match="two defaults"):
        with_signature_defaults(factory, [lr_param(0.2)])
    with pytest.raises(HyperparameterError, match="does not take it"):
        with_signature_defaults(factory, [Hyperparameter("gamma", kind=float)])

    def no_default(params, lr):
        return None

    with pytest.raises(HyperparameterError, match="no default"):
        with_signature_defaults(no_default, [lr_param()])


@pytest.mark.parametrize("name,values,named", [
    ("lamb", {"phi": "clamp", "phi_min": 2.0, "phi_max": 1.0}, "phi_min"),
    ("sgd", {"nesterov": True, "momentum": 0.0}, "nesterov"),
])
def test_constraints_between_values_fail_at_resolve_before_anything_is_built(name, values, named):
    """The run engine resolves hyperparameters before it writes anything: constraints must fail there."""
    with pytest.raises(HyperparameterError, match=f"'{name}'.*{named}"):
        get_spec(name).resolve(values)
    get_spec(name).resolve({**values, "phi_min": 0.5} if name == "lamb" else {**values, "momentum": 0.5})


def test_direct_construction_and_param_groups_use_the_same_validation():
    params = [torch.nn.Parameter(torch.zeros(2, 2))]
    with pytest.raises(HyperparameterError, match="phi_min"):
        lamb.Lamb(params, phi_min=3.0, phi_max=1.0)
    optimizer = lars.Lars(params)
    with pytest.raises(HyperparameterError, match="'momentum'"):
        optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(3))], "momentum": 1.5})
    with pytest.raises(InputError, match="foreach"):
        nigt.NIGT(params, foreach="sometimes")


UNUSABLE = [  # optimizer, hyperparameter, value (as --set gives it, or as Python passes it)
    ("sgd", "lr", "inf"),
    ("sgd", "lr", float("inf")),
    ("nigt", "lr", "1e308"),
    ("nigt", "lr", 1e308),
    ("lamb", "lr", "-inf"),
    ("lars", "weight_decay", "1e7"),
    ("adam", "eps", 1e300),
    ("nigt_adaptive", "g", "inf"),
    ("lamb", "phi_max", "nan"),
    ("nsgd", "lr", 2 * MAX_MAGNITUDE),
]


@pytest.mark.parametrize("name,key,value", UNUSABLE)
def test_non_finite_and_unusable_magnitudes_are_refused_naming_the_range(name, key, value):
    with pytest.raises(HyperparameterError, match=rf"'{key}': expected .*finite, and at most 1e\+06 in magnitude"):
        get_spec(name).resolve({key: value})
    with pytest.raises(HyperparameterError, match=f"'{key}'"):
        create(name, torch.nn.Linear(2, 2), **{key: value})


def test_large_but_usable_values_and_explicit_bounds_still_pass():
    assert get_spec("sgd").resolve({"lr": MAX_MAGNITUDE})["lr"] == MAX_MAGNITUDE
    assert get_spec("nigt_adaptive").resolve({"lr": "10"})["lr"] == 10.0
    wide = Hyperparameter("scale", 1.0, float, low=0.0, high=1e9)  # an explicit bound beyond the cap holds
    assert wide.validate(5e8) == 5e8
    with pytest.raises(HyperparameterError, match=r"\[0, 1e\+09\] \(finite\)"):
        wide.validate(float("inf"))
    assert beta_param("beta", 0.9).validate("0.5") == 0.5
    assert "finite" in lr_param(0.1).accepted() and "[0, inf]" in lr_param(0.1).accepted()
