"""In-process measurements of one (model, optimizer) pair: the training step, its timings, the state size.

A training step is what the run engine does: clear gradients, forward, backward, `optimizer.step()`.
Optimizers that take two gradients per step (`spec.gradients_per_step == 2`) get `step(closure)`;
the closure clears the gradients and runs forward/backward on one half of the batch per call, as
the engine does with its two half-batches.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from nightbench.optimizers.memory import state_bytes, state_tensor_summary

from .peak import BODIES

from .models import ModelUnderTest


def parameter_footprint(model: torch.nn.Module) -> tuple[int, int]:
    """(number of parameters, bytes they occupy); tied parameters count once, as `parameters()` yields them."""
    params = [p for p in model.parameters() if p.requires_grad]
    return sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)


def make_train_step(unit: ModelUnderTest, optimizer: torch.optim.Optimizer,
                    gradients_per_step: int) -> Callable[[], None]:
    """A function running one full training step on the unit's batch with this optimizer."""
    if gradients_per_step == 1:
        def train_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            unit.loss(unit.model, unit.batch).backward()
            optimizer.step()
        return train_step
    if gradients_per_step == 2:
        def train_step() -> None:
            calls = iter(unit.halves)

            def closure() -> torch.Tensor:
                half = next(calls, unit.halves[1])  # a third call (none expected) reuses the second half
                optimizer.zero_grad(set_to_none=True)
                loss = unit.loss(unit.model, half)
                loss.backward()
                return loss.detach()

            optimizer.step(closure)
        return train_step
    raise ValueError(f"unsupported gradients_per_step={gradients_per_step!r}: expected 1 or 2")


def make_optimizer_step(unit: ModelUnderTest, optimizer: torch.optim.Optimizer,
                        gradients_per_step: int) -> Callable[[], None]:
    """`optimizer.step()` alone, on the gradients currently held by the model (call after a training step).

    Two-gradient optimizers need a closure; it restores the saved gradients instead of recomputing
    them, so their figure includes one gradient copy per closure call (2 x 4 bytes per parameter).
    """
    if gradients_per_step == 1:
        return optimizer.step
    params = [p for p in unit.model.parameters() if p.grad is not None]
    saved = [p.grad.detach().clone() for p in params]

    def closure() -> torch.Tensor:
        for p, g in zip(params, saved):
            if p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.copy_(g)
        return torch.zeros(())

    return lambda: optimizer.step(closure)


def median_seconds(fn: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Median wall time of `repeats` calls of fn (CUDA is synchronized around each call)."""
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_in_process(unit: ModelUnderTest, optimizer: torch.optim.Optimizer, gradients_per_step: int,
                       train_repeats: int, optimizer_repeats: int, device: torch.device) -> dict:
    """Warm-up step, timed training steps, state bytes at steady state, timed optimizer steps."""
    train_step = make_train_step(unit, optimizer, gradients_per_step)
    train_step()  # warm-up: creates the optimizer state and any lazy buffers
    train_time = median_seconds(train_step, train_repeats, device)
    # State is measured after several steps: an optimizer that creates a slot lazily has it by now.
    state = state_bytes(optimizer)
    optimizer_time = median_seconds(make_optimizer_step(unit, optimizer, gradients_per_step),
                                    optimizer_repeats, device)
    params, param_bytes = parameter_footprint(unit.model)
    return {
        "params": params,
        "param_bytes": param_bytes,
        "state_bytes": state,
        "state_bytes_per_param": state / params,
        "param_copies": state / param_bytes,
        "state_breakdown": state_tensor_summary(optimizer),  # per state key: tensors, bytes, dtypes, scalars
        "train_step_time": train_time,
        "optimizer_step_time": optimizer_time,
        "optimizer_step_time_includes_grad_restore": gradients_per_step == 2,
        "body": optimizer_body(optimizer),
    }


def optimizer_body(optimizer: torch.optim.Optimizer) -> str | None:
    """'single' or 'multi': the body an optimizer written here runs; None for others (torch's own
    SGD/Adam pick theirs, plugins have one)."""
    uses_multi = getattr(optimizer, "uses_multi_tensor", None)
    return None if uses_multi is None else BODIES[int(uses_multi())]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
