"""finite_flag: one device-side flag for "every parameter is finite", without a host read per tensor."""

from __future__ import annotations

import pytest
import torch

from nightbench.optimizers.finite import all_finite, finite_flag

from ..benchmarks.dispatch_counts import OpCounter


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("bad", [None, float("nan"), float("inf"), float("-inf")])
def test_one_bad_element_anywhere_is_found(dtype, bad):
    tensors = [torch.randn(5, 4).to(dtype), torch.randn(7).to(dtype), torch.zeros(3, dtype=dtype)]
    if bad is not None:
        tensors[1][3] = bad
    assert all_finite(tensors) is (bad is None)
    flag = finite_flag(tensors)
    assert flag.dtype == torch.bool and flag.dim() == 0


def test_the_flag_reads_nothing_back_and_does_not_grow_with_the_tensors():
    counts = []
    for n in (10, 100):
        tensors = [torch.randn(8) for _ in range(n)]
        counter = OpCounter()
        with counter:
            flag = finite_flag(tensors)
        assert counter.host_reads == 0 and bool(flag)  # the one read, outside the count
        counts.append(counter.total)
    assert counts[0] == counts[1]


def test_mixed_dtypes_and_no_tensors():
    assert all_finite([torch.ones(2), torch.ones(2, dtype=torch.float64)])
    assert not all_finite([torch.ones(2), torch.tensor([1.0, float("nan")], dtype=torch.float64)])
    assert all_finite([])
