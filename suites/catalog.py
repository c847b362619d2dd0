"""The suites nightbench knows, found the way optimizers are: folders, files and entry points.

* Every folder under suites/ with a `suite.py` defining `SUITE` is a built-in suite named after
  the folder (nothing to list anywhere: add the folder and it is found).
* `--suite-file my_suite.py`: a user's file whose module-level `SUITE` (or every instance of a
  TrainingSuite / ExperimentSuite subclass it defines) joins the catalog.
* An installed package's entry point in the group `nightbench.suites`, naming a module that
  defines `SUITE` (or the suite object itself).
Suites are imported lazily (BERT and timm imports are slow; `list` stays fast). The catalog is a
plugin_registry.Registry, the mechanism the optimizers use: name -> the module that defines
`SUITE`, or the suite itself (from a file or entry point).
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any

from nightbench.optimizers._user_files import import_user_file
from nightbench.optimizers.errors import InputError
from nightbench.optimizers.plugin_registry import Registry, UnknownNameError

from .base import ExperimentSuite, Suite, TrainingSuite

ENTRY_POINT_GROUP = "nightbench.suites"
ENTRY_FILE = "suite.py"  # the one entry file of every suite folder


def _builtin_modules() -> dict[str, str]:
    here = Path(__file__).parent
    return {folder.name: f"{__package__}.{folder.name}.suite"
            for folder in sorted(here.iterdir()) if (folder / ENTRY_FILE).is_file()}


class UnknownSuiteError(UnknownNameError):
    """A suite name that is not in the catalog."""


class SuitePluginError(InputError):
    """A suite file or entry point that cannot be used (missing, fails to import, defines no suite)."""


CATALOG: Registry[str | Suite] = Registry("suite", error=SuitePluginError, unknown_error=UnknownSuiteError,
                                          conflict="{source}: the suite name '{name}' is taken; rename the suite")
for _name, _module in _builtin_modules().items():
    CATALOG.add(_name, _module)


def _check_suite(obj: Any, source: str) -> Suite:
    if not isinstance(obj, (TrainingSuite, ExperimentSuite)):
        raise SuitePluginError(f"{source}: {type(obj).__name__} is not a suite; subclass "
                               "nightbench.suites.base.TrainingSuite or ExperimentSuite")
    for attribute in ("name", "description", "presets"):
        if not getattr(obj, attribute, None):
            raise SuitePluginError(f"{source}: suite {type(obj).__name__} has no '{attribute}'")
    _check_suite_types(obj, f"{source}: suite {type(obj).__name__}")
    return obj


def _check_suite_types(suite: Suite, where: str) -> None:
    """The fields every command reads, checked once here: a wrong type is the file's error, not a bug."""
    for attribute in ("name", "description"):
        value = getattr(suite, attribute)
        if not isinstance(value, str):
            raise SuitePluginError(f"{where}: '{attribute}' is {value!r} (of type {type(value).__name__}); "
                                   "expected a string")
    presets = suite.presets
    if not isinstance(presets, dict):
        raise SuitePluginError(f"{where}: 'presets' is of type {type(presets).__name__}; expected a dict of preset "
                               "name -> dict of settings, e.g. {'ci': {'steps': 10}, 'small': {...}}")
    for preset, values in presets.items():
        if not isinstance(preset, str) or not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            raise SuitePluginError(f"{where}: preset {preset!r} maps to {values!r:.60} (of type {type(values).__name__}); "
                                   "expected a string name -> a dict of settings with string keys")


def _suites_in(module: Any, source: str) -> list[Suite]:
    if hasattr(module, "SUITE"):
        return [_check_suite(module.SUITE, source)]
    found = list({id(v): v for v in vars(module).values() if isinstance(v, (TrainingSuite, ExperimentSuite))}.values())
    if not found:
        raise SuitePluginError(f"{source} defines no suite: set SUITE = MySuite() "
                               "(a subclass of nightbench.suites.base.TrainingSuite or ExperimentSuite)")
    return [_check_suite(suite, source) for suite in found]


def _add(suites: list[Suite], source: str) -> None:
    """Stage a plugin's suites (called inside CATALOG.staged(source))."""
    names = [suite.name for suite in suites]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SuitePluginError(f"{source} defines {len(names)} suites, several named {', '.join(map(repr, twice))}; "
                               "give each suite its own name")
    for suite in suites:
        CATALOG.add(suite.name, suite)


def load_suite_file(path: str | Path) -> list[str]:
    """Import a user's suite file; returns the names of the suites it defines (loading twice is a no-op)."""
    path = Path(path).expanduser().resolve()
    source = f"suite file {path}"
    if not path.is_file():
        raise SuitePluginError(f"suite file not found: {path}")
    if CATALOG.names_from(source):
        return CATALOG.names_from(source)
    with CATALOG.staged(source):
        try:
            module = import_user_file(path, "nightbench_user_suite")
        except (Exception, SystemExit) as exc:  # a plugin's sys.exit must not end nightbench
            raise SuitePluginError(f"{source} failed to import: {type(exc).__name__}: {exc}") from None
        _add(_suites_in(module, source), source)
    return CATALOG.names_from(source)


def _read_entry_points() -> None:
    if CATALOG.loaded:
        return
    CATALOG.loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point '{ep.name}' ({ep.value})"
        try:
            with CATALOG.staged(source):
                obj = ep.load()
                _add(_suites_in(obj, source) if not isinstance(obj, Suite) else [_check_suite(obj, source)], source)
        except (Exception, SystemExit) as exc:  # one broken package must not hide the other suites
            warnings.warn(f"could not load suites from {source}: {exc}", stacklevel=2)


def suite_names() -> list[str]:
    _read_entry_points()
    return list(CATALOG.entries)


def get_suite(name: str) -> Suite:
    """The suite object; unknown names fail with the known ones and the closest match."""
    _read_entry_points()
    where = CATALOG.get(name)
    if isinstance(where, Suite):
        return where
    return _check_suite(importlib.import_module(where).SUITE, f"module {where}")
