"""Importing a user's Python file (an optimizer or suite plugin) as a module of its own."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def import_user_file(path: Path, prefix: str) -> ModuleType:
    """Execute `path` as a new module named `<prefix>_<digest of the path>`.

    The file's bytes as they are now are compiled and run, never a cached .pyc: an edit made within
    the same second at the same size would otherwise run the old code (and no __pycache__ folder is
    left in the user's folder). On any failure, SystemExit included, the half-made module is
    forgotten and the exception raised on: the caller names the file in its own error."""
    module_name = f"{prefix}_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
