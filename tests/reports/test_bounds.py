"""Each metric's range (accuracies in [0, 1], losses and counts from 0, the rest unbounded)."""

from __future__ import annotations

import math

import pytest

from nightbench.reports.bounds import metric_range


@pytest.mark.parametrize("metric, expected", [
    ("mlm_accuracy", (0.0, 1.0)), ("top1", (0.0, 1.0)), ("top5", (0.0, 1.0)), ("val_accuracy", (0.0, 1.0)),
    ("top3", (0.0, 1.0)), ("loss", (0.0, math.inf)), ("mlm_loss", (0.0, math.inf)), ("floor", (0.0, math.inf)),
    ("bleu_delta", (-math.inf, math.inf)), (None, (-math.inf, math.inf)),
])
def test_each_metric_has_its_range(metric, expected):
    assert metric_range(metric) == expected
