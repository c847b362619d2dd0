"""The shared test problem of the normalized optimizers' conformance tests (nsgd, nigt, nigt_adaptive).

Four float64 tensors; the last one goes into the "excluded" group (no weight decay, no normalization,
lr x EXCLUDED_LR_MULTIPLIER), as biases and LayerNorm weights do under the paper's recipe. The naive
references in the test files and the packaged optimizers see exactly the same gradients.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

SHAPES = [(5, 4), (7,), (2, 3, 2), (6,)]  # the last tensor goes into the excluded group
EXCLUDED_LR_MULTIPLIER = 10.0
STEPS = 200


class NoisyProblem:
    """Gradients of a random nonlinear objective (quadratic + sine terms) plus seeded noise.

    The noise is seeded by the step, and by the half-batch for two-gradient optimizers (`half` 0 or 1).
    """

    def __init__(self, seed: int, noise: float = 0.3):
        gen = torch.Generator().manual_seed(seed)
        self.seed, self.noise, self.mats, self.offsets = seed, noise, [], []
        for shape in SHAPES:
            n = math.prod(shape)
            q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
            self.mats.append(q @ torch.diag(torch.rand(n, generator=gen, dtype=torch.float64) * 2) @ q.T)
            self.offsets.append(torch.randn(shape, generator=gen, dtype=torch.float64))

    def initial(self, dtype=torch.float64) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed + 1)
        return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SHAPES]

    def grads(self, ws, step: int, half: int | None = None) -> list[torch.Tensor]:
        stream = step if half is None else 2 * step + half
        gen = torch.Generator().manual_seed(self.seed * 100_003 + stream)
        out = []
        for w, a, b in zip(ws, self.mats, self.offsets):
            w64 = w.double()
            g = (a @ w64.reshape(-1)).reshape(w.shape) + b + 0.5 * torch.sin(3 * w64)
            out.append((g + self.noise * torch.randn(w.shape, generator=gen, dtype=torch.float64)).to(w.dtype))
        return out


def lr_schedule(step: int) -> float:
    """Warmup then decay: the learning rate changes every step."""
    return min(1.0, (step + 1) / 20) * (1.0 - step / (STEPS + 50))


def make_groups(params, weight_decay: float) -> list[dict]:
    """The adapted group (all tensors but the last) and the excluded group (the last)."""
    return [
        {"params": params[:-1], "weight_decay": weight_decay, "layer_adaptation": True},
        {"params": params[-1:], "weight_decay": 0.0, "layer_adaptation": False},
    ]


def set_group_lrs(optimizer, base_lr: float, step: int) -> None:
    """What a schedule does to the two groups at a step."""
    for group, multiplier in zip(optimizer.param_groups, (1.0, EXCLUDED_LR_MULTIPLIER)):
        group["lr"] = base_lr * multiplier * lr_schedule(step)


def group_lrs(base_lr: float, step: int) -> list[float]:
    """Per-tensor lr at a step, for the naive references: the regular group's, x10 for the excluded tensor."""
    lr = base_lr * lr_schedule(step)
    return [lr] * (len(SHAPES) - 1) + [lr * EXCLUDED_LR_MULTIPLIER]


def naive_step_factors(directions, weights, norm: str, weight_norm_scaling: bool) -> list[float]:
    """r_i straight from the definitions: adapted tensors only, 1 for the excluded one.

    r_i = (||w|| if weight-norm scaling and ||w|| > 0 else 1) / ||direction||, with the norms taken per
    tensor ('layer') or over all adapted tensors together ('global'); a zero direction takes no step.
    """
    adapted = range(len(SHAPES) - 1)
    if norm == "global":
        d = math.sqrt(sum(float((directions[i] ** 2).sum()) for i in adapted))
        w = math.sqrt(sum(float((weights[i] ** 2).sum()) for i in adapted))
        dn, wn = [d] * len(adapted), [w] * len(adapted)
    else:
        dn = [float(directions[i].norm()) for i in adapted]
        wn = [float(weights[i].norm()) for i in adapted]
    factors = [0.0 if d == 0 else (w if (weight_norm_scaling and w > 0) else 1.0) / d for d, w in zip(dn, wn)]
    return factors + [1.0]


def relative_error(actual, expected) -> float:
    """Largest absolute difference, relative to the largest entry of `expected`."""
    scale = max(float(e.abs().max()) for e in expected)
    return max(float((a - e).abs().max()) for a, e in zip(actual, expected)) / scale


# --- The layer-wise baselines (sgd, adam, lars, lamb): a point-dependent gradient, an oscillating lr. ---


def point_gradient(w: torch.Tensor, index: int, step: int) -> torch.Tensor:
    """A gradient that depends on the point (so an error would propagate) plus noise seeded by (step, tensor)."""
    gen = torch.Generator().manual_seed(1000 * step + index)
    return 0.3 * w + torch.sin(w) + 0.5 * torch.randn(w.shape, generator=gen, dtype=torch.float64)


def oscillating_schedule(step: int, base: float) -> float:
    """A time-varying learning rate (warmup-like ramp, then oscillation)."""
    return base * min(1.0, (step + 1) / 20) * (1.0 + 0.5 * math.sin(0.3 * step))


def run_packaged(optimizer, params, steps: int, base_lrs, start: int = 0) -> None:
    """`steps` steps of the packaged optimizer on point_gradient, each group on its own scheduled lr."""
    for t in range(start, start + steps):
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = oscillating_schedule(t, base)
        for i, p in enumerate(params):
            p.grad = point_gradient(p.detach(), i, t)
        optimizer.step()


def reference_run(params, groups, base_lrs, steps: int, update) -> list[torch.Tensor]:
    """A naive reference on point_gradient and the oscillating lr, with one slot per tensor (zero at first):
    `update(w, slot, g, lr, group)` returns the tensor's new (w, slot), written plainly with fresh tensors."""
    w = [p.detach().clone() for p in params]
    slots = [torch.zeros_like(x) for x in w]
    index = {id(p): i for i, p in enumerate(params)}
    for t in range(steps):
        grads = [point_gradient(w[i], i, t) for i in range(len(w))]
        for group, base in zip(groups, base_lrs):
            lr = oscillating_schedule(t, base)
            for p in group["params"]:
                i = index[id(p)]
                w[i], slots[i] = update(w[i], slots[i], grads[i], lr, group)
    return w


def max_relative_error(got, expected) -> float:
    """Largest per-tensor relative error ||got - expected|| / ||expected||."""
    return max(((a.detach() - b).norm() / b.norm()).item() for a, b in zip(got, expected))


def assert_resume_is_bit_identical(build, params, steps: int = 30) -> None:
    """Run 2 x `steps`; separately, restore the state_dict saved halfway into a fresh optimizer and
    finish there: both must end on exactly the same parameters."""
    optimizer = build(params)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    run_packaged(optimizer, params, steps, base_lrs)
    saved_params = [p.detach().clone() for p in params]
    saved_state = copy.deepcopy(optimizer.state_dict())
    run_packaged(optimizer, params, steps, base_lrs, start=steps)

    resumed = [torch.nn.Parameter(p.clone()) for p in saved_params]
    restored = build(resumed)
    restored.load_state_dict(saved_state)
    run_packaged(restored, resumed, steps, base_lrs, start=steps)
    for a, b in zip(params, resumed):
        assert torch.equal(a.detach(), b.detach())


# Both bodies of each optimizer written here: foreach=False (one tensor at a time, the reference)
# and foreach=True (multi-tensor); the conformance tests run each against the naive formulas.
BODIES = pytest.mark.parametrize("foreach", [False, True], ids=["single", "multi"])
