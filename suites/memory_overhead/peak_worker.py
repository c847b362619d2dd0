"""Subprocess entry point: the peak memory of one training step of one (model, optimizer) pair.

    python -m nightbench.suites.memory_overhead.peak_worker '<request JSON>'

The request names the model family and its config, the device, the seed, the optimizer with its
resolved hyperparameters and param-group policy, and any optimizer files to load (plugins). The
worker builds model and optimizer, runs a warm-up step so the optimizer state exists, resets the
peak counter, runs one measured step and prints one line `NIGHTBENCH_PEAK_RESULT {json}`.

`extra_step_bytes` / `extra_warmup_bytes` hold a buffer of that size alive during the measured
step / the warm-up step: the tests use them to show the measurement sees (and only sees) the step.

For an optimizer with two bodies (a `foreach` argument), the worker then measures each body on its
own (a fresh optimizer, warmed up, then one training step and one optimizer.step()), as the
`*_single` / `*_multi` fields (the in-process record's `body` names the one the run itself used).
"""

from __future__ import annotations

import gc
import json
import sys
from typing import Any

import torch

from nightbench.optimizers import ParamGroupPolicy, create, get_spec, load_optimizer_file
from nightbench.optimizers.registry import takes_foreach

from ..outcomes import ExitCode
from .measure import make_train_step
from .models import build_model_under_test
from .peak import (
    BODIES,
    BODY_FIELDS,
    CPU_METHOD,
    CUDA_METHOD,
    RESULT_PREFIX,
    cpu_peak_unavailable_reason,
    read_status_bytes,
    reset_high_water_mark,
    unavailable,
)

REQUIRED_KEYS = ("family", "config", "device", "seed", "optimizer", "hyperparameters", "policy")


def measure_peak(request: dict[str, Any]) -> dict[str, Any]:
    """Build, warm up, and measure one training step's peak; also optimizer.step()'s own peak."""
    missing = [k for k in REQUIRED_KEYS if k not in request]
    if missing:
        raise ValueError(f"peak request lacks {missing}; required keys: {', '.join(REQUIRED_KEYS)}")
    device = torch.device(request["device"])
    if device.type == "cpu":
        reason = cpu_peak_unavailable_reason()
        if reason is not None:
            return unavailable(reason, CPU_METHOD)
    for path in request.get("optimizer_files", []):
        load_optimizer_file(path)
    spec = get_spec(request["optimizer"])
    unit = build_model_under_test(request["family"], request["config"], device, int(request["seed"]))
    policy = ParamGroupPolicy.from_dict(request["policy"])
    optimizer = create(spec.name, unit.model, policy=policy, **request["hyperparameters"])
    counter = _CudaCounter(device) if device.type == "cuda" else _CpuCounter()

    result = _measure(unit, optimizer, spec, counter, extra_step_bytes=int(request.get("extra_step_bytes", 0)),
                      extra_warmup_bytes=int(request.get("extra_warmup_bytes", 0)))
    result.update({field: None for field in BODY_FIELDS})
    if takes_foreach(spec):
        for body in BODIES:
            del optimizer
            _release(unit, device)
            optimizer = create(spec.name, unit.model, policy=policy, foreach=body == "multi", **request["hyperparameters"])
            figures = _measure(unit, optimizer, spec, counter)
            result[f"peak_step_increment_bytes_{body}"] = figures["peak_step_increment_bytes"]
            result[f"optimizer_step_peak_increment_bytes_{body}"] = figures["optimizer_step_peak_increment_bytes"]
    return result


def _measure(unit, optimizer: torch.optim.Optimizer, spec, counter, extra_step_bytes: int = 0,
             extra_warmup_bytes: int = 0) -> dict[str, Any]:
    """Warm up (the state then exists, as at every later step), measure one training step's peak,
    then optimizer.step() alone (two-gradient optimizers compute their gradients inside: not alone)."""
    train_step = make_train_step(unit, optimizer, spec.gradients_per_step)
    warmup_buffer = _resident_buffer(extra_warmup_bytes, unit_device(unit))
    train_step()
    del warmup_buffer
    optimizer.zero_grad(set_to_none=True)
    gc.collect()

    # One full step: gradients, activations and the optimizer's temporaries on top of params + state.
    before = counter.start()
    step_buffer = _resident_buffer(extra_step_bytes, unit_device(unit))
    train_step()
    del step_buffer
    peak = counter.peak()

    step_only_before = step_only_peak = None
    if spec.gradients_per_step == 1:
        optimizer.zero_grad(set_to_none=True)
        unit.loss(unit.model, unit.batch).backward()
        gc.collect()  # the autograd graph is gone; do not count its release as the step's
        step_only_before = counter.start()
        optimizer.step()
        step_only_peak = counter.peak()

    return {
        "peak_step_bytes": peak,
        "rss_before_step": before,
        "peak_step_increment_bytes": peak - before,
        "optimizer_step_peak_bytes": step_only_peak,
        "optimizer_step_peak_increment_bytes": (
            None if step_only_peak is None else step_only_peak - step_only_before),
        "peak_method": counter.method,
        "peak_unavailable_reason": None,
    }


def unit_device(unit) -> torch.device:
    return next(unit.model.parameters()).device


def _release(unit, device: torch.device) -> None:
    """Drop gradients and collect, so the next optimizer starts from the model alone."""
    unit.model.zero_grad(set_to_none=True)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class _CpuCounter:
    method = CPU_METHOD

    def start(self) -> int:
        """Resident bytes now; the high-water mark restarts from here."""
        resident = read_status_bytes("VmRSS")
        reset_high_water_mark()
        return resident

    def peak(self) -> int:
        return read_status_bytes("VmHWM")


class _CudaCounter:
    method = CUDA_METHOD

    def __init__(self, device: torch.device):
        self.device = device

    def start(self) -> int:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return torch.cuda.memory_allocated(self.device)

    def peak(self) -> int:
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device)


def _resident_buffer(n_bytes: int, device: torch.device) -> torch.Tensor | None:
    """A tensor of n_bytes whose every page is written (so it is resident), or None for 0."""
    if n_bytes <= 0:
        return None
    return torch.ones(n_bytes // 4, dtype=torch.float32, device=device)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m nightbench.suites.memory_overhead.peak_worker '<request JSON>'", file=sys.stderr)
        return ExitCode.BAD_INPUT
    result = measure_peak(json.loads(args[0]))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
