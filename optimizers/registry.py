"""The optimizer registry: one table of `OptimizerSpec`s, filled three ways.

1. Modules inside this package register with the `@register_optimizer` decorator (found on first use).
2. Other installed packages expose entry points in the group `nightbench.optimizers`; each entry
   point names a module (importing it registers) or an `OptimizerSpec`/decorated object.
3. A user's file passed on the command line (`--optimizer-file my_opt.py`) is imported and its
   decorators register into the same table.

All three fill `REGISTRY`, a plugin_registry.Registry (the suites' catalog is another). Every
public module of this package is imported on first use; those that register something are the
builtin optimizers, so adding one is adding its module (a module that fails to import is a bug and
raises). A plugin that fails to import is reported by name (see `plugin_errors()`), and the rest of
the registry stays usable. Every optimizer of timm's own registry is reachable as `timm:<name>`.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pkgutil
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from ._user_files import import_user_file
from .attached_config import attach_config
from .errors import InputError
from .hyperparams import Check, Hyperparameter, with_signature_defaults
from .param_groups import ParamGroupPolicy, ParamsLike
from .plugin_registry import BUILTIN, Registry
from .search_space import Distribution, check_space
from .spec import FAMILIES, PAPER_LR_GRID, OptimizerSpec, UnknownOptimizerError
from .timm_bridge import timm_names, timm_spec

ENTRY_POINT_GROUP = "nightbench.optimizers"
# The tiny tensors a plugin's optimizer is built on when it loads: a matrix and a vector, so that
# the param-group policy makes both of its groups.
_PROBE_SHAPES = ((2, 2), (2,))


class PluginError(InputError, RuntimeError):
    """A plugin file or entry point that could not be imported or registered."""


REGISTRY: Registry[OptimizerSpec] = Registry(
    "optimizer", error=PluginError, unknown_error=UnknownOptimizerError,
    conflict="optimizer name '{name}' from {source} is already registered by {existing}; choose another name",
    known_suffix=" (and timm:<name> for any of timm's; see `nightbench list optimizers --all`)",
)


def register_optimizer(
    name: str,
    *,
    hyperparameters: list[Hyperparameter] | tuple[Hyperparameter, ...] | None = None,
    paper: str = "",
    description: str = "",
    state_slots: int | None = None,
    needs_eval_swap: bool = False,
    gradients_per_step: int = 1,
    lr_grid: tuple[float, ...] = PAPER_LR_GRID,
    check: Check | None = None,
    search_space: dict[str, Distribution] | None = None,
    family: str = "plugin",
    package: str = "",
    needs_bn_recalibration: bool = False,
    splits_hidden_matrices: bool = False,
    constant_schedule: bool = False,
) -> Callable:
    """Decorator: register an Optimizer class, or a factory `fn(param_groups, **hp) -> Optimizer`.

    Defaults are read from the keyword defaults of the class's `__init__` (or the factory's
    signature). `hyperparameters` adds types, ranges and help for some or all of them; those not
    declared are inferred, so a plugin needs nothing but the decorator. `check` (or a class's
    `check_hyperparameters`) validates constraints between values. A class gets the completed
    declarations as `HYPERPARAMETERS`, so that it validates its own param groups the same way.
    `search_space` maps hyperparameters (and `warmup_fraction`) to the distributions the tuning
    protocol draws from (see search_space.py); without it the optimizer is tuned over lr alone.
    `family` is its optimizer set (spec.FAMILIES; plugins are 'plugin'), `package` the distribution
    that implements its update ('': the registering module's top-level package). A class gets
    `name` as its `NAME` (its error messages use it).
    """
    if not isinstance(name, str) or not name or name.startswith("timm:"):
        raise ValueError(f"invalid optimizer name {name!r}: expected a non-empty string not starting with 'timm:'")
    if name in FAMILIES or name == ALL_SET:
        raise ValueError(f"invalid optimizer name {name!r}: it names an optimizer set ({', '.join(SET_NAMES)})")
    if family not in FAMILIES:
        raise ValueError(f"invalid family {family!r} for optimizer '{name}': expected one of {FAMILIES}")

    def decorate(obj: Callable) -> Callable:
        target = obj.__init__ if inspect.isclass(obj) else obj
        declared = with_signature_defaults(target, hyperparameters)
        cross_check = check if check is not None else getattr(obj, "check_hyperparameters", None)
        if inspect.isclass(obj):
            obj.NAME = name
            if hyperparameters is not None:
                obj.HYPERPARAMETERS = declared
        if "lr" not in {h.name for h in declared}:
            raise ValueError(f"optimizer '{name}' must declare an 'lr' hyperparameter (every suite sets it)")
        space = None if search_space is None else check_space(search_space, {h.name: h for h in declared}, name)
        doc = inspect.cleandoc(obj.__doc__ or "")  # its own: getdoc would inherit torch's "Base class for ..."
        spec = OptimizerSpec(
            name=name,
            factory=obj,
            hyperparameters=declared,
            paper=paper,
            description=description or (doc.splitlines()[0] if doc else ""),
            state_slots=state_slots,
            needs_eval_swap=needs_eval_swap,
            gradients_per_step=gradients_per_step,
            lr_grid=tuple(lr_grid),
            source=REGISTRY.source,
            check=cross_check,
            search_space=space,
            family=family,
            package=package,
            needs_bn_recalibration=needs_bn_recalibration,
            splits_hidden_matrices=splits_hidden_matrices,
            constant_schedule=constant_schedule,
        )
        _add(spec)
        return obj

    return decorate


def register_spec(spec: OptimizerSpec) -> OptimizerSpec:
    """Register a ready-made spec (for entry points that prefer data to decorators)."""
    _add(replace(spec, source=REGISTRY.source) if spec.source == BUILTIN else spec)
    return spec


def _add(spec: OptimizerSpec) -> None:
    if spec.source.startswith("file ") and not spec.package:
        spec = replace(spec, source_digest=file_digest(Path(spec.source.removeprefix("file "))))
    REGISTRY.add(spec.name, spec, spec.source)


def file_digest(path: Path) -> str:
    """'sha256:' and the first 12 hex digits of a file's bytes (the code of a user's optimizer file)."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _import_as_plugin(source: str, do_import: Callable[[], Any]) -> Any:
    """Run a plugin's import staged: committed if it and the probe of what it registers succeed."""
    try:
        with REGISTRY.staged(source) as staged:
            result = do_import()
            for spec in staged.values():
                probe(spec)
        return result
    except (Exception, SystemExit) as exc:  # any import failure, even sys.exit(): report it by name, keep the others
        raise PluginError(f"could not load optimizer plugin {source}: {REGISTRY.errors[source]}") from exc


def probe(spec: OptimizerSpec) -> None:
    """Build a plugin's optimizer at its defaults on tiny tensors: it must be a torch.optim.Optimizer.

    Done when the plugin loads, so a broken factory is reported before any run directory exists.
    """
    params = [torch.nn.Parameter(torch.zeros(shape)) for shape in _PROBE_SHAPES]
    defaults = spec.resolve({})
    groups = ParamGroupPolicy().build_param_groups(params, lr=defaults["lr"], weight_decay=defaults.get("weight_decay", 0.0),
                                                   split_hidden_matrices=spec.splits_hidden_matrices)
    try:
        built = spec.factory(groups, **defaults)
    except Exception as exc:
        raise PluginError(f"optimizer '{spec.name}' cannot be built at its default hyperparameters: "
                          f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(built, torch.optim.Optimizer):
        raise PluginError(f"optimizer '{spec.name}': its factory returned {type(built).__name__}, "
                          "not a torch.optim.Optimizer")
    # torch wraps step() with its hooks, so compare what lies under the wrappers
    if inspect.unwrap(type(built).step) is inspect.unwrap(torch.optim.Optimizer.step):
        raise PluginError(f"optimizer '{spec.name}': {type(built).__name__} does not define step(); "
                          "every run would fail with torch's NotImplementedError")
    if spec.needs_eval_swap:
        missing = [m for m in ("eval", "train") if not callable(getattr(built, m, None))]
        if missing:
            raise PluginError(f"optimizer '{spec.name}' declares needs_eval_swap but {type(built).__name__} has no "
                              f"{' and no '.join(m + '()' for m in missing)}: the suites call eval() before "
                              "evaluating and train() after (see optimizers/swap.py)")


def _load_builtins() -> None:
    """Import every public module of the package; the optimizer modules register as they load.

    Importing the helper modules too costs nothing (the registry imports most of them anyway), and
    spares a hand-kept list of which modules are not optimizers. A module that fails is a bug.
    """
    package = sys.modules[__package__]
    for info in pkgutil.iter_modules(package.__path__):
        module_name = f"{__package__}.{info.name}"
        if info.name.startswith("_") or module_name in sys.modules:
            continue
        try:
            importlib.import_module(module_name)
        except Exception as exc:
            raise ImportError(f"builtin optimizer module {module_name} failed to import: "
                              f"{type(exc).__name__}: {exc}") from exc


def load_entry_points() -> None:
    """Import every installed `nightbench.optimizers` entry point; failures are recorded, not raised."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point '{ep.name}' ({ep.value})"

        def do_import(ep=ep):
            obj = ep.load()
            if isinstance(obj, OptimizerSpec):
                register_spec(obj)
            return obj

        try:
            _import_as_plugin(source, do_import)
        except PluginError as exc:
            warnings.warn(str(exc), stacklevel=2)


def load_optimizer_file(path: str | Path) -> list[str]:
    """Import a user's Python file so its `@register_optimizer` decorators run; returns new names.

    Raises PluginError (naming the file and the cause) if it is missing, fails to import, or
    registers nothing; the registry is unchanged in that case.
    """
    _ensure_loaded()
    path = Path(path).expanduser().resolve()
    source = f"file {path}"
    if not path.is_file():
        REGISTRY.errors[source] = "file not found"
        raise PluginError(f"optimizer file not found: {path}")
    before = set(REGISTRY.entries)

    def do_import():
        module = import_user_file(path, "nightbench_user_plugin")
        if not REGISTRY.staged_names() and not REGISTRY.names_from(source):
            raise PluginError(f"{path} registers no optimizer: decorate a class with @register_optimizer('name')")
        return module

    _import_as_plugin(source, do_import)
    return sorted(set(REGISTRY.entries) - before) or sorted(REGISTRY.names_from(source))


def _ensure_loaded() -> None:
    if REGISTRY.loaded:
        return
    REGISTRY.loaded = True  # first, so that a module that asks for names while it loads does not recurse
    try:
        _load_builtins()
    except BaseException:
        REGISTRY.loaded = False  # every later use fails the same way
        raise
    load_entry_points()


def plugin_errors() -> dict[str, str]:
    """Plugins (files, entry points) that failed to load, with the reason."""
    _ensure_loaded()
    return dict(REGISTRY.errors)


def names(include_timm: bool = False) -> list[str]:
    """Registered names, builtins first in registration order, then plugins; optionally timm's."""
    _ensure_loaded()
    out = list(REGISTRY.entries)
    if include_timm:
        out += [f"timm:{n}" for n in timm_names()]
    return out


ALL_SET = "all"
SET_NAMES = (*FAMILIES, ALL_SET)


def expand_names(requested: list[str] | tuple[str, ...]) -> list[str]:
    """Optimizer names with set names (`paper`, `modern`, `plugin`, `all`) replaced by their members,
    in registration order; other names pass through (get_spec judges them). Order is kept."""
    _ensure_loaded()
    out: list[str] = []
    for name in requested:
        if name == ALL_SET:
            out += list(REGISTRY.entries)
        elif name in FAMILIES:
            out += [n for n, spec in REGISTRY.entries.items() if spec.family == name]
        else:
            out.append(name)
    return out


def specs() -> list[OptimizerSpec]:
    _ensure_loaded()
    return list(REGISTRY.entries.values())


def get_spec(name: str) -> OptimizerSpec:
    """The spec for `name`; unknown names fail with the known names and the closest match."""
    _ensure_loaded()
    if isinstance(name, str) and name.startswith("timm:") and name not in REGISTRY.entries:
        return timm_spec(name[len("timm:"):])
    return REGISTRY.get(name)


def create(
    name: str,
    params: ParamsLike,
    *,
    policy: ParamGroupPolicy | None = None,
    foreach: bool | None = None,
    **hyperparameters: Any,
) -> torch.optim.Optimizer:
    """Build a registered optimizer for a model (or parameters) with the param-group policy applied.

    >>> opt = create("nigt", model, lr=1e-3)
    The resolved hyperparameters and policy are attached as `opt.nightbench_config` (kept by
    copy.deepcopy and pickling). `foreach` chooses the body of optimizers that have two (True:
    multi-tensor, False: one tensor at a time, None: automatic); it changes no value of the
    algorithm beyond rounding, so it is not a hyperparameter.
    """
    spec = get_spec(name)
    resolved = spec.resolve(hyperparameters)
    policy = policy or ParamGroupPolicy()
    groups = policy.build_param_groups(params, lr=resolved["lr"], weight_decay=resolved.get("weight_decay", 0.0),
                                       split_hidden_matrices=spec.splits_hidden_matrices)
    if foreach is not None and not takes_foreach(spec):
        raise InputError(f"optimizer '{name}' has a single implementation: it takes no foreach argument")
    optimizer = spec.factory(groups, **resolved, **({} if foreach is None else {"foreach": foreach}))
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise PluginError(f"optimizer '{name}' factory returned {type(optimizer).__name__}, not a torch.optim.Optimizer")
    attach_config(optimizer, {"name": name, "hyperparameters": resolved, "policy": policy.to_dict()})
    return optimizer


def takes_foreach(spec: OptimizerSpec) -> bool:
    """Whether the optimizer's factory (or class) takes a `foreach` argument choosing its body."""
    target = spec.factory.__init__ if inspect.isclass(spec.factory) else spec.factory
    try:
        return "foreach" in inspect.signature(target).parameters
    except (TypeError, ValueError):  # a builtin callable without a signature
        return False
