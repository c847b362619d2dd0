"""One optimizer step on fixed gradients: the step every benchmark here times or counts.

The benchmarks run as scripts (`python tests/benchmarks/<name>.py`) and as modules of the tests
package, so they import this module by either name (see their imports).
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

import torch


def fixed_gradient_step(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor],
                        grad_sets: Sequence[Sequence[torch.Tensor]]) -> Callable[[], None]:
    """A function taking one step on `grad_sets`: one set is put on `params` once, and the step is
    optimizer.step(); with two (a two-gradient optimizer), a closure puts them on in turn. The closure
    only swaps .grad references (no aten op of its own), so what is timed or counted is the optimizer's."""
    if len(grad_sets) == 1:
        for p, g in zip(params, grad_sets[0]):
            p.grad = g
        return optimizer.step
    sets = itertools.cycle(grad_sets)

    def closure() -> float:
        for p, g in zip(params, next(sets)):
            p.grad = g
        return 0.0

    return lambda: optimizer.step(closure)
