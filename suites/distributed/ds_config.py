"""The DeepSpeed configuration of a run: generated from the suite's batch sizes and the CLI, or
completed from a user's JSON file.

What nightbench fixes, whatever the JSON says: the optimizer (the registry's, used as it is:
`zero_allow_untested_optimizer`), the schedule (the suite's) and the global batch (the suite's:
micro-batch x accumulation x world size). A JSON may set everything else DeepSpeed knows (ZeRO
bucket sizes, communication dtypes, bf16 weights, ...), but batch keys that disagree with the
suite's, or sections that would replace nightbench's choices, are refused with the reason.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError

ZERO_STAGES = (0, 1, 2, 3)
_REPLACED_SECTIONS = {
    "optimizer": "the optimizer comes from --optimizer (the registry's, used as it is)",
    "scheduler": "the learning-rate schedule is the suite's (see `nightbench list presets`)",
}


@dataclass(frozen=True)
class DeepSpeedOptions:
    """What the CLI says about DeepSpeed: the ZeRO stage (None: the JSON's, else 0) and a JSON file."""

    zero_stage: int | None = None
    config_path: str | None = None

    def __post_init__(self) -> None:
        if self.zero_stage is not None and self.zero_stage not in ZERO_STAGES:
            raise ConfigError(f"invalid --zero-stage {self.zero_stage!r}: expected one of {ZERO_STAGES}")


def read_user_config(path: str | None) -> dict[str, Any]:
    """The user's DeepSpeed JSON as a dict ({} without one); a clear error for a bad file."""
    if not path:
        return {}
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read --deepspeed-config {path}: {exc.strerror or exc}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--deepspeed-config {path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--deepspeed-config {path} must hold a JSON object, got {type(value).__name__}")
    return value


def batch_layout(global_batch: int, micro_batch: int, world_size: int) -> tuple[int, int]:
    """(micro-batch per process, accumulation steps) that make up the suite's global batch."""
    if global_batch % world_size:
        raise ConfigError(f"the suite's global batch {global_batch} cannot be shared evenly by {world_size} "
                          f"processes; use a world size that divides it, or --set global_batch_size=...")
    share = global_batch // world_size
    accumulation = max(1, math.ceil(share / max(1, micro_batch)))
    # Pieces of a share differ by at most one example when accumulation does not divide it;
    # DeepSpeed is told the largest (it only uses the figure for logging).
    return math.ceil(share / accumulation), accumulation


def _enabled(config: dict, section: str) -> bool:
    value = config.get(section)
    return isinstance(value, dict) and bool(value.get("enabled", False))


def deepspeed_settings(options: DeepSpeedOptions, precision: str) -> dict[str, Any]:
    """The run's DeepSpeed config without the batch keys: the user's JSON, checked and completed."""
    config = copy.deepcopy(read_user_config(options.config_path))
    where = f"--deepspeed-config {options.config_path}"
    for section, reason in _REPLACED_SECTIONS.items():
        if section in config:
            raise ConfigError(f"{where} has an '{section}' section; remove it: {reason}")
    if _enabled(config, "fp16"):
        raise ConfigError(f"{where} enables fp16: its loss scaling skips steps on overflow, so a run would not "
                          "follow the same steps as at any other world size; use --precision bf16")
    zero = dict(config.get("zero_optimization") or {})
    for offload in ("offload_optimizer", "offload_param"):
        if (zero.get(offload) or {}).get("device", "none") not in ("none", None):
            raise ConfigError(f"{where} sets zero_optimization.{offload}: ZeRO-Offload runs DeepSpeed's own CPU "
                              "optimizer instead of the registry's; remove it")
    stage = options.zero_stage if options.zero_stage is not None else zero.get("stage", 0)
    if stage not in ZERO_STAGES:
        raise ConfigError(f"{where} sets zero_optimization.stage={stage!r}: expected one of {ZERO_STAGES}")
    zero["stage"] = stage
    config["zero_optimization"] = zero
    config["zero_allow_untested_optimizer"] = True
    config.setdefault("gradient_clipping", 0.0)  # DeepSpeed's default clips at 1.0; the suites do not clip
    config.setdefault("steps_per_print", 2**31 - 1)  # nightbench logs the run itself
    config.setdefault("wall_clock_breakdown", False)
    if precision == "bf16" and not bf16_weights(config):
        # bf16 compute on fp32 weights, as `precision: bf16` means in one process. DeepSpeed turns an
        # outer autocast off inside its forward, so it is asked for it; no module reduces gradients in bf16.
        config.setdefault("torch_autocast", {"enabled": True, "dtype": "bfloat16", "lower_precision_safe_modules": []})
    return config


def with_batch(settings: dict[str, Any], *, global_batch: int, micro_batch: int, world_size: int,
               where: str = "the DeepSpeed config") -> dict[str, Any]:
    """`settings` with the batch keys that make up the suite's global batch on `world_size` ranks."""
    config = copy.deepcopy(settings)
    micro, accumulation = batch_layout(global_batch, micro_batch, world_size)
    ours = {"train_batch_size": global_batch, "train_micro_batch_size_per_gpu": micro,
            "gradient_accumulation_steps": accumulation}
    for key, value in ours.items():
        if key in config and config[key] != value:
            raise ConfigError(
                f"{where} sets {key}={config[key]!r} but the suite's global batch {global_batch} (micro-batch "
                f"{micro_batch}) on {world_size} process(es) means {key}={value}; remove it, or change the batch "
                "with --set global_batch_size=... / --set micro_batch_size=...")
        config[key] = value
    del config["train_batch_size"]  # DeepSpeed derives it; uneven micro-batches would make it disagree
    return config


def zero_stage(config: dict) -> int:
    return int(config.get("zero_optimization", {}).get("stage", 0))


def bf16_weights(config: dict) -> bool:
    """Does the config make DeepSpeed keep the model in bf16 (with fp32 master weights)?"""
    return _enabled(config, "bf16") or _enabled(config, "bfloat16")
