"""Which body `foreach=None` should pick on CPU: the evidence for `CPU_FOREACH` (optimizers/_base.py).

    python tests/benchmarks/cpu_body_choice.py [--rounds 20] [--tiny]

Every optimizer with two bodies (`foreach=False`: one tensor at a time, `foreach=True`: multi-tensor)
is stepped on ~25M float32 parameters in 50 tensors, the two bodies timed round by round,
alternating, on the same tensors (so a change of machine load hits both). One table, printed at
the end: each body's median step time, their ratio, the faster body, and the class's CPU_FOREACH,
with a verdict column that says whether CPU_FOREACH picks the faster body.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch

from nightbench.optimizers import create, get_spec, names
from nightbench.optimizers._base import NightbenchOptimizer

if __package__:
    from .fixed_gradients import fixed_gradient_step
else:  # run as a script: python tests/benchmarks/cpu_body_choice.py
    from fixed_gradients import fixed_gradient_step

# 48 weight matrices and 2 bias vectors: 25,167,872 + 2,048 parameters, 50 tensors (~100 MB).
SHAPES = [(1024, 512)] * 48 + [(1024,)] * 2
TINY_SHAPES = [(16, 8)] * 4 + [(16,)] * 2
ROUNDS, WARMUP_ROUNDS = 20, 3
BODIES = {"single": False, "multi": True}  # the `foreach` argument of each body


def two_body_optimizers() -> list[str]:
    """The registered builtins written here with both bodies (the classes CPU_FOREACH applies to)."""
    return [n for n in names() if get_spec(n).source == "builtin" and _is_two_body_class(get_spec(n).factory)]


def _is_two_body_class(factory: object) -> bool:
    return inspect.isclass(factory) and issubclass(factory, NightbenchOptimizer)


def stepper(optimizer: torch.optim.Optimizer, name: str, params: list[torch.nn.Parameter]) -> Callable[[], None]:
    """One step; a two-gradient optimizer's closure hands out two fixed gradient sets in turn."""
    first = [p.grad for p in params]
    sets = [first] if get_spec(name).gradients_per_step == 1 else [first, [g.flip(0) for g in first]]
    return fixed_gradient_step(optimizer, params, sets)


@dataclass
class Row:
    name: str
    single_s: float  # median seconds per step
    multi_s: float
    cpu_foreach: bool

    @property
    def ratio(self) -> float:
        return self.multi_s / self.single_s

    @property
    def faster(self) -> str:
        return "multi" if self.multi_s < self.single_s else "single"

    @property
    def picked(self) -> str:
        return "multi" if self.cpu_foreach else "single"


def measure(name: str, shapes: list[tuple[int, ...]], rounds: int, warmup: int) -> Row:
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen) * 0.05) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    steps = {body: stepper(create(name, params, foreach=foreach), name, params) for body, foreach in BODIES.items()}
    seconds: dict[str, list[float]] = {body: [] for body in BODIES}
    for _ in range(warmup):  # state allocation is not timed
        for step in steps.values():
            step()
    for _ in range(rounds):
        for body, step in steps.items():
            start = time.perf_counter()
            step()
            seconds[body].append(time.perf_counter() - start)
    if not all(torch.isfinite(p).all() for p in params):
        raise RuntimeError(f"{name}: the benchmark's steps made non-finite weights")
    cpu_foreach = type(create(name, params[:1])).CPU_FOREACH
    return Row(name, statistics.median(seconds["single"]), statistics.median(seconds["multi"]), cpu_foreach)


def table(rows: list[Row], shapes: list[tuple[int, ...]], rounds: int) -> list[str]:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    numel = sum(torch.Size(s).numel() for s in shapes)
    lines = [f"the two bodies on CPU: {numel:,} float32 parameters in {len(shapes)} tensors, median of {rounds} "
             f"alternating rounds; torch threads {torch.get_num_threads()}; load average {load}",
             f"{'optimizer':<16} {'single ms':>10} {'multi ms':>9} {'multi/single':>13}  faster  CPU_FOREACH  verdict"]
    for r in rows:
        verdict = "picks the faster" if r.picked == r.faster else "PICKS THE SLOWER"
        lines.append(f"{r.name:<16} {r.single_s * 1e3:10.2f} {r.multi_s * 1e3:9.2f} {r.ratio:13.2f}  "
                     f"{r.faster:<6}  {r.picked:<11}  {verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"timed rounds per body (default {ROUNDS})")
    parser.add_argument("--tiny", action="store_true", help="6 small tensors, to check the script itself quickly")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    shapes = TINY_SHAPES if args.tiny else SHAPES
    rows = [measure(name, shapes, args.rounds, WARMUP_ROUNDS) for name in two_body_optimizers()]
    print("\n".join(table(rows, shapes, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
