"""Fixtures shared by every test package."""

from __future__ import annotations

import sys

import pytest

from nightbench.optimizers import names, registry


@pytest.fixture
def fresh_registry(monkeypatch):
    """A fresh optimizer registry holding the builtins (and installed plugins) for one test.

    What the test registers lands in the copy, which is dropped afterwards, so test order does not matter.
    """
    names()  # builtins and installed entry points loaded before the copy
    monkeypatch.setattr(registry, "REGISTRY", registry.REGISTRY.copy())
    saved_modules = set(sys.modules)
    yield registry.REGISTRY
    for module in set(sys.modules) - saved_modules:
        if module.startswith(("nightbench_user_plugin_", "nbtest_")):
            del sys.modules[module]
