"""One unit = one (problem, batch size, lr, replicate): train with the run's optimizer, measure, make a record."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from nightbench.optimizers import evaluation_weights

from ..outcomes import RunState
from . import measure
from .problems import Problem, flat_norm, gradient_variance


@dataclass(frozen=True)
class Unit:
    problem: str
    batch_size: int
    lr: float
    replicate: int

    @property
    def key(self) -> str:
        return f"{self.problem}/b{self.batch_size}/lr{self.lr:.6g}/r{self.replicate}"


def unit_seed(run_seed: int, key: str) -> int:
    """A seed that depends only on the run seed and the unit key (53 bits: exact in any JSON reader)."""
    digest = hashlib.sha256(f"{int(run_seed)}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 53) - 1)


def steps_for(problem: Problem, config: dict[str, Any]) -> tuple[int, int]:
    """(training steps, number of evenly spaced measurements) for a problem's family."""
    if problem.family == "skewed":
        return config["skewed_steps"], config["measurements"]
    if problem.family == "nonconvex":
        return config["nonconvex_steps"], config["measurements"]
    return config["mlp_steps"], config["mlp_measurements"]


def _finite(params: list[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(p.detach()).all()) for p in params)


def run_unit(
    unit: Unit,
    problem: Problem,
    config: dict[str, Any],
    run_seed: int,
    make_optimizer: Callable[..., torch.optim.Optimizer],
    gradients_per_step: int,
) -> dict[str, Any]:
    """Train one unit from the problem's start and return its `sbv_unit` record."""
    key = unit.key
    seed = unit_seed(run_seed, key)
    rng = torch.Generator().manual_seed(seed)
    total, count = steps_for(problem, config)
    checkpoints = measure.curve_checkpoints(total, config["curve_points"])
    to_measure = set(measure.measurement_steps(total, count, config["curve_points"]))

    params = problem.initial_params()
    initial = [p.detach().clone() for p in params]
    optimizer = make_optimizer(params, lr=unit.lr)
    half = max(1, unit.batch_size // 2)

    def closure() -> torch.Tensor:
        # Two-gradient optimizers call this twice per step: two independent half batches at one point.
        grads, loss = problem.sample_gradient(params, half, rng)
        for p, g in zip(params, grads):
            p.grad = g
        return torch.tensor(loss, dtype=torch.float64)

    measurements: list[tuple[int, float]] = []
    diverged_step = None
    for step in range(1, total + 1):
        if gradients_per_step == 2:
            optimizer.step(closure)
        else:
            grads, _loss = problem.sample_gradient(params, unit.batch_size, rng)
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()
        if step in to_measure:
            with evaluation_weights(optimizer):
                value = problem.measure(params, initial, unit.lr, step) if _finite(params) else math.nan
            if not math.isfinite(value):
                diverged_step = step
                break
            measurements.append((step, value))

    record: dict[str, Any] = {
        "kind": "sbv_unit", "unit": key, "problem": unit.problem, "batch_size": unit.batch_size,
        "lr": unit.lr, "replicate": unit.replicate, "unit_seed": seed, "steps": total,
        "measure": problem.measure_name, "status": "ok" if diverged_step is None else RunState.DIVERGED.value,
        "diverged_step": diverged_step,
    }
    if diverged_step is not None:
        return {**record, "floor": None, "final_grad_norm": None, "curve": measure.bucket_curve(measurements,
                checkpoints), "slope": None, "slope_ci": None, "grad_variance": None}

    curve = measure.bucket_curve(measurements, checkpoints)
    slope, slope_ci = measure.fit_exponent(curve, from_step=config["slope_from_fraction"] * total)
    # The variance is measured at the reported iterate with its own generator, so it does not
    # disturb the training noise and is the same whichever order units run in.
    variance_rng = torch.Generator().manual_seed(unit_seed(run_seed, key + "/variance"))
    with evaluation_weights(optimizer):
        final_norm = flat_norm(problem.true_gradient(params))
        variance = gradient_variance(problem, params, unit.batch_size, config["variance_draws"], variance_rng)
    return {
        **record,
        "floor": measure.floor_of(measurements, total, config["floor_fraction"]),
        "final_grad_norm": final_norm,
        "curve": curve,
        "slope": slope,
        "slope_ci": slope_ci,
        "grad_variance": variance,
    }
