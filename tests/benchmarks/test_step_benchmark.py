"""Every step-time entry through pytest-benchmark, side by side in one run.

    pytest tests/benchmarks/test_step_benchmark.py --benchmark-enable

prints one table (min, median, mean, rounds) of each entry's step on the same ~2M parameters, the
torch baselines beside nightbench's bodies; compare ratios within one run (the machine is shared).
In the normal test run (`--benchmark-disable`, pyproject's addopts) each entry steps once, untimed,
so an entry that breaks fails here. Nothing is asserted about time: the figures are printed.
"""

from __future__ import annotations

import pytest
import torch

from .step_time import entries, make_entry, make_params

SHAPES = [(512, 256)] * 16 + [(512,)] * 2  # 2,098,176 parameters in 18 tensors


@pytest.mark.parametrize("entry,foreach", entries())
def test_step(benchmark, entry, foreach):
    params = make_params(SHAPES)
    before = params[0].detach().clone()
    _, step = make_entry(entry, foreach, params)
    benchmark.group = "one optimizer step, 2.1M parameters"
    benchmark(step)
    assert not torch.equal(params[0].detach(), before)  # it stepped
