"""The DeepSpeed settings and support checks the distributed tests build (no processes launched)."""

from __future__ import annotations

import json

from nightbench.optimizers import ParamGroupPolicy, get_spec
from nightbench.optimizers.sharding import shard_support
from nightbench.suites.distributed import DeepSpeedOptions
from nightbench.suites.distributed.ds_config import deepspeed_settings
from nightbench.suites.distributed.support import check_supported, optimizer_view, probe_optimizer


def make_settings(stage=None, user=None, precision="fp32", tmp_path=None):
    path = None
    if user is not None:
        path = tmp_path / "ds.json"
        path.write_text(json.dumps(user))
    return deepspeed_settings(DeepSpeedOptions(zero_stage=stage, config_path=str(path) if path else None), precision)


def check(name, settings, precision="fp32", policy=None, **hyperparameters):
    """check_supported on the run's probe; returns (how DeepSpeed presents parameters, the declared sharding)."""
    spec = get_spec(name)
    hp = spec.resolve(hyperparameters)
    policy = ParamGroupPolicy.from_dict(policy or {})
    probe = probe_optimizer(spec, hp, policy)
    check_supported(spec, probe, settings, precision)
    return optimizer_view(settings), shard_support(probe)
