"""Importing a user's Python file (an optimizer or suite plugin) as a module of its own."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def import_user_file(path: Path, prefix: str) -> ModuleType:
    """Execute `path` as a new module named `<prefix>_<digest of the path>`.

    On any failure, SystemExit included, the half-made module is forgotten and the exception
    raised on: the caller names the file in its own error."""
    module_name = f"{prefix}_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
