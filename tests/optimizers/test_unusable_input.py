"""Values and plugins that cannot be used are refused up front, with a message (issue 13, classes 7 and 8).

Hyperparameters: non-finite values and magnitudes no optimizer can use (`lr=1e308`) fail validation,
naming the accepted range. Plugins: a file that exits at import, or whose factory does not build a
torch.optim.Optimizer, is reported by name as a PluginError when it loads (the command line: exit 2),
and registers nothing.
"""

from __future__ import annotations

import textwrap

import pytest
import torch

from nightbench.optimizers import (
    HyperparameterError,
    PluginError,
    create,
    get_spec,
    load_optimizer_file,
    names,
    plugin_errors,
    registry,
)
from nightbench.optimizers.hyperparams import MAX_MAGNITUDE, Hyperparameter, beta_param, lr_param


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


PLUGIN_HEADER = """
import sys
import torch
from nightbench.optimizers import register_optimizer
"""
BAD_PLUGINS = {  # file body -> what the error must say, besides the file's name
    "exits_at_import": ("sys.exit(3)\n", r"sys.exit\(3\)"),
    "exits_with_a_message": ("sys.exit('bye')\n", r"sys.exit\('bye'\)"),
    "factory_returns_none": (textwrap.dedent("""
        @register_optimizer("test_returns_none")
        def make(param_groups, lr=0.1):
            return None
    """), "'test_returns_none'.*NoneType, not a torch.optim.Optimizer"),
    "factory_returns_a_module": (textwrap.dedent("""
        @register_optimizer("test_returns_module")
        def make(param_groups, lr=0.1):
            return torch.nn.Linear(2, 2)
    """), "'test_returns_module'.*Linear, not a torch.optim.Optimizer"),
    "class_is_not_an_optimizer": (textwrap.dedent("""
        @register_optimizer("test_plain_class")
        class Plain:
            def __init__(self, params, lr=0.1):
                self.params = params
    """), "'test_plain_class'.*Plain, not a torch.optim.Optimizer"),
    "factory_raises_at_its_defaults": (textwrap.dedent("""
        @register_optimizer("test_raises")
        def make(param_groups, lr=0.1):
            raise ValueError("lr must be given explicitly")
    """), "'test_raises' cannot be built at its default hyperparameters.*lr must be given"),
}


@pytest.mark.parametrize("case", list(BAD_PLUGINS))
def test_a_bad_plugin_file_is_reported_by_name_and_registers_nothing(tmp_path, fresh_registry, case):
    body, says = BAD_PLUGINS[case]
    path = tmp_path / f"{case}.py"
    path.write_text(PLUGIN_HEADER + body)
    before = set(names())
    with pytest.raises(PluginError, match=rf"{case}\.py.*{says}"):
        load_optimizer_file(path)
    assert set(names()) == before  # nothing half-registered
    assert any(case in source for source in plugin_errors())


def test_the_command_line_exits_2_not_the_plugins_status(tmp_path, fresh_registry, capsys):
    from nightbench.suites import cli

    path = tmp_path / "exits_at_import.py"
    path.write_text(PLUGIN_HEADER + BAD_PLUGINS["exits_at_import"][0])
    assert cli.main(["list", "optimizers", "--optimizer-file", str(path)]) == 2
    assert "exits_at_import.py" in capsys.readouterr().err


def test_a_good_plugin_is_probed_and_registered(tmp_path, fresh_registry):
    path = tmp_path / "good.py"
    path.write_text(PLUGIN_HEADER + textwrap.dedent("""
        @register_optimizer("test_probed_sgd")
        def make(param_groups, lr=0.1):
            return torch.optim.SGD(param_groups, lr=lr)
    """))
    assert load_optimizer_file(path) == ["test_probed_sgd"]
    assert registry.get_spec("test_probed_sgd").source.endswith("good.py")
