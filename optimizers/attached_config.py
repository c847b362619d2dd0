"""`optimizer.nightbench_config`: the settings `create` built an optimizer with, kept by copies.

`torch.optim.Optimizer.__getstate__` keeps only `defaults`, `state` and `param_groups`, so an
attribute set on an optimizer is lost by `copy.deepcopy` and pickling. nightbench's own optimizers
keep it in their `__getstate__` (`KeepsAttachedConfig`). For any other class (torch's SGD and Adam,
plugins) `attach_config` registers, once per class, a reduction for copy and pickle that is
torch's own (the class, then `__getstate__` for `__setstate__`) plus this one attribute; instances
without the attribute copy exactly as before.
"""

from __future__ import annotations

import copyreg
from typing import Any

import torch

ATTRIBUTE = "nightbench_config"


class KeepsAttachedConfig:
    """Mixin for optimizer classes whose copies and pickles keep `nightbench_config`."""

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if ATTRIBUTE in self.__dict__:
            state[ATTRIBUTE] = self.__dict__[ATTRIBUTE]
        return state


def attach_config(optimizer: torch.optim.Optimizer, config: dict) -> None:
    """Set `optimizer.nightbench_config`, so that copy.deepcopy and pickle keep it."""
    optimizer.nightbench_config = config
    cls = type(optimizer)
    if not issubclass(cls, KeepsAttachedConfig) and cls not in copyreg.dispatch_table:
        copyreg.pickle(cls, _reduce_keeping_config)


def _reduce_keeping_config(optimizer: torch.optim.Optimizer) -> tuple:
    state = optimizer.__getstate__()
    if ATTRIBUTE in optimizer.__dict__:
        state = {**state, ATTRIBUTE: optimizer.__dict__[ATTRIBUTE]}
    return copyreg.__newobj__, (type(optimizer),), state
