"""The optimizer sets (a spec's `family`), `expand_names`, the recorded implementation, and the probe's
eval()/train() check for optimizers that declare needs_eval_swap."""

from __future__ import annotations

import contextlib
import types

import pytest
import torch

from nightbench.optimizers import create, expand_names, get_spec, load_optimizer_file, specs
from nightbench.optimizers.registry import PluginError, register_optimizer
from nightbench.suites.leaderboard.planner import BoardSettings
from nightbench.suites.trainer import Trainer


PAPER_SET = {"sgd", "adam", "lars", "lamb", "nsgd", "nsgd_momentum", "nigt", "nigt_adaptive"}
MODERN_SET = {"muon", "lion", "signum", "adamw_schedulefree", "adafactor", "soap"}


def test_every_builtin_belongs_to_the_paper_or_the_modern_set():
    builtins = {s.name: s.family for s in specs() if s.source == "builtin"}
    assert {n for n, f in builtins.items() if f == "paper"} == PAPER_SET
    assert {n for n, f in builtins.items() if f == "modern"} == MODERN_SET
    assert set(builtins) == PAPER_SET | MODERN_SET


def test_expand_names():
    assert set(expand_names(["paper"])) == PAPER_SET
    assert expand_names(["modern", "nigt"])[-1] == "nigt" and set(expand_names(["modern"])) == MODERN_SET
    assert set(expand_names(["all"])) >= PAPER_SET | MODERN_SET
    assert expand_names(["nigt", "timm:adamw", "nosuch"]) == ["nigt", "timm:adamw", "nosuch"]  # get_spec judges


def test_the_default_board_is_the_paper_set_and_sets_are_accepted():
    assert set(BoardSettings.create(suites=["bert_mlm"], preset="ci").optimizers) == PAPER_SET
    assert set(BoardSettings.create(suites=["bert_mlm"], optimizers=["modern"], preset="ci").optimizers) == MODERN_SET


def test_plugins_are_their_own_set(tmp_path, fresh_registry):
    path = tmp_path / "plug.py"
    path.write_text("import torch\nfrom nightbench.optimizers import register_optimizer\n"
                    "@register_optimizer('nbtest_plugin_sgd')\nclass P(torch.optim.SGD):\n"
                    "    def __init__(self, params, lr=0.1):\n        super().__init__(params, lr=lr)\n")
    load_optimizer_file(path)
    assert expand_names(["plugin"]) == ["nbtest_plugin_sgd"]
    assert get_spec("nbtest_plugin_sgd").to_dict()["implementation"] == {"package": f"file {path.resolve()}",
                                                                          "version": "unknown"}


@pytest.mark.parametrize("name,family", [("paper", "paper"), ("x", "classic")])
def test_set_names_and_unknown_families_are_refused(name, family):
    with pytest.raises(ValueError, match="optimizer set|invalid family"):
        register_optimizer(name, family=family)


def test_the_plugin_probe_requires_eval_and_train_of_a_swapping_optimizer(tmp_path, fresh_registry):
    path = tmp_path / "swapless.py"
    path.write_text("import torch\nfrom nightbench.optimizers import register_optimizer\n"
                    "@register_optimizer('nbtest_swapless', needs_eval_swap=True)\nclass S(torch.optim.SGD):\n"
                    "    def __init__(self, params, lr=0.1):\n        super().__init__(params, lr=lr)\n")
    with pytest.raises(PluginError, match=r"declares needs_eval_swap but S has no eval\(\) and no train\(\)"):
        load_optimizer_file(path)


@pytest.mark.parametrize("name,package", [("sgd", "torch"), ("muon", "torch"), ("adafactor", "torch"),
                                          ("adamw_schedulefree", "schedulefree"), ("nigt", "nightbench"),
                                          ("lion", "nightbench"), ("timm:adamw", "timm"),
                                          ("soap", "pytorch_optimizer")])
def test_the_implementing_package_and_its_version_are_recorded(name, package):
    from importlib.metadata import version

    recorded = get_spec(name).to_dict()["implementation"]
    assert recorded == {"package": package, "version": torch.__version__ if package == "torch" else version(package)}


def test_the_trainer_swaps_only_where_the_registry_declares_it():
    class HasEval(torch.optim.SGD):  # eval()/train() by accident: must not be called
        def eval(self):
            raise AssertionError("eval() called for an optimizer that does not declare needs_eval_swap")

        def train(self):
            raise AssertionError("train() called")

    optimizer = HasEval([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    stub = types.SimpleNamespace(spec=get_spec("sgd"), optimizer=optimizer)
    with Trainer._evaluation_weights(stub):
        pass
    assert isinstance(Trainer._evaluation_weights(stub), contextlib.nullcontext)
    swapping = create("adamw_schedulefree", [torch.nn.Parameter(torch.zeros(1))])
    stub = types.SimpleNamespace(spec=get_spec("adamw_schedulefree"), optimizer=swapping)
    with Trainer._evaluation_weights(stub):
        assert not swapping.param_groups[0]["train_mode"]
    assert swapping.param_groups[0]["train_mode"]


def test_list_optimizers_groups_them_by_set(capsys):
    from nightbench.suites.cli import main

    assert main(["list", "optimizers"]) == 0
    current, seen = None, {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("== "):
            current = line.split()[1]
        elif line and not line.startswith(" ") and current is not None and line.split()[0] in PAPER_SET | MODERN_SET:
            seen[line.split()[0]] = current
    assert seen == {**{n: "paper" for n in PAPER_SET}, **{n: "modern" for n in MODERN_SET}}
