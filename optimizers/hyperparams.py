"""Declared hyperparameters: a name, a default, a type and the accepted range, with validation.

Every registered optimizer declares its hyperparameters this way so that the CLI can list them,
`--set` can parse them, the tuner knows their search space, and bad values fail with a message
that names the parameter and what would be accepted.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import InputError


class HyperparameterError(InputError):
    """A hyperparameter value or name that the optimizer does not accept."""


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter of an optimizer.

    `low`/`high` bound numeric values (inclusive unless `*_open`); `choices` restricts strings;
    `kind` is one of float, int, bool, str, tuple (a tuple of floats, e.g. Adam's betas).
    """

    name: str
    default: Any
    kind: type = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    help: str = ""
    # Each element of a tuple-valued parameter obeys low/high (betas in [0, 1)).
    length: int | None = None

    def accepted(self) -> str:
        """A human-readable statement of what values are accepted."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind in (float, int, tuple):
            lo = "(" if self.low_open else "["
            hi = ")" if self.high_open else "]"
            low = "-inf" if self.low is None else f"{self.low:g}"
            high = "inf" if self.high is None else f"{self.high:g}"
            what = {float: "a number", int: "an integer", tuple: f"{self.length or 'a'} numbers each"}[self.kind]
            if self.low is None and self.high is None:
                return what
            return f"{what} in {lo}{low}, {high}{hi}"
        return f"a {self.kind.__name__}"

    def _fail(self, value: Any) -> HyperparameterError:
        return HyperparameterError(
            f"invalid value {value!r} for hyperparameter '{self.name}': expected {self.accepted()}"
        )

    def _check_number(self, x: float, original: Any) -> None:
        if isinstance(x, float) and math.isnan(x):
            raise self._fail(original)
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            raise self._fail(original)
        if self.high is not None and (x > self.high or (self.high_open and x == self.high)):
            raise self._fail(original)

    def validate(self, value: Any) -> Any:
        """Return `value` coerced to this parameter's type, or raise HyperparameterError."""
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise self._fail(value)
        if self.kind is str:
            if not isinstance(value, str):
                raise self._fail(value)
            if self.choices is not None and value not in self.choices:
                raise self._fail(value)
            return value
        if self.kind is tuple:
            if isinstance(value, str):
                value = [v for v in value.strip("()[] ").split(",") if v.strip()]
            if not isinstance(value, (tuple, list)) or (self.length and len(value) != self.length):
                raise self._fail(value)
            out = []
            for v in value:
                x = _to_number(v, float)
                if x is None:
                    raise self._fail(value)
                self._check_number(x, value)
                out.append(x)
            return tuple(out)
        # numbers
        x = _to_number(value, self.kind)
        if x is None:
            raise self._fail(value)
        self._check_number(x, value)
        if self.choices is not None and x not in self.choices:
            raise self._fail(value)
        return x

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "default": list(self.default) if isinstance(self.default, tuple) else self.default,
            "type": self.kind.__name__,
            "accepted": self.accepted(),
            "help": self.help,
        }


def _to_number(value: Any, kind: type) -> float | int | None:
    """Parse ints/floats strictly: bools and non-numeric strings are rejected."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)):
        # numpy scalars and 0-dim tensors support float()
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
    if kind is int:
        if float(value) != int(value):
            return None
        return int(value)
    return float(value)


# Common declarations shared by many optimizers.
def lr_param(default: float, help: str = "base learning rate (multiplied by the schedule)") -> Hyperparameter:
    return Hyperparameter("lr", default, float, low=0.0, help=help)


def weight_decay_param(default: float = 0.0, help: str = "weight decay") -> Hyperparameter:
    return Hyperparameter("weight_decay", default, float, low=0.0, help=help)


def beta_param(name: str, default: float, help: str) -> Hyperparameter:
    return Hyperparameter(name, default, float, low=0.0, high=1.0, high_open=True, help=help)


def eps_param(default: float) -> Hyperparameter:
    return Hyperparameter("eps", default, float, low=0.0, help="added to denominators for stability")


def resolve(
    declared: Sequence[Hyperparameter], given: Mapping[str, Any], optimizer_name: str
) -> dict[str, Any]:
    """Fill defaults, validate every value, and reject unknown names (with the accepted ones)."""
    by_name = {h.name: h for h in declared}
    unknown = [k for k in given if k not in by_name]
    if unknown:
        raise HyperparameterError(
            f"optimizer '{optimizer_name}' has no hyperparameter {', '.join(repr(u) for u in unknown)}; "
            f"accepted: {', '.join(sorted(by_name)) or '(none)'}"
        )
    out = {}
    for h in declared:
        out[h.name] = h.validate(given[h.name]) if h.name in given else h.default
    return out


def infer_from_signature(fn: Callable, skip: Iterable[str] = ("self", "params")) -> tuple[Hyperparameter, ...]:
    """Declare hyperparameters from a constructor's keyword defaults (for user plugins).

    Types come from the defaults; ranges are unknown except that `lr`, `weight_decay` and `eps`
    must be non-negative and names starting with `beta`/`momentum` lie in [0, 1).
    """
    declared = []
    for p in inspect.signature(fn).parameters.values():
        if p.name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty:
            raise HyperparameterError(
                f"cannot infer hyperparameter '{p.name}' of {fn.__qualname__}: it has no default value"
            )
        d = p.default
        if isinstance(d, bool):
            kind = bool
        elif isinstance(d, int):
            kind = float if p.name in ("lr", "weight_decay", "eps") else int
        elif isinstance(d, float):
            kind = float
        elif isinstance(d, tuple):
            kind = tuple
        elif isinstance(d, str):
            kind = str
        else:
            kind = type(d)
        low = high = None
        high_open = False
        if kind in (float, int) and p.name in ("lr", "weight_decay", "eps"):
            low = 0.0
        if kind in (float, tuple) and (p.name.startswith("beta") or p.name in ("momentum", "betas")):
            low, high, high_open = 0.0, 1.0, True
        declared.append(
            Hyperparameter(p.name, float(d) if kind is float else d, kind, low=low, high=high,
                           high_open=high_open, length=len(d) if kind is tuple else None)
        )
    return tuple(declared)
