"""The peak-memory subprocess: it sees exactly the measured step, reports a failure with its reason, and measures each body."""

from __future__ import annotations

import pytest
import torch

from nightbench.suites.memory_overhead.models import build_model_under_test
from nightbench.suites.memory_overhead.peak import cpu_peak_unavailable_reason, measure_peak_in_subprocess
from nightbench.suites.memory_overhead.presets import PRESETS, validate_config


CPU = torch.device("cpu")


def _small_peak_request(**extra):
    config = validate_config(PRESETS["ci"])
    return {"family": "resnet", "config": config, "device": "cpu", "seed": 0, "optimizer": "sgd",
            "hyperparameters": {}, "policy": {}, **extra}


@pytest.mark.slow
@pytest.mark.skipif(cpu_peak_unavailable_reason() is not None, reason=str(cpu_peak_unavailable_reason()))
def test_peak_measurement_sees_exactly_the_measured_step():
    """A buffer held during the measured step raises its peak by the buffer's size; one held only during
    the warm-up step does not (the high-water mark was reset in between). Each in a fresh subprocess:
    in this long-lived process freed memory is reused without the resident size moving."""
    buffer = 256 * 2**20
    during_step = measure_peak_in_subprocess(_small_peak_request(extra_step_bytes=buffer), timeout_s=120)
    during_warmup = measure_peak_in_subprocess(_small_peak_request(extra_warmup_bytes=buffer), timeout_s=120)
    for result in (during_step, during_warmup):
        assert result["peak_unavailable_reason"] is None, result["peak_unavailable_reason"]
        assert result["peak_step_bytes"] >= result["rss_before_step"] > 0
        assert result["peak_step_increment_bytes"] > 0  # gradients and activations at least
        assert result["optimizer_step_peak_increment_bytes"] >= 0
    # Without the buffer both measure the same step, so the difference is the buffer alone.
    extra = during_step["peak_step_increment_bytes"] - during_warmup["peak_step_increment_bytes"]
    assert 0.9 * buffer <= extra <= 1.1 * buffer


@pytest.mark.slow
def test_a_failing_peak_subprocess_gives_null_figures_with_the_reason():
    result = measure_peak_in_subprocess(_small_peak_request(family="vgg"), timeout_s=120)
    assert result["peak_step_bytes"] is None and result["peak_step_increment_bytes"] is None
    assert "exited with status" in result["peak_unavailable_reason"]
    assert "unknown model family 'vgg'" in result["peak_unavailable_reason"]


@pytest.mark.slow
@pytest.mark.skipif(cpu_peak_unavailable_reason() is not None, reason=str(cpu_peak_unavailable_reason()))
def test_both_bodies_are_measured_and_nigt_multi_tensor_needs_at_most_one_tensor_more():
    """The peak worker measures each body of an optimizer written here on its own. NIGT's multi-tensor
    step works in place: its increment over the single-tensor body's is at most one largest tensor."""
    config = validate_config(PRESETS["ci"])
    result = measure_peak_in_subprocess({**_small_peak_request(), "family": "bert", "optimizer": "nigt",
                                         "hyperparameters": {"weight_decay": 0.01}}, timeout_s=300)
    assert result["peak_unavailable_reason"] is None, result["peak_unavailable_reason"]
    unit = build_model_under_test("bert", config, CPU, seed=0)
    largest = max(p.numel() * p.element_size() for p in unit.model.parameters())
    for body in ("single", "multi"):
        assert result[f"peak_step_increment_bytes_{body}"] > 0  # gradients and activations at least
        assert result[f"optimizer_step_peak_increment_bytes_{body}"] >= 0
    assert result["optimizer_step_peak_increment_bytes_multi"] <= result["optimizer_step_peak_increment_bytes_single"] + largest
    assert result["peak_step_increment_bytes_multi"] <= result["peak_step_increment_bytes_single"] + largest
    one_body = measure_peak_in_subprocess({**_small_peak_request(), "family": "bert"}, timeout_s=300)  # torch's sgd
    assert one_body["optimizer_step_peak_increment_bytes_multi"] is not None  # foreach is passed on to torch
