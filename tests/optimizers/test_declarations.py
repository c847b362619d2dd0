"""One home per fact: defaults in the signatures, one validation path, the paper's recipe defined once,
no import cycles inside the package, and the input errors under one base class."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch

from nightbench.optimizers import (
    PAPER_RECIPE_HYPERPARAMETERS,
    PAPER_RECIPE_POLICY,
    PAPER_RECIPE_SETTINGS,
    HyperparameterError,
    InputError,
    PluginError,
    UnknownOptimizerError,
    create,
    get_spec,
)
from nightbench.optimizers import lamb, lars, nigt, nigt_adaptive, nsgd
from nightbench.optimizers.hyperparams import UNSET, Hyperparameter, lr_param, with_signature_defaults

PACKAGE = Path(nsgd.__file__).parent
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


def test_the_paper_recipe_has_one_home():
    from nightbench.suites.bert_mlm import presets as bert_presets
    from nightbench.suites.resnet50_imagenet import recipes as resnet_recipes

    assert bert_presets.PAPER_RECIPE is PAPER_RECIPE_SETTINGS
    assert resnet_recipes.PAPER_RECIPE is PAPER_RECIPE_SETTINGS
    assert PAPER_RECIPE_SETTINGS == {**PAPER_RECIPE_HYPERPARAMETERS,
                                     "policy.excluded_lr_multiplier": PAPER_RECIPE_POLICY.excluded_lr_multiplier}


def _imports_inside_the_package(path: Path) -> set[str]:
    """Sibling modules a module imports (relative imports, at any depth of the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_the_package_modules_import_each_other_without_cycles():
    graph = {p.stem: _imports_inside_the_package(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert "registry" not in graph["timm_bridge"] and "timm_bridge" in graph["registry"]
    visiting, done = set(), set()

    def visit(module: str, path: tuple) -> None:
        assert module not in visiting, f"import cycle: {' -> '.join(path + (module,))}"
        if module in done or module not in graph:
            return
        visiting.add(module)
        for target in graph[module]:
            visit(target, path + (module,))
        visiting.discard(module)
        done.add(module)

    for module in graph:
        visit(module, ())


def test_bad_input_errors_share_the_input_error_base_and_keep_their_old_bases():
    assert issubclass(HyperparameterError, InputError) and issubclass(HyperparameterError, ValueError)
    assert issubclass(UnknownOptimizerError, InputError) and issubclass(UnknownOptimizerError, KeyError)
    assert issubclass(PluginError, InputError) and issubclass(PluginError, RuntimeError)
    with pytest.raises(InputError, match="Did you mean 'lars'"):
        create("lasr", torch.nn.Linear(2, 2))
    assert str(UnknownOptimizerError("plain message")) == "plain message"  # not KeyError's quoted repr
