"""The base class of the optimizers written here: declared hyperparameters, the body switch, copies.

Each optimizer has two bodies, in torch's own style (torch/optim/sgd.py): a functional entry
dispatches to `_single_tensor_<name>` (one tensor at a time: the readable reference, which reads
norms back to the host) or `_multi_tensor_<name>` (`torch._foreach_*` ops over all tensors of a
param group, no host reads; see `_foreach`). The constructor's `foreach` chooses: True, False, or
None for automatic, which is the multi-tensor body under torch.compile and on accelerators, and
`CPU_FOREACH` on CPU. On CPU the single-tensor body is the faster one for all six (measured by
`python tests/benchmarks/cpu_body_choice.py`, which prints both bodies' times side by side): it makes its few passes over
one tensor while that tensor is in cache, where each foreach op streams all tensors from memory,
and a host read costs no device synchronization there.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ._foreach import use_multi_tensor
from .attached_config import KeepsAttachedConfig
from .errors import InputError
from .hyperparams import Hyperparameter, HyperparameterError, validate_values
from .sharding import NormSharding, get_norm_sharding


def run_closure(closure: Callable[[], Any] | None) -> Any:
    """Call a step closure with gradients enabled (step itself runs under no_grad)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class NightbenchOptimizer(KeepsAttachedConfig, torch.optim.Optimizer):
    """Validates every param group against the declarations; knows which body to run.

    Subclasses set NAME (the registry name); `register_optimizer` sets HYPERPARAMETERS (the
    declarations with the signature's defaults). A subclass may define a static
    `check_hyperparameters(values)` for constraints between values; the registry's validation
    runs it too. Every group gets `layer_adaptation` (True unless the param-group policy says not).
    """

    NAME = ""  # set by @register_optimizer to the registered name
    HYPERPARAMETERS: tuple[Hyperparameter, ...] = ()
    CPU_FOREACH = False  # the body `foreach=None` picks on CPU (a subclass may choose the other)

    def __init__(self, params: Any, defaults: dict[str, Any], foreach: bool | None) -> None:
        if foreach not in (None, True, False):
            raise InputError(f"invalid foreach={foreach!r} for optimizer '{self.NAME}': expected None, True or False")
        self.foreach = foreach
        defaults = {**defaults, **self._validated(defaults)}
        super().__init__(params, {**defaults, "layer_adaptation": defaults.get("layer_adaptation", True)})

    def _validated(self, values: dict[str, Any]) -> dict[str, Any]:
        return validate_values(self.HYPERPARAMETERS, values, self.NAME, getattr(self, "check_hyperparameters", None))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        group = dict(param_group)
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group.update(self._validated(group))
        if not isinstance(group["layer_adaptation"], bool):
            raise HyperparameterError(
                f"invalid value {group['layer_adaptation']!r} for param-group key 'layer_adaptation' of "
                f"optimizer '{self.NAME}': expected true or false"
            )
        super().add_param_group(group)

    def uses_multi_tensor(self) -> bool:
        """Whether this step runs the multi-tensor body (see the module docstring)."""
        return use_multi_tensor(self.foreach, self.param_groups, self.CPU_FOREACH)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step; returns the closure's loss (the closure runs with gradients enabled).

        The shared shape of a step: check, closure, then one of the two bodies a subclass defines,
        `_single_tensor_step(sharding)` and `_multi_tensor_step(sharding, index_cache)` (the cache
        keeps each group's layer indices between steps). An optimizer whose step differs in shape
        (nigt_adaptive evaluates its closure twice) overrides `step` itself.
        """
        self._before_step()
        loss = run_closure(closure)
        sharding = get_norm_sharding(self)
        if self.uses_multi_tensor():
            self._multi_tensor_step(sharding, self.__dict__.setdefault("_layer_index_cache", {}))
        else:
            self._single_tensor_step(sharding)
        return loss

    def _before_step(self) -> None:
        """A check a subclass runs before each step (none by default)."""

    def _single_tensor_step(self, sharding: NormSharding | None) -> None:
        raise NotImplementedError(f"{type(self).__name__} defines no single-tensor body")

    def _multi_tensor_step(self, sharding: NormSharding | None, index_cache: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} defines no multi-tensor body")

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "foreach": self.foreach}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("foreach", None)
