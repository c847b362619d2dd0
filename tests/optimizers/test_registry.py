"""The registry: three ways in (user file, entry point, package module), one table; bad input fails clearly.

Also the optimizer sets (a spec's `family`) and `expand_names`, the recorded implementation, and the
plugin probe: a plugin file that exits at import, or whose factory does not build a
torch.optim.Optimizer, is reported by name as a PluginError and registers nothing (the command line:
exit 2); an optimizer declaring needs_eval_swap must have eval() and train().
"""

from __future__ import annotations

import hashlib
import textwrap
import types
import warnings

import pytest
import torch

from nightbench.optimizers import (
    PluginError,
    UnknownOptimizerError,
    create,
    expand_names,
    get_spec,
    load_optimizer_file,
    names,
    plugin_errors,
    registry,
    specs,
)
from nightbench.optimizers.registry import register_optimizer

from .builtins import BUILTINS, MODERN, PAPER

SIGN_SGD_FILE = """
import torch
from nightbench.optimizers import register_optimizer

@register_optimizer("test_sign_sgd", paper="a test plugin", state_slots=0)
class SignSGD(torch.optim.Optimizer):
    '''Sign SGD: w <- w - lr * sign(g).'''

    def __init__(self, params, lr=0.01, flip=False, scale=2, betas=(0.9, 0.99), mode="plain"):
        super().__init__(params, dict(lr=lr, flip=flip, scale=scale))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])
"""

ENTRY_POINT_MODULE = """
import torch
from nightbench.optimizers import OptimizerSpec, register_optimizer
from nightbench.optimizers.hyperparams import lr_param

@register_optimizer("test_ep_sgd", hyperparameters=[lr_param(0.1)], state_slots=0)
def make(param_groups, lr):
    return torch.optim.SGD(param_groups, lr=lr)

SPEC = OptimizerSpec(
    name="test_ep_spec", factory=lambda groups, lr: torch.optim.SGD(groups, lr=lr),
    hyperparameters=(lr_param(0.2),), paper="spec object", state_slots=0,
)
"""


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))


def take_one_step(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> float:
    """One step on a tiny problem; returns how far the parameters moved."""
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(5, 4)).pow(2).sum().backward()
    optimizer.step()
    return sum((p.detach() - b).norm().item() for p, b in zip(model.parameters(), before))


# -- way 3: modules inside the package ------------------------------------------------------------

def test_builtin_modules_register_themselves():
    known = names()
    registered = [s.name for s in specs() if s.source == "builtin"]
    assert sorted(registered) == sorted(BUILTINS), "the builtins registered differ from tests/optimizers/builtins.py"
    for name in BUILTINS:
        assert name in known
        spec = get_spec(name)
        assert spec.source == "builtin"
        assert spec.paper and spec.state_slots is not None
    assert get_spec("lars").factory.__module__ == "nightbench.optimizers.lars"


def test_the_decorator_names_each_builtin_class():
    for spec in specs():
        if isinstance(spec.factory, type):
            assert spec.factory.NAME == spec.name


def test_a_broken_builtin_module_is_an_error_not_a_warning(monkeypatch, fresh_registry):
    broken = types.SimpleNamespace(name="zz_broken_builtin")
    monkeypatch.setattr(registry.pkgutil, "iter_modules", lambda path: [broken])
    monkeypatch.setattr(fresh_registry, "loaded", False)
    with pytest.raises(ImportError, match="builtin optimizer module nightbench.optimizers.zz_broken_builtin"):
        names()
    assert fresh_registry.loaded is False  # the next use fails the same way, not with a half-loaded registry


# -- way 1: a user's file with a decorator ---------------------------------------------------------

def test_a_decorated_class_in_a_user_file_lands_in_the_registry(tmp_path, fresh_registry):
    path = tmp_path / "my_optimizer.py"
    path.write_text(SIGN_SGD_FILE)
    assert load_optimizer_file(path) == ["test_sign_sgd"]
    assert "test_sign_sgd" in names()
    spec = get_spec("test_sign_sgd")
    assert spec.source == f"file {path.resolve()}"
    assert spec.description.startswith("Sign SGD")
    # hyperparameters inferred from the __init__ defaults
    assert spec.defaults == {"lr": 0.01, "flip": False, "scale": 2, "betas": (0.9, 0.99), "mode": "plain"}
    kinds = {h.name: h.kind for h in spec.hyperparameters}
    assert kinds == {"lr": float, "flip": bool, "scale": int, "betas": tuple, "mode": str}
    model = tiny_model()
    optimizer = create("test_sign_sgd", model, lr=0.5, scale="3", flip="true")
    assert optimizer.nightbench_config["hyperparameters"]["scale"] == 3
    assert take_one_step(optimizer, model) > 0
    with pytest.raises(ValueError, match="'lr'.*\\[0, inf\\]"):
        create("test_sign_sgd", model, lr=-1)
    with pytest.raises(ValueError, match="'scale'.*an integer"):
        create("test_sign_sgd", model, scale=1.5)
    with pytest.raises(ValueError, match="'betas'.*\\[0, 1\\)"):
        create("test_sign_sgd", model, betas=(0.9, 1.0))


def test_a_plugin_file_that_fails_is_reported_by_name_and_nothing_else_breaks(tmp_path, fresh_registry):
    good = tmp_path / "good_plugin.py"
    good.write_text(SIGN_SGD_FILE)
    load_optimizer_file(good)
    bad = tmp_path / "broken_plugin.py"
    bad.write_text(textwrap.dedent("""
        import torch
        from nightbench.optimizers import register_optimizer

        @register_optimizer("test_half_registered")
        class Half(torch.optim.SGD):
            def __init__(self, params, lr=0.1):
                super().__init__(params, lr=lr)

        raise RuntimeError("boom while importing")
    """))
    with pytest.raises(PluginError, match="broken_plugin.py.*boom while importing"):
        load_optimizer_file(bad)
    errors = plugin_errors()
    assert any("broken_plugin.py" in source and "boom" in reason for source, reason in errors.items())
    known = names()
    assert "test_half_registered" not in known  # the half-imported plugin left nothing behind
    assert "test_sign_sgd" in known and all(b in known for b in BUILTINS)
    model = tiny_model()
    assert take_one_step(create("sgd", model, lr=0.1), model) > 0


def test_plugin_files_that_are_missing_empty_or_clash_fail_clearly(tmp_path, fresh_registry):
    with pytest.raises(PluginError, match="not found.*nope.py"):
        load_optimizer_file(tmp_path / "nope.py")
    empty = tmp_path / "empty_plugin.py"
    empty.write_text("x = 1\n")
    with pytest.raises(PluginError, match="registers no optimizer"):
        load_optimizer_file(empty)
    clash = tmp_path / "clash_plugin.py"
    clash.write_text(SIGN_SGD_FILE.replace('"test_sign_sgd"', '"sgd"'))
    with pytest.raises(PluginError, match="'sgd'.*already registered"):
        load_optimizer_file(clash)
    assert get_spec("sgd").source == "builtin"


# -- way 2: an entry point of another installed package --------------------------------------------

def install_fake_distribution(root, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """What pip would leave behind: a .dist-info with METADATA and entry_points.txt, plus modules."""
    dist_info = root / "nbtest_plugin_pkg-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: nbtest-plugin-pkg\nVersion: 1.0\n")
    lines = [f"{name} = {target}" for name, target in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("[nightbench.optimizers]\n" + "\n".join(lines) + "\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)


def test_entry_points_register_and_a_failing_one_is_reported(tmp_path, monkeypatch, fresh_registry):
    install_fake_distribution(
        tmp_path,
        {"decorated": "nbtest_ep_module", "spec": "nbtest_ep_module:SPEC", "broken": "nbtest_ep_broken"},
        {"nbtest_ep_module": ENTRY_POINT_MODULE,
         "nbtest_ep_broken": "raise ImportError('missing dependency xyz')\n"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.load_entry_points()
    assert any("broken" in str(w.message) and "xyz" in str(w.message) for w in caught)

    known = names()
    assert "test_ep_sgd" in known and "test_ep_spec" in known
    assert all(b in known for b in BUILTINS)
    assert get_spec("test_ep_sgd").source.startswith("entry point 'decorated'")
    assert get_spec("test_ep_spec").source.startswith("entry point 'spec'")
    errors = plugin_errors()
    assert [s for s in errors if s.startswith("entry point 'broken'")]
    assert "xyz" in next(reason for s, reason in errors.items() if "broken" in s)
    for name in ("test_ep_sgd", "test_ep_spec"):
        model = tiny_model()
        assert take_one_step(create(name, model), model) > 0


# -- bad input ---------------------------------------------------------------------------------------

def test_an_unknown_name_lists_the_known_ones_and_the_closest():
    with pytest.raises(UnknownOptimizerError) as info:
        get_spec("lasr")
    message = str(info.value)
    assert "Did you mean 'lars'?" in message
    assert all(name in message for name in names())
    with pytest.raises(UnknownOptimizerError, match="Did you mean 'adam'"):
        create("adma", tiny_model())
    with pytest.raises(UnknownOptimizerError, match="Did you mean 'timm:adamw'"):
        get_spec("timm:adamww")


@pytest.mark.parametrize(
    "name,values,pattern",
    [
        ("sgd", {"lr": -0.1}, r"'lr'.*a number in \[0, inf\]"),
        ("adam", {"beta1": 1.0}, r"'beta1'.*\[0, 1\)"),
        ("adam", {"beta2": -0.5}, r"'beta2'.*\[0, 1\)"),
        ("lamb", {"lr": "fast"}, r"'lr'.*a number"),
        ("sgd", {"nesterov": "maybe"}, r"'nesterov'.*true or false"),
        ("lars", {"momentum": 0.9, "betas": (0.9, 0.99)}, r"no hyperparameter 'betas'.*accepted:.*trust_coefficient"),
        ("lamb", {"phi": "tanh"}, r"'phi'.*'identity', 'clamp'"),
    ],
)
def test_invalid_hyperparameters_fail_with_the_name_and_the_accepted_range(name, values, pattern):
    with pytest.raises(ValueError, match=pattern):
        create(name, tiny_model(), **values)


# -- timm's optimizers by name ----------------------------------------------------------------------

def test_timm_optimizers_are_listed_and_build_and_step():
    with_timm = names(include_timm=True)
    assert "timm:adamw" in with_timm and "timm:lamb" in with_timm
    assert not any(n.startswith("timm:") for n in names())
    for name in ("timm:adamw", "timm:lion"):
        model = tiny_model()
        optimizer = create(name, model, lr=1e-2, weight_decay=0.01)
        assert isinstance(optimizer, torch.optim.Optimizer)
        assert take_one_step(optimizer, model) > 0


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
    "class_without_step": (textwrap.dedent("""
        @register_optimizer("test_no_step")
        class NoStep(torch.optim.Optimizer):
            def __init__(self, params, lr=0.1):
                super().__init__(params, dict(lr=lr))
    """), "'test_no_step'.*NoStep does not define step"),
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


def test_a_plugin_class_without_a_docstring_has_no_description(tmp_path, fresh_registry):
    path = tmp_path / "plain_doc.py"  # an Optimizer subclass: torch's own docstring is not its description
    path.write_text(PLUGIN_HEADER + textwrap.dedent("""
        @register_optimizer("test_undocumented")
        class Undocumented(torch.optim.SGD):
            def __init__(self, params, lr=0.1):
                super().__init__(params, lr=lr)

        @register_optimizer("test_documented")
        class Documented(torch.optim.SGD):
            '''Plain SGD, for the test.

            More lines.'''
            def __init__(self, params, lr=0.1):
                super().__init__(params, lr=lr)
    """))
    load_optimizer_file(path)
    assert registry.get_spec("test_undocumented").description == ""
    assert registry.get_spec("test_documented").description == "Plain SGD, for the test."


PAPER_SET, MODERN_SET = set(PAPER), set(MODERN)


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


def test_plugins_are_their_own_set(tmp_path, fresh_registry):
    path = tmp_path / "plug.py"
    path.write_text("import torch\nfrom nightbench.optimizers import register_optimizer\n"
                    "@register_optimizer('nbtest_plugin_sgd')\nclass P(torch.optim.SGD):\n"
                    "    def __init__(self, params, lr=0.1):\n        super().__init__(params, lr=lr)\n")
    load_optimizer_file(path)
    assert expand_names(["plugin"]) == ["nbtest_plugin_sgd"]
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]  # the file's code is its version
    assert get_spec("nbtest_plugin_sgd").to_dict()["implementation"] == {"package": f"file {path.resolve()}",
                                                                          "version": digest}


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
