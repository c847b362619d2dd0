"""The presets of the small-batch variance suite and the validation of every config key.

One run sweeps problems x batch sizes x learning rates x replicates. A unit's learning rate is
    lr = run lr x lr_scale_<family> x multiplier       (multiplier from `lr_multipliers`)
where the run lr is the optimizer's resolved `lr` (the suite's default per optimizer, or --set lr)
and lr_scale_skewed is 1. The scales exist because an SGD step is lr x gradient while a
normalized step has length lr: the same lr means very different steps on the MLP.
"""

from __future__ import annotations

import math
from typing import Any

from ..config import SuiteConfigError
from .problems import PROBLEM_NAMES

ALL_PROBLEMS = list(PROBLEM_NAMES)

_COMMON: dict[str, Any] = {
    "problems": ALL_PROBLEMS,
    "skew_p": 0.2,  # the paper's p in (0, 1/2): noise p w.p. 1-p, p-1 w.p. p
    "skewed_center": 1.0,  # the quadratic's minimum, and where the flat problem starts
    "skewed_distance": 1.0,  # the quadratic starts this far from its minimum
    "nonconvex_dim": 32,
    "nonconvex_sigma": 1.0,  # E||noise||^2 = sigma^2 per draw
    "nonconvex_curvature": 2.0,  # s: L = 1 + s, rho = s
    "mlp_hidden": 32,
    "lr_scale_nonconvex": 1.0,
    "lr_scale_mlp": 1.0,
    "floor_fraction": 0.25,  # the floor is the mean over this final fraction of the run
    "slope_from_fraction": 0.1,  # the exponent in T is fitted on checkpoints from this fraction of T on
    "curve_points": 50,
    "variance_draws": 64,
    "problem_seed": 0,  # the problem instances (rotation, start, MLP init); the run seed drives the noise
}

PRESETS: dict[str, dict[str, Any]] = {
    "ci": {
        **_COMMON,
        "batch_sizes": [1, 16, 256],
        "lr_multipliers": [1.0, 0.1],
        "replicates": 1,
        "skewed_steps": 3000,
        "nonconvex_steps": 400,
        "mlp_steps": 60,
        "measurements": 200,
        "mlp_measurements": 6,
        "variance_draws": 16,
    },
    "small": {
        **_COMMON,
        "batch_sizes": [1, 4, 16, 64, 256],
        "lr_multipliers": [1.0, 0.3, 0.1],
        "replicates": 2,
        "skewed_steps": 4000,
        "nonconvex_steps": 3000,
        "mlp_steps": 600,
        "measurements": 400,
        "mlp_measurements": 30,
    },
    "paper": {
        **_COMMON,
        "batch_sizes": [1, 2, 4, 8, 16, 32, 64, 128, 256],
        "lr_multipliers": [1.0, 0.3, 0.1, 0.03, 0.01],
        "replicates": 3,
        "skewed_steps": 40000,
        "nonconvex_steps": 20000,
        "mlp_steps": 4000,
        "measurements": 1000,
        "mlp_measurements": 100,
        "variance_draws": 256,
    },
}


def _fail(key: str, value: Any, accepted: str) -> SuiteConfigError:
    return SuiteConfigError(f"invalid small_batch_variance setting {key}={value!r}: expected {accepted}")


def _number(key: str, value: Any, *, integer: bool = False, low: float | None = None,
            high: float | None = None, low_open: bool = False, high_open: bool = False) -> float | int:
    accepted = "an integer" if integer else "a number"
    if low is not None or high is not None:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        accepted += f" in {'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
    if isinstance(value, bool):
        raise _fail(key, value, accepted)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _fail(key, value, accepted) from None
    if not math.isfinite(x) or (integer and x != int(x)):
        raise _fail(key, value, accepted)
    if low is not None and (x < low or (low_open and x == low)):
        raise _fail(key, value, accepted)
    if high is not None and (x > high or (high_open and x == high)):
        raise _fail(key, value, accepted)
    return int(x) if integer else x


def _list(key: str, value: Any, accepted: str) -> list:
    if isinstance(value, str):  # a --set value that the engine left as text: "1,4,16" or "[1,4,16]"
        value = [v.strip().strip("'\"") for v in value.strip("[] ").split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(key, value, f"a non-empty list of {accepted}")
    return list(value)


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """A typed copy of the suite's keys (other keys, e.g. the engine's, are ignored), or SuiteConfigError."""
    missing = [k for k in PRESETS["small"] if k not in config]
    if missing:
        raise SuiteConfigError(f"small_batch_variance config lacks keys {missing}")
    c = dict(config)
    problems = _list("problems", c["problems"], f"problem names from {ALL_PROBLEMS}")
    unknown = [p for p in problems if p not in ALL_PROBLEMS]
    if unknown or len(set(problems)) != len(problems):
        raise _fail("problems", c["problems"], f"distinct names from {ALL_PROBLEMS}")
    c["problems"] = problems
    sizes = [_number("batch_sizes", b, integer=True, low=1, high=65536)
             for b in _list("batch_sizes", c["batch_sizes"], "integers >= 1")]
    if len(set(sizes)) != len(sizes):
        raise _fail("batch_sizes", c["batch_sizes"], "distinct integers >= 1")
    c["batch_sizes"] = sorted(sizes)
    c["lr_multipliers"] = [_number("lr_multipliers", m, low=0, low_open=True)
                           for m in _list("lr_multipliers", c["lr_multipliers"], "numbers > 0")]
    if len(set(c["lr_multipliers"])) != len(c["lr_multipliers"]):
        raise _fail("lr_multipliers", c["lr_multipliers"], "distinct numbers > 0")
    c["skew_p"] = _number("skew_p", c["skew_p"], low=0, high=0.5, low_open=True, high_open=True)
    c["skewed_center"] = _number("skewed_center", c["skewed_center"])
    c["skewed_distance"] = _number("skewed_distance", c["skewed_distance"])
    for key in ("nonconvex_sigma", "lr_scale_nonconvex", "lr_scale_mlp"):
        c[key] = _number(key, c[key], low=0, low_open=True)
    c["nonconvex_curvature"] = _number("nonconvex_curvature", c["nonconvex_curvature"], low=0)
    for key in ("nonconvex_dim", "mlp_hidden", "replicates", "skewed_steps", "nonconvex_steps", "mlp_steps",
                "measurements", "mlp_measurements", "variance_draws"):
        c[key] = _number(key, c[key], integer=True, low=1)
    c["curve_points"] = _number("curve_points", c["curve_points"], integer=True, low=3, high=1000)
    c["floor_fraction"] = _number("floor_fraction", c["floor_fraction"], low=0, high=1, low_open=True)
    c["slope_from_fraction"] = _number("slope_from_fraction", c["slope_from_fraction"], low=0, high=1,
                                       high_open=True)
    c["problem_seed"] = _number("problem_seed", c["problem_seed"], integer=True, low=0)
    return c
