"""The optimizer registry: one table of `OptimizerSpec`s, filled three ways.

1. Modules inside this package register with the `@register_optimizer` decorator (found on first use).
2. Other installed packages expose entry points in the group `nightbench.optimizers`; each entry
   point names a module (importing it registers) or an `OptimizerSpec`/decorated object.
3. A user's file passed on the command line (`--optimizer-file my_opt.py`) is imported and its
   decorators register into the same table.

A plugin that fails to import is reported by name (see `plugin_errors()`), and the rest of the
registry stays usable. Every optimizer of timm's own registry is reachable as `timm:<name>`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import pkgutil
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .errors import InputError
from .hyperparams import Hyperparameter, HyperparameterError, infer_from_signature, resolve
from .param_groups import ParamGroupPolicy, ParamsLike

ENTRY_POINT_GROUP = "nightbench.optimizers"
PAPER_LR_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # Section 5: the paper's eta_0 grid
# Package modules that hold infrastructure, not optimizers; skipped by the auto-import.
_INFRASTRUCTURE_MODULES = {"registry", "hyperparams", "param_groups", "schedules", "swap", "timm_bridge", "memory", "sharding", "errors"}


class UnknownOptimizerError(InputError, KeyError):
    """An optimizer name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class PluginError(InputError):
    """A plugin file or entry point that could not be imported or registered."""


@dataclass(frozen=True)
class OptimizerSpec:
    """Everything the suites and reports need to know about one optimizer.

    factory(param_groups, **hyperparameters) returns a torch.optim.Optimizer.
    Capabilities the run engine asks for:
      needs_eval_swap     the model holds a point other than the reported iterate during training
                          (NIGT trains at x_t, reports w_t); the optimizer then has `.eval()` and
                          `.train()` methods that swap the model's parameters to w_t and back.
      gradients_per_step  2 for optimizers that need two independent gradients at the same point;
                          their `step(closure)` calls the closure twice, once per half-batch.
      state_slots         parameter-sized tensors kept per parameter (None: unknown, e.g. plugins).
    """

    name: str
    factory: Callable[..., torch.optim.Optimizer]
    hyperparameters: tuple[Hyperparameter, ...]
    paper: str = ""
    description: str = ""
    state_slots: int | None = None
    needs_eval_swap: bool = False
    gradients_per_step: int = 1
    lr_grid: tuple[float, ...] = PAPER_LR_GRID
    source: str = "builtin"

    @property
    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.hyperparameters}

    def hyperparameter(self, name: str) -> Hyperparameter:
        for h in self.hyperparameters:
            if h.name == name:
                return h
        raise HyperparameterError(
            f"optimizer '{self.name}' has no hyperparameter '{name}'; accepted: "
            f"{', '.join(h.name for h in self.hyperparameters)}"
        )

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults filled in, every value validated, unknown names rejected."""
        return resolve(self.hyperparameters, given, self.name)

    def to_dict(self) -> dict:
        """Metadata (no code) for configs and reports."""
        return {
            "name": self.name,
            "paper": self.paper,
            "description": self.description,
            "state_slots": self.state_slots,
            "needs_eval_swap": self.needs_eval_swap,
            "gradients_per_step": self.gradients_per_step,
            "lr_grid": list(self.lr_grid),
            "source": self.source,
            "hyperparameters": [h.to_dict() for h in self.hyperparameters],
        }


_REGISTRY: dict[str, OptimizerSpec] = {}
_PLUGIN_ERRORS: dict[str, str] = {}
_LOADED = False
# While a plugin file or entry point is being imported, its registrations are staged here and
# committed only if the whole import succeeds, so a half-imported plugin leaves nothing behind.
_staging: dict[str, OptimizerSpec] | None = None
_current_source = "builtin"


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
) -> Callable:
    """Decorator: register an Optimizer class, or a factory `fn(param_groups, **hp) -> Optimizer`.

    Without `hyperparameters`, they are read from the keyword defaults of the class's
    `__init__` (or the factory's signature), so a plugin needs nothing but the decorator.
    """
    if not isinstance(name, str) or not name or name.startswith("timm:"):
        raise ValueError(f"invalid optimizer name {name!r}: expected a non-empty string not starting with 'timm:'")

    def decorate(obj: Callable) -> Callable:
        target = obj.__init__ if inspect.isclass(obj) else obj
        declared = tuple(hyperparameters) if hyperparameters is not None else infer_from_signature(target)
        if "lr" not in {h.name for h in declared}:
            raise ValueError(f"optimizer '{name}' must declare an 'lr' hyperparameter (every suite sets it)")
        doc = inspect.getdoc(obj) or ""
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
            source=_current_source,
        )
        _add(spec)
        return obj

    return decorate


def register_spec(spec: OptimizerSpec) -> OptimizerSpec:
    """Register a ready-made spec (for entry points that prefer data to decorators)."""
    _add(replace(spec, source=_current_source) if spec.source == "builtin" else spec)
    return spec


def _add(spec: OptimizerSpec) -> None:
    table = _staging if _staging is not None else _REGISTRY
    existing = _REGISTRY.get(spec.name) or table.get(spec.name)
    if existing is not None and existing.source != spec.source:
        raise PluginError(
            f"optimizer name '{spec.name}' from {spec.source} is already registered by {existing.source}; "
            "choose another name"
        )
    table[spec.name] = spec


def _import_as_plugin(source: str, do_import: Callable[[], Any]) -> Any:
    """Run an import with staged registration; commit on success, record the error on failure."""
    global _staging, _current_source
    _staging, _current_source = {}, source
    try:
        result = do_import()
        for spec in _staging.values():
            if spec.name in _REGISTRY and _REGISTRY[spec.name].source != spec.source:
                raise PluginError(f"optimizer name '{spec.name}' is already registered by {_REGISTRY[spec.name].source}")
        _REGISTRY.update(_staging)
        _PLUGIN_ERRORS.pop(source, None)
        return result
    except Exception as exc:  # any import failure: report it by name, keep the others
        _PLUGIN_ERRORS[source] = f"{type(exc).__name__}: {exc}"
        raise PluginError(f"could not load optimizer plugin {source}: {type(exc).__name__}: {exc}") from exc
    finally:
        _staging, _current_source = None, "builtin"


def _load_builtins() -> None:
    package = sys.modules[__package__]
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in _INFRASTRUCTURE_MODULES or info.name.startswith("_"):
            continue
        module_name = f"{__package__}.{info.name}"
        if module_name in sys.modules:
            continue
        try:
            _import_as_plugin(f"module {module_name}", lambda: importlib.import_module(module_name))
        except PluginError as exc:
            warnings.warn(str(exc), stacklevel=3)
    # Decorators inside the package register as builtin, whatever source was current.
    for name, spec in list(_REGISTRY.items()):
        if spec.source.startswith(f"module {__package__}."):
            _REGISTRY[name] = replace(spec, source="builtin")


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
        _PLUGIN_ERRORS[source] = "file not found"
        raise PluginError(f"optimizer file not found: {path}")
    before = set(_REGISTRY)
    module_name = f"nightbench_user_plugin_{abs(hash(str(path)))}"

    def do_import():
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"{path} is not an importable Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        if not _staging and not any(s.source == source for s in _REGISTRY.values()):
            raise PluginError(f"{path} registers no optimizer: decorate a class with @register_optimizer('name')")
        return module

    _import_as_plugin(source, do_import)
    return sorted(set(_REGISTRY) - before) or sorted(n for n, s in _REGISTRY.items() if s.source == source)


def _ensure_loaded() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        _load_builtins()
        load_entry_points()


def plugin_errors() -> dict[str, str]:
    """Plugins (files, entry points, modules) that failed to load, with the reason."""
    _ensure_loaded()
    return dict(_PLUGIN_ERRORS)


def names(include_timm: bool = False) -> list[str]:
    """Registered names, builtins first in registration order, then plugins; optionally timm's."""
    _ensure_loaded()
    out = list(_REGISTRY)
    if include_timm:
        from .timm_bridge import timm_names

        out += [f"timm:{n}" for n in timm_names()]
    return out


def specs() -> list[OptimizerSpec]:
    _ensure_loaded()
    return list(_REGISTRY.values())


def get_spec(name: str) -> OptimizerSpec:
    """The spec for `name`; unknown names fail with the known names and the closest match."""
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if isinstance(name, str) and name.startswith("timm:"):
        from .timm_bridge import timm_spec

        return timm_spec(name[len("timm:"):])
    known = list(_REGISTRY)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise UnknownOptimizerError(
        f"unknown optimizer '{name}'.{hint} Known optimizers: {', '.join(known)} "
        "(and timm:<name> for any of timm's; see `nightbench list optimizers --all`)"
    )


def create(
    name: str,
    params: ParamsLike,
    *,
    policy: ParamGroupPolicy | None = None,
    **hyperparameters: Any,
) -> torch.optim.Optimizer:
    """Build a registered optimizer for a model (or parameters) with the param-group policy applied.

    >>> opt = create("nigt", model, lr=1e-3)
    The resolved hyperparameters and policy are attached as `opt.nightbench_config`.
    """
    spec = get_spec(name)
    resolved = spec.resolve(hyperparameters)
    policy = policy or ParamGroupPolicy()
    groups = policy.build_param_groups(params, lr=resolved["lr"], weight_decay=resolved.get("weight_decay", 0.0))
    optimizer = spec.factory(groups, **resolved)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer '{name}' factory returned {type(optimizer).__name__}, not a torch.optim.Optimizer")
    optimizer.nightbench_config = {"name": name, "hyperparameters": resolved, "policy": policy.to_dict()}
    return optimizer
