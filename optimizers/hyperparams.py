"""Declared hyperparameters: a name, a default, a type and the accepted range, with validation.

Every registered optimizer declares its hyperparameters this way so that the CLI can list them,
`--set` can parse them, the tuner knows their search space, and bad values fail with a message
that names the parameter and what would be accepted.

Each fact has one home. A default lives in the optimizer's signature (its `__init__`, or the
factory function), as in any torch optimizer; a declaration adds what a signature cannot say (the
type, the range, the help) and leaves `default` unset. `with_signature_defaults` joins the two at
registration and refuses a declaration that disagrees with the signature. Validation has one code
path, `resolve` (a whole set of values) and `validate_values` (the keys present in one param
group), both ending in `Hyperparameter.validate` and the optimizer's cross-parameter `check`.
Plugins declare nothing: `infer_from_signature` reads types and safe ranges from their defaults.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import InputError

# Beyond this magnitude no float hyperparameter of an optimizer is usable (a learning rate, a
# decay, an epsilon or a clamp of 1e308 overflows at the first step); a declaration with an
# explicit bound beyond it keeps its own bound.
MAX_MAGNITUDE = 1e6


class HyperparameterError(InputError):
    """A hyperparameter value or name that the optimizer does not accept."""


class _Unset:
    """The default of a declaration that takes its default from the optimizer's signature."""

    def __repr__(self) -> str:
        return "<from the signature>"


UNSET: Any = _Unset()

# Cross-parameter constraints of an optimizer: given all its values, raise HyperparameterError.
Check = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter of an optimizer.

    `low`/`high` bound numeric values (inclusive unless `*_open`); `choices` restricts strings;
    `kind` is one of float, int, bool, str, tuple (a tuple of floats, e.g. Adam's betas).
    Floats must be finite, and where a side has no bound, at most MAX_MAGNITUDE in size.
    `default` is UNSET in builtin declarations: registration fills it in from the signature.
    """

    name: str
    default: Any = UNSET
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
            finite = ""
            if self.kind is not int and (self.low is None or self.high is None):
                finite = f" (finite, and at most {MAX_MAGNITUDE:g} in magnitude)"
            elif self.kind is not int:
                finite = " (finite)"
            if self.low is None and self.high is None:
                return what + finite
            return f"{what} in {lo}{low}, {high}{hi}{finite}"
        return f"a {self.kind.__name__}"

    def _fail(self, value: Any) -> HyperparameterError:
        return HyperparameterError(
            f"invalid value {value!r} for hyperparameter '{self.name}': expected {self.accepted()}"
        )

    def _check_number(self, x: float, original: Any) -> None:
        if isinstance(x, float) and not math.isfinite(x):
            raise self._fail(original)
        if isinstance(x, float) and (
            (self.low is None and x < -MAX_MAGNITUDE) or (self.high is None and x > MAX_MAGNITUDE)
        ):
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
        if self.default is UNSET:
            raise ValueError(f"hyperparameter '{self.name}' has no default yet (it is filled in at registration)")
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
def lr_param(default: float = UNSET, help: str = "base learning rate (multiplied by the schedule)") -> Hyperparameter:
    return Hyperparameter("lr", default, float, low=0.0, help=help)


def weight_decay_param(default: float = UNSET, help: str = "weight decay") -> Hyperparameter:
    return Hyperparameter("weight_decay", default, float, low=0.0, help=help)


def beta_param(name: str, default: float = UNSET, help: str = "") -> Hyperparameter:
    return Hyperparameter(name, default, float, low=0.0, high=1.0, high_open=True, help=help)


def eps_param(default: float = UNSET) -> Hyperparameter:
    return Hyperparameter("eps", default, float, low=0.0, help="added to denominators for stability")


def resolve(
    declared: Sequence[Hyperparameter], given: Mapping[str, Any], optimizer_name: str, check: Check | None = None,
) -> dict[str, Any]:
    """Fill defaults, validate every value, and reject unknown names (with the accepted ones)."""
    by_name = {h.name: h for h in declared}
    unknown = [k for k in given if k not in by_name]
    if unknown:
        raise HyperparameterError(
            f"optimizer '{optimizer_name}' has no hyperparameter {', '.join(repr(u) for u in unknown)}; "
            f"accepted: {', '.join(sorted(by_name)) or '(none)'}"
        )
    out = {h.name: h.default for h in declared}
    out.update(validate_values(declared, given, optimizer_name, check))
    return out


def validate_values(declared: Sequence[Hyperparameter], values: Mapping[str, Any], optimizer_name: str,
                    check: Check | None = None) -> dict[str, Any]:
    """The declared keys present in `values`, each validated and coerced; other keys are left out.

    `check` sees every declared value (from `values`, else the default) once they are all valid.
    """
    out = {h.name: h.validate(values[h.name]) for h in declared if h.name in values}
    if check is not None:
        try:
            check({**{h.name: h.default for h in declared}, **out})
        except HyperparameterError as exc:
            raise HyperparameterError(f"invalid hyperparameters for '{optimizer_name}': {exc}") from None
    return out


def with_signature_defaults(fn: Callable, declared: Sequence[Hyperparameter] | None) -> tuple[Hyperparameter, ...]:
    """Declarations completed from a constructor's or factory's signature (the home of defaults).

    A declaration without a default takes the signature's; one that has a default must agree with
    the signature (or the signature must have none). Parameters only in the signature are
    inferred as for plugins (`infer_from_signature`). A declared name the signature does not take
    is an error, unless the signature takes **kwargs.
    """
    signature = _hyperparameter_parameters(fn)
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    out = []
    for h in declared or ():
        p = signature.get(h.name)
        if p is None and not takes_kwargs:
            raise HyperparameterError(f"{fn.__qualname__} declares hyperparameter '{h.name}' but does not take it")
        has_default = p is not None and p.default is not inspect.Parameter.empty
        if h.default is UNSET:
            if not has_default:
                raise HyperparameterError(
                    f"hyperparameter '{h.name}' of {fn.__qualname__} has no default: give it one in the signature")
            out.append(replace(h, default=h.validate(p.default)))
        elif has_default and h.validate(p.default) != h.default:
            raise HyperparameterError(
                f"hyperparameter '{h.name}' of {fn.__qualname__} has two defaults: {h.default!r} declared, "
                f"{p.default!r} in the signature; keep the one in the signature")
        else:
            out.append(h)
    out += infer_from_signature(fn, skip={h.name for h in out})
    return tuple(out)


# Keyword arguments that choose an implementation, not a value of the algorithm.
IMPLEMENTATION_ARGUMENTS = ("foreach",)


def _hyperparameter_parameters(fn: Callable) -> dict[str, inspect.Parameter]:
    """The parameters of fn that are hyperparameters: not self, not the first (the params), not
    *args/**kwargs, not implementation choices."""
    parameters = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    return {p.name: p for p in parameters[1:]
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in IMPLEMENTATION_ARGUMENTS}


def infer_from_signature(fn: Callable, skip: Iterable[str] = ()) -> tuple[Hyperparameter, ...]:
    """Declare hyperparameters from a constructor's keyword defaults (for user plugins).

    Types come from the defaults; ranges are unknown except that `lr`, `weight_decay` and `eps`
    must be non-negative and names starting with `beta`/`momentum` lie in [0, 1).
    """
    declared = []
    for p in _hyperparameter_parameters(fn).values():
        if p.name in skip:
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
