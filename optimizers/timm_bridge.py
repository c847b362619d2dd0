"""Every optimizer in timm's own registry, reachable by name as `timm:<name>` without writing code."""

from __future__ import annotations

import difflib
from functools import lru_cache

import torch

from .hyperparams import Hyperparameter, lr_param, weight_decay_param
from .spec import OptimizerSpec, UnknownOptimizerError


@lru_cache(maxsize=1)
def timm_names() -> tuple[str, ...]:
    from timm.optim import list_optimizers

    return tuple(list_optimizers())


def timm_spec(timm_name: str) -> OptimizerSpec:
    """A spec that builds timm's optimizer `timm_name` through `timm.optim.create_optimizer_v2`.

    The factory's signature has no defaults (timm's own defaults differ per optimizer), so the
    declarations below are where these defaults live."""
    known = timm_names()
    if timm_name not in known:
        close = difflib.get_close_matches(timm_name, known, n=1)
        hint = f" Did you mean 'timm:{close[0]}'?" if close else ""
        raise UnknownOptimizerError(f"timm has no optimizer '{timm_name}'.{hint} timm's: {', '.join(known)}")

    def factory(param_groups: list[dict], lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
        from timm.optim import create_optimizer_v2

        return create_optimizer_v2(param_groups, opt=timm_name, lr=lr, weight_decay=weight_decay, momentum=momentum)

    return OptimizerSpec(
        name=f"timm:{timm_name}",
        factory=factory,
        hyperparameters=(
            lr_param(1e-3),
            weight_decay_param(0.0),
            Hyperparameter("momentum", 0.9, float, low=0.0, high=1.0, high_open=True,
                           help="momentum, for timm optimizers that use one"),
        ),
        paper="see timm.optim",
        description=f"timm's '{timm_name}' optimizer (timm.optim.create_optimizer_v2)",
        source="timm",
        package="timm",
    )
