"""Which modern-set optimizers DeepSpeed may run, at which ZeRO stages (suites/distributed/support.py).

lion and signum are elementwise: every stage, fp32 or DeepSpeed's bf16 weights. muon, adafactor, soap
and adamw_schedulefree need whole tensors: ZeRO 0 with fp32 weights only (bf16 compute is fine), the rest refused with the reason.
"""

from __future__ import annotations

import pytest

from nightbench.suites.config import ConfigError

from ..test_distributed import _check, _settings


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
