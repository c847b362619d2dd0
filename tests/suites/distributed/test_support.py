"""Which optimizers DeepSpeed may run, at which ZeRO stages and precisions (suites/distributed/support.py).

Optimizers whose norms go through the hook run at ZeRO 0/1/2, elementwise ones at every stage.
lion and signum are elementwise: every stage, fp32 or DeepSpeed's bf16 weights. muon, adafactor, soap
and adamw_schedulefree need whole tensors: ZeRO 0 with fp32 weights only (bf16 compute is fine), the rest refused with the reason.
"""

from __future__ import annotations

import pytest
import torch

from nightbench.optimizers import register_optimizer
from nightbench.optimizers import registry as optimizer_registry
from nightbench.optimizers.sharding import ELEMENTWISE, NORM_HOOK
from nightbench.suites.config import ConfigError

from .settings import check as _check
from .settings import make_settings as _settings


@pytest.fixture
def unknown_optimizer():
    """A registered optimizer that does not declare how it behaves on shards."""

    @register_optimizer("test_undeclared_sharding", state_slots=0)
    class Undeclared(torch.optim.SGD):
        def __init__(self, params, lr=0.1):
            super().__init__(params, lr=lr)

    yield "test_undeclared_sharding"
    optimizer_registry.REGISTRY.entries.pop("test_undeclared_sharding", None)


@pytest.mark.parametrize("name", ["lion", "signum"])
@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_sign_methods_run_at_every_stage(name, stage):
    _check(name, _settings(stage=stage))
    _check(name, _settings(stage=stage, precision="bf16"), precision="bf16")


@pytest.mark.parametrize("name", ["muon", "adafactor", "adamw_schedulefree", "soap"])
def test_whole_tensor_optimizers_run_at_zero_0_fp32_only(name, tmp_path):
    _check(name, _settings(stage=0))
    _check(name, _settings(stage=0, precision="bf16"), precision="bf16")  # bf16 compute, fp32 weights
    for stage in (1, 2, 3):
        with pytest.raises(ConfigError, match=f"'{name}' computes each tensor's update from the whole tensor.*"
                                              "--zero-stage 0"):
            _check(name, _settings(stage=stage))
    bf16_weights = _settings(stage=0, user={"bf16": {"enabled": True}}, precision="bf16", tmp_path=tmp_path)
    with pytest.raises(ConfigError, match="whole tensor"):
        _check(name, bf16_weights, precision="bf16")


@pytest.mark.parametrize("name", ["nigt", "nsgd", "nsgd_momentum", "lars", "lamb", "adam", "sgd"])
@pytest.mark.parametrize("stage", [0, 1, 2])
def test_every_optimizer_with_norms_or_none_runs_at_zero_0_1_2(name, stage):
    # Accepted because its norms go through the hook (or it has none), in the view stage 0/1/2 gives it.
    view = "whole" if stage == 0 else "zero12"
    declared = ELEMENTWISE if name in ("adam", "sgd") else NORM_HOOK
    assert _check(name, _settings(stage=stage)) == (view, declared)
    assert _check(name, _settings(stage=stage, precision="bf16"), precision="bf16") == (view, declared)


@pytest.mark.parametrize("name", ["nigt", "nsgd_momentum", "lars", "lamb"])
def test_normalizing_optimizers_are_refused_at_zero_3(name):
    with pytest.raises(ConfigError, match="normalizes whole layers.*ZeRO stage 3"):
        _check(name, _settings(stage=3))


def test_elementwise_optimizers_run_at_zero_3():
    assert _check("adam", _settings(stage=3)) == ("zero3", ELEMENTWISE)
    assert _check("sgd", _settings(stage=3)) == ("zero3", ELEMENTWISE)


def test_two_gradient_optimizer_is_refused_under_deepspeed():
    for stage in (0, 2):
        with pytest.raises(ConfigError, match="2 gradients per step through step\\(closure\\)"):
            _check("nigt_adaptive", _settings(stage=stage))


def test_undeclared_optimizer_runs_only_on_whole_tensors(unknown_optimizer):
    _check(unknown_optimizer, _settings(stage=0))
    for stage in (1, 2, 3):
        with pytest.raises(ConfigError, match="does not declare how it behaves on sharded parameters"):
            _check(unknown_optimizer, _settings(stage=stage))


def test_global_norm_over_two_adapted_groups_needs_whole_tensors():
    both = {"policy": {"excluded_layer_adaptation": True}}
    _check("nigt", _settings(stage=0), norm="global", **both)
    _check("nigt", _settings(stage=2), norm="global")  # one adapted group: exact
    with pytest.raises(ConfigError, match="one param group at a time"):
        _check("nigt", _settings(stage=2), norm="global", **both)


def test_deepspeed_bf16_weights(tmp_path):
    weights = {"bf16": {"enabled": True}}
    with pytest.raises(ConfigError, match="add --precision bf16"):
        _check("adam", _settings(stage=2, user=weights, tmp_path=tmp_path))
    _check("nigt", _settings(stage=2, user=weights, tmp_path=tmp_path, precision="bf16"), precision="bf16")
    _check("adam", _settings(stage=0, user=weights, tmp_path=tmp_path, precision="bf16"), precision="bf16")
    with pytest.raises(ConfigError, match="bf16 weights at ZeRO stage 0"):  # whole groups flattened
        _check("nigt", _settings(stage=0, user=weights, tmp_path=tmp_path, precision="bf16"), precision="bf16")

