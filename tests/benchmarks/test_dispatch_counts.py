"""What the dispatch counts show that is a property of the code, not of the machine: the counter sees
host reads, torch's foreach steps make none, and neither does any multi-tensor body, whose op count
does not grow with the number of tensors."""

from __future__ import annotations

import pytest
import torch

from .dispatch_counts import NIGHTBENCH, SGD_FOREACH, OpCounter, Row, count_table, format_table


@pytest.fixture(scope="module")
def table() -> dict[str, Row]:
    return count_table()


def test_the_counter_sees_ops_and_host_reads():
    counter = OpCounter()
    with counter:
        x = torch.ones(3) * 2
        float(x.sum())
        bool(x.isfinite().all())
    assert counter.host_reads == 2 and counter.total >= 5


@pytest.mark.slow
def test_torch_foreach_and_fused_steps_make_no_host_reads(table):
    for name in ("torch SGD-momentum foreach", "torch Adam fused"):
        assert all(reads == 0 for _, reads in table[name].counts.values()), name
    # The for-loop makes per-tensor ops: its count grows with the tensors, foreach's does not.
    loop = table["torch SGD-momentum for-loop"].counts
    assert loop[200][0] > loop[48][0]
    foreach = table[SGD_FOREACH].counts
    assert foreach[200][0] == foreach[48][0]


@pytest.mark.slow
@pytest.mark.parametrize("name", NIGHTBENCH)
def test_multi_tensor_body_reads_nothing_back_and_does_not_grow_with_tensors(table, name):
    row = table[f"{name} multi"]  # every optimizer written here has a multi-tensor body
    assert row.counts[48][1] == 0 and row.counts[200][1] == 0, row.counts
    assert row.counts[200][0] == row.counts[48][0], row.counts


@pytest.mark.slow
def test_the_table_gives_a_verdict_for_each_multi_tensor_body(table):
    lines = format_table(table)
    verdicts = [line for line in lines[2:] if line.split()[-1] in ("meets", "MISSES")]
    assert len(verdicts) == len(NIGHTBENCH) and all(" multi " in line for line in verdicts)
