"""The suites nightbench knows, loaded lazily (BERT and timm imports are slow; `list` stays fast)."""

from __future__ import annotations

import difflib
import importlib
from typing import Any

# name -> module that defines `SUITE`
SUITE_MODULES = {
    "bert_mlm": "nightbench.suites.bert_mlm",
    "resnet50_imagenet": "nightbench.suites.resnet50_imagenet",
    "memory_overhead": "nightbench.suites.memory_overhead",
    "small_batch_variance": "nightbench.suites.small_batch_variance",
}


class UnknownSuiteError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def suite_names() -> list[str]:
    return list(SUITE_MODULES)


def get_suite(name: str) -> Any:
    """The suite object; unknown names fail with the known ones and the closest match."""
    if name not in SUITE_MODULES:
        close = difflib.get_close_matches(str(name), list(SUITE_MODULES), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownSuiteError(f"unknown suite '{name}'.{hint} Known suites: {', '.join(SUITE_MODULES)}")
    return importlib.import_module(SUITE_MODULES[name]).SUITE
