"""Kernel launches and host reads of one optimizer step, counted at the aten level (no GPU needed).

    python tests/benchmarks/dispatch_counts.py

A `TorchDispatchMode` sees every aten op that one `step()` dispatches; on a GPU each is at least
one kernel launch. Of those, `aten._local_scalar_dense` is the host read that `.item()`, `float(t)`
and `bool(t)` make: a device synchronization on a GPU. The counts are deterministic (machine load
does not change them), so the table is a benchmark that can be run anywhere.

Models: blocks of Linear + LayerNorm (4 tensors each), 12 blocks = 48 tensors and 50 blocks =
200 tensors (BERT-Base has about 200). Every nightbench optimizer is counted in both bodies
(`foreach=False`: one tensor at a time, `foreach=True`: multi-tensor), next to torch's SGD with
momentum and Adam/AdamW in their for-loop, foreach and fused forms. The targets for a multi-tensor
body (printed, with a verdict): no host reads, and at 200 tensors at most 3x the ops of torch's
SGD-momentum foreach. nightbench builds two param groups (weights; biases and norm layers), and
ops are dispatched per group, so the verdict is given twice: against torch's SGD on the model's
parameters as one group (the issue's literal reference) and against torch's SGD on the same two
groups (`create("sgd", model, foreach=True)`). Asserted by tests/benchmarks/test_dispatch_counts.py
(they are properties of the code, not of the machine): the counter sees host reads, and a
multi-tensor body makes none and dispatches as many ops at 200 tensors as at 48.
"""

from __future__ import annotations

import collections
import sys
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nightbench.optimizers import create, get_spec
from nightbench.optimizers.registry import takes_foreach

if __package__:
    from .fixed_gradients import fixed_gradient_step
else:  # run as a script: python tests/benchmarks/dispatch_counts.py
    from fixed_gradients import fixed_gradient_step

WIDTH = 16
TENSOR_COUNTS = (48, 200)
NIGHTBENCH = ("nsgd", "nsgd_momentum", "nigt", "nigt_adaptive", "lars", "lamb")
OPS_TARGET_FACTOR = 3.0  # x torch SGD-momentum foreach, at the larger model
HOST_READ = torch.ops.aten._local_scalar_dense.default


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched inside the `with` block, by op."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def host_reads(self) -> int:
        return self.ops[HOST_READ]


def blocks_model(tensors: int) -> torch.nn.Module:
    """tensors/4 blocks of Linear + LayerNorm (weight and bias each)."""
    torch.manual_seed(0)
    layers = []
    for _ in range(tensors // 4):
        layers += [torch.nn.Linear(WIDTH, WIDTH), torch.nn.LayerNorm(WIDTH)]
    model = torch.nn.Sequential(*layers)
    assert len(list(model.parameters())) == tensors
    return model


def fill_gradients(model: torch.nn.Module, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    grads = [torch.randn(p.shape, generator=gen) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad = g
    return grads


def stepper(optimizer: torch.optim.Optimizer, model: torch.nn.Module, gradients_per_step: int) -> Callable[[], None]:
    """One step on fixed gradients (a two-gradient optimizer's are two new sets, in turn)."""
    params = list(model.parameters())
    sets = [[p.grad for p in params]]
    if gradients_per_step != 1:
        sets = [fill_gradients(model, 1), fill_gradients(model, 2)]
    return fixed_gradient_step(optimizer, params, sets)


def count_one_step(make: Callable[[torch.nn.Module], torch.optim.Optimizer], tensors: int,
                   gradients_per_step: int = 1) -> OpCounter:
    """Ops of the third step (the first creates state, the second may still differ for NIGT)."""
    model = blocks_model(tensors)
    fill_gradients(model, 0)
    optimizer = make(model)
    step = stepper(optimizer, model, gradients_per_step)
    step()
    step()
    counter = OpCounter()
    with counter:
        step()
    return counter


TORCH_ENTRIES: dict[str, Callable[[torch.nn.Module], torch.optim.Optimizer]] = {
    "torch SGD-momentum for-loop": lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, foreach=False),
    "torch SGD-momentum foreach": lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, foreach=True),
    "torch SGD-momentum fused": lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, fused=True),
    "torch Adam for-loop": lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, foreach=False),
    "torch Adam foreach": lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, foreach=True),
    "torch Adam fused": lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, fused=True),
    "torch AdamW fused": lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True),
    "torch SGD-momentum foreach, 2 groups": lambda m: create("sgd", m, foreach=True),
}
SGD_FOREACH = "torch SGD-momentum foreach"
SGD_FOREACH_SAME_GROUPS = "torch SGD-momentum foreach, 2 groups"


def nightbench_entries() -> dict[str, tuple[Callable, int]]:
    """'<name> single' / '<name> multi' (or '<name>' where there is one body): (make, gradients per step)."""
    out = {}
    for name in NIGHTBENCH:  # get_spec fails, by name, on one that is not registered
        per_step = get_spec(name).gradients_per_step
        if takes_foreach(get_spec(name)):
            for body, foreach in (("single", False), ("multi", True)):
                out[f"{name} {body}"] = ((lambda m, n=name, f=foreach: create(n, m, foreach=f)), per_step)
        else:
            out[name] = ((lambda m, n=name: create(n, m)), per_step)
    return out


@dataclass
class Row:
    counts: dict[int, tuple[int, int]]  # tensors -> (aten ops, host reads)


def count_table() -> dict[str, Row]:
    entries = {name: (make, 1) for name, make in TORCH_ENTRIES.items()} | nightbench_entries()
    return {name: Row({n: (c.total, c.host_reads) for n in TENSOR_COUNTS
                       for c in [count_one_step(make, n, per_step)]})
            for name, (make, per_step) in entries.items()}


def format_table(table: dict[str, Row]) -> list[str]:
    big = TENSOR_COUNTS[-1]
    limits = [OPS_TARGET_FACTOR * table[ref].counts[big][0] for ref in (SGD_FOREACH, SGD_FOREACH_SAME_GROUPS)]
    header = f"{'optimizer':<38}" + "".join(f" {f'ops@{n}':>8} {f'reads@{n}':>9}" for n in TENSOR_COUNTS)
    lines = [f"target for multi-tensor bodies: 0 reads and ops@{big} <= {limits[0]:.0f} (3x torch SGD-momentum "
             f"foreach, 1 group) / <= {limits[1]:.0f} (3x the same on nightbench's 2 groups)",
             header + "  verdict (1 group / 2 groups)"]
    for name, row in table.items():
        cells = "".join(f" {row.counts[n][0]:>8} {row.counts[n][1]:>9}" for n in TENSOR_COUNTS)
        verdict = ""
        if name.endswith(" multi"):
            ops, reads = row.counts[big]
            verdict = "  " + " / ".join("meets" if reads == 0 and ops <= limit else "MISSES" for limit in limits)
        lines.append(f"{name:<38}{cells}{verdict}")
    return lines


def main() -> int:
    print("aten ops and host reads of one optimizer step")
    print("\n".join(format_table(count_table())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
