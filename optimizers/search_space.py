"""Search spaces for the tuning protocol: each optimizer's own distribution per hyperparameter.

An optimizer declares its space next to its hyperparameters (`@register_optimizer(...,
search_space={...})`). Each entry maps a hyperparameter, or the schedule's `warmup_fraction`, to a
distribution over [0, 1) -> values:

    LogUniform(a, b)         exp(log a + u (log b - log a))
    Uniform(a, b)            a + u (b - a)
    OneMinusLogUniform(a, b) a momentum/beta in [a, b] whose distance from 1 is log-uniform
                             (0.9 and 0.99 are as far apart as 0.99 and 0.999)
    Choice(v1, v2, ...)      values[floor(u k)]
    AroundDefault(f)         log-uniform on [d / f, d * f] around the run's own default d (the
                             suite's per-optimizer default): an lr space centred where the suite starts

An optimizer that declares no space is tuned over `FALLBACK_SPACE`: lr alone, log-uniform over two
decades centred on its default (the report says so). Trials come from one scrambled Halton
sequence (`scipy.stats.qmc`, the same seed for every optimizer, so that none gets luckier draws),
each point mapped into the optimizer's own space; trial 0 is always the default itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Union

from .errors import InputError

WARMUP_FRACTION = "warmup_fraction"  # the one schedule key a space may tune: warmup / schedule length
SIGNIFICANT_DIGITS = 4  # sampled values are rounded so configs and run names stay readable


class SearchSpaceError(InputError):
    """A search space that cannot be used (a bad bound, a name the optimizer does not take)."""


def _rounded(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def __post_init__(self) -> None:
        if not (0 < self.low < self.high < math.inf):
            raise SearchSpaceError(f"LogUniform needs 0 < low < high (got {self.low}, {self.high})")

    def value(self, u: float) -> float:
        return _rounded(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))

    def position(self, x: float) -> float | None:
        """Where x lies in [0, 1] on this distribution's own scale; None outside the support."""
        if not (isinstance(x, (int, float)) and self.low <= x <= self.high):
            return None
        return (math.log(x) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))

    def describe(self) -> str:
        return f"log-uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def __post_init__(self) -> None:
        if not (-math.inf < self.low < self.high < math.inf):
            raise SearchSpaceError(f"Uniform needs low < high (got {self.low}, {self.high})")

    def value(self, u: float) -> float:
        return _rounded(self.low + u * (self.high - self.low))

    def position(self, x: float) -> float | None:
        if not (isinstance(x, (int, float)) and self.low <= x <= self.high):
            return None
        return (x - self.low) / (self.high - self.low)

    def describe(self) -> str:
        return f"uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class OneMinusLogUniform:
    """A decay rate beta in [low, high] with 1 - beta log-uniform."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (0 <= self.low < self.high < 1):
            raise SearchSpaceError(f"OneMinusLogUniform needs 0 <= low < high < 1 (got {self.low}, {self.high})")

    def _complement(self) -> LogUniform:
        return LogUniform(1 - self.high, 1 - self.low)

    def value(self, u: float) -> float:
        return _rounded(1 - self._complement().value(1 - u))

    def position(self, x: float) -> float | None:
        if not (isinstance(x, (int, float)) and self.low <= x <= self.high):
            return None
        return 1 - self._complement().position(1 - x)

    def describe(self) -> str:
        return f"1 - beta log-uniform, beta in [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Choice:
    values: tuple

    def __init__(self, *values: Any) -> None:
        if not values:
            raise SearchSpaceError("Choice needs at least one value")
        object.__setattr__(self, "values", tuple(values))

    def value(self, u: float) -> Any:
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]

    def position(self, x: Any) -> float | None:
        return (self.values.index(x) + 0.5) / len(self.values) if x in self.values else None

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class AroundDefault:
    """Log-uniform over [default / factor, default * factor]; bound to a run's default by `bind`."""

    factor: float

    def __post_init__(self) -> None:
        if not (1 < self.factor < math.inf):
            raise SearchSpaceError(f"AroundDefault needs a factor > 1 (got {self.factor})")

    def around(self, default: Any, name: str) -> LogUniform:
        if isinstance(default, bool) or not isinstance(default, (int, float)) or not default > 0:
            raise SearchSpaceError(f"'{name}' is searched around its default, which must be a positive number "
                                   f"(got {default!r})")
        return LogUniform(default / self.factor, default * self.factor)

    def describe(self) -> str:
        return f"log-uniform [default / {self.factor:g}, default x {self.factor:g}]"


Distribution = Union[LogUniform, Uniform, OneMinusLogUniform, Choice, AroundDefault]
SearchSpace = Mapping[str, Distribution]

# The space of an optimizer that declares none: lr alone, two decades centred on its default.
FALLBACK_SPACE: dict[str, Distribution] = {"lr": AroundDefault(10.0)}


def describe(space: SearchSpace) -> dict[str, str]:
    """Each dimension's distribution in words (for `nightbench list optimizers`, configs, the report)."""
    return {name: dist.describe() for name, dist in space.items()}


def bind(space: SearchSpace, defaults: Mapping[str, Any]) -> dict[str, Distribution]:
    """The space with every `AroundDefault` made concrete around this run's defaults."""
    return {name: dist.around(defaults.get(name), name) if isinstance(dist, AroundDefault) else dist
            for name, dist in space.items()}


def check_space(space: Mapping[str, Any], accepted: Mapping[str, Any], optimizer: str) -> dict[str, Distribution]:
    """Validate a declared space: known names, distributions, and bounds the hyperparameter accepts.

    `accepted` maps each hyperparameter name to its declaration (with `.validate`)."""
    if not isinstance(space, Mapping) or not space:
        raise SearchSpaceError(f"optimizer '{optimizer}': search_space must be a non-empty dict of "
                               "hyperparameter name -> distribution")
    out = {}
    for name, dist in space.items():
        if not isinstance(dist, (LogUniform, Uniform, OneMinusLogUniform, Choice, AroundDefault)):
            raise SearchSpaceError(f"optimizer '{optimizer}': search_space['{name}'] is {dist!r}; expected "
                                   "LogUniform, Uniform, OneMinusLogUniform, Choice or AroundDefault")
        if name == WARMUP_FRACTION:
            if isinstance(dist, (AroundDefault, OneMinusLogUniform)) or any(not 0 <= v <= 1 for v in _ends(dist)):
                raise SearchSpaceError(f"optimizer '{optimizer}': {WARMUP_FRACTION} must be a Uniform, LogUniform or "
                                       "Choice within [0, 1]")
        elif name not in accepted:
            raise SearchSpaceError(f"optimizer '{optimizer}': search_space names '{name}', which is not one of "
                                   f"its hyperparameters ({', '.join(accepted)}) nor '{WARMUP_FRACTION}'")
        else:
            for end in _ends(dist):  # every value the space can produce must be accepted
                accepted[name].validate(end)
        out[name] = dist
    return out


def _ends(dist: Distribution) -> tuple:
    if isinstance(dist, Choice):
        return dist.values
    if isinstance(dist, AroundDefault):
        return ()
    return (dist.low, dist.high)


def draw(space: Mapping[str, Distribution], count: int, seed: int) -> list[dict[str, Any]]:
    """`count` points of a scrambled Halton sequence (seed `seed`) mapped into a bound space.

    The same seed gives the same points; dimensions are taken in the space's declared order."""
    if count <= 0:
        return []
    from scipy.stats import qmc  # scipy is heavy: loaded only when a search is planned

    names = list(space)
    points = qmc.Halton(d=len(names), scramble=True, seed=seed).random(count)
    return [{name: space[name].value(float(u)) for name, u in zip(names, point)} for point in points]


def trials(space: Mapping[str, Distribution], budget: int, seed: int) -> list[dict[str, Any]]:
    """A budget of trials: trial 0 is the default (no override), then budget - 1 quasi-random points."""
    if budget < 1:
        raise SearchSpaceError(f"a tuning budget must be at least 1 trial (got {budget})")
    return [{}] + draw(space, budget - 1, seed)


# Building blocks the builtin spaces share, so that optimizers of one kind are searched alike.
# lr: two decades centred on the suite's default, the same width for every optimizer.
LR_AROUND_DEFAULT = AroundDefault(10.0)
# Momentum / first-moment decay: 1 - beta from 0.01 to 0.5 (the usual 0.9 sits inside).
MOMENTUM = OneMinusLogUniform(0.5, 0.99)
# Adam-style second-moment decay: 1 - beta2 from 1e-4 to 0.1 (0.999 inside).
SECOND_MOMENT = OneMinusLogUniform(0.9, 0.9999)
# Weight decay added to the gradient (L2; SGD, LARS, the normalized optimizers): 1e-6 .. 0.1
# (SGD's 1e-4 on ResNet-50 and LARS's 0.01 on BERT inside).
COUPLED_DECAY = LogUniform(1e-6, 1e-1)
# Decoupled weight decay, multiplied by lr in the update (AdamW, LAMB): 1e-4 .. 1.
DECOUPLED_DECAY = LogUniform(1e-4, 1.0)
# Warmup as a fraction of the schedule, log-uniform from 0.5% to 30%: warmups span orders of magnitude
# (BERT-Base's 10k of 500k steps is 2%, the small BERT's 10%, ResNet-50's 5 of 90 epochs 5.6%).
WARMUP = LogUniform(0.005, 0.3)
