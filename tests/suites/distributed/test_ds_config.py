"""The DeepSpeed config nightbench generates from a suite's batch sizes and the CLI, and a user's JSON
(suites/distributed/ds_config.py)."""

from __future__ import annotations

import pytest

from nightbench.suites.config import ConfigError
from nightbench.suites.distributed import DeepSpeedOptions
from nightbench.suites.distributed.ds_config import batch_layout, deepspeed_settings, with_batch

from .settings import make_settings as _settings


@pytest.mark.parametrize("global_batch,micro,world,expected", [
    (8, 4, 2, (4, 1)), (256, 32, 8, (32, 1)), (256, 32, 2, (32, 4)), (20, 4, 2, (4, 3)), (8, 16, 1, (8, 1))])
def test_batch_layout_keeps_the_suites_global_batch(global_batch, micro, world, expected):
    assert batch_layout(global_batch, micro, world) == expected


def test_batch_layout_refuses_a_world_size_that_does_not_divide_the_batch():
    with pytest.raises(ConfigError, match="cannot be shared evenly by 3"):
        batch_layout(8, 4, 3)


def test_generated_config(tmp_path):
    settings = _settings(stage=2)
    assert settings["zero_optimization"]["stage"] == 2
    assert settings["zero_allow_untested_optimizer"] is True
    assert settings["gradient_clipping"] == 0.0  # DeepSpeed would clip at 1.0 otherwise
    assert "torch_autocast" not in settings and "bf16" not in settings
    config = with_batch(settings, global_batch=256, micro_batch=32, world_size=8)
    assert (config["train_micro_batch_size_per_gpu"], config["gradient_accumulation_steps"]) == (32, 1)
    assert "train_batch_size" not in config
    bf16 = _settings(stage=2, precision="bf16")
    assert bf16["torch_autocast"] == {"enabled": True, "dtype": "bfloat16", "lower_precision_safe_modules": []}


def test_user_config_is_kept_and_the_cli_stage_wins(tmp_path):
    user = {"zero_optimization": {"stage": 1, "reduce_bucket_size": 1000}, "gradient_clipping": 1.0,
            "train_batch_size": 8}
    assert _settings(user=user, tmp_path=tmp_path)["zero_optimization"] == {"stage": 1, "reduce_bucket_size": 1000}
    settings = _settings(stage=2, user=user, tmp_path=tmp_path)
    assert settings["zero_optimization"]["stage"] == 2 and settings["gradient_clipping"] == 1.0
    with_batch(settings, global_batch=8, micro_batch=4, world_size=2)  # agrees with the suite: accepted
    with pytest.raises(ConfigError, match="train_batch_size=8 but the suite's global batch 16"):
        with_batch(settings, global_batch=16, micro_batch=4, world_size=2)


@pytest.mark.parametrize("user,message", [
    ({"optimizer": {"type": "Adam"}}, "'optimizer' section"),
    ({"scheduler": {"type": "WarmupLR"}}, "'scheduler' section"),
    ({"fp16": {"enabled": True}}, "enables fp16"),
    ({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}, "ZeRO-Offload"),
    ({"zero_optimization": {"stage": 5}}, "stage=5"),
])
def test_user_config_sections_that_would_change_the_run_are_refused(tmp_path, user, message):
    with pytest.raises(ConfigError, match=message):
        _settings(user=user, tmp_path=tmp_path)


def test_unreadable_user_config(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        deepspeed_settings(DeepSpeedOptions(config_path=str(tmp_path / "bad.json")), "fp32")
    with pytest.raises(ConfigError, match="cannot read"):
        deepspeed_settings(DeepSpeedOptions(config_path=str(tmp_path / "missing.json")), "fp32")

