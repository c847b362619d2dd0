"""Checking a resolved resnet50_imagenet config: every key typed and in range, before anything is built.

The engine types `--set` values like the preset's own values; this catches what typing cannot
(ranges, choices, consistency between keys) with a message naming the key and what is accepted.
"""

from __future__ import annotations

from typing import Any

from ..config import SuiteConfigError

DATASETS = ("folder", "hf", "digits")


def _fail(key: str, value: Any, accepted: str) -> SuiteConfigError:
    return SuiteConfigError(f"invalid value {value!r} for resnet50_imagenet key '{key}': expected {accepted}")


def _integer(config: dict, key: str, low: int) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < low:
        raise _fail(key, value, f"an integer >= {low}")
    return int(value)


def _number(config: dict, key: str, low: float, high: float | None = None, low_open: bool = False) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(key, value, "a number")
    bad_low = value <= low if low_open else value < low
    if bad_low or (high is not None and value > high):
        bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise _fail(key, value, f"a number {bound}")
    return float(value)


def check_config(config: dict[str, Any], world_size: int = 1) -> dict[str, Any]:
    """A copy of `config` with numbers typed; SuiteConfigError on the first bad key."""
    out = dict(config)
    if not isinstance(out["model"], str) or not out["model"]:
        raise _fail("model", out["model"], "a timm model name such as 'resnet50'")
    if out["dataset"] not in DATASETS:
        raise _fail("dataset", out["dataset"], f"one of {', '.join(DATASETS)}")
    for key in ("num_classes", "train_limit", "val_limit", "max_steps", "num_workers", "bn_recalibration_batches",
                "split_seed"):
        out[key] = _integer(out, key, 0)
    for key in ("image_size", "resize_size", "global_batch_size", "micro_batch_size", "eval_batch_size",
                "digits_upsample"):
        out[key] = _integer(out, key, 1)
    out["verify_images_per_class"] = _integer(out, "verify_images_per_class", -1)
    if out["resize_size"] < out["image_size"]:
        raise _fail("resize_size", out["resize_size"], f"a size >= image_size ({out['image_size']}): "
                    "evaluation resizes, then center-crops image_size")
    # The engine cuts each process's share into micro-batches (uneven pieces are fine); the share
    # itself must be whole, whatever the number of processes.
    if out["global_batch_size"] % world_size:
        raise _fail("global_batch_size", out["global_batch_size"], f"a multiple of the {world_size} processes")
    out["epochs"] = _number(out, "epochs", 0.0, low_open=True)
    out["warmup_epochs"] = _number(out, "warmup_epochs", 0.0, high=out["epochs"])
    out["eval_every_epochs"] = _number(out, "eval_every_epochs", 0.0, low_open=True)
    out["crop_scale_min"] = _number(out, "crop_scale_min", 0.0, high=1.0, low_open=True)
    out["val_fraction"] = _number(out, "val_fraction", 0.0, high=0.9, low_open=True)
    milestones = out["sgd_milestone_epochs"]
    if (not isinstance(milestones, (list, tuple)) or any(isinstance(m, bool) or not isinstance(m, (int, float))
                                                        or m < 0 for m in milestones)
            or list(milestones) != sorted(milestones)):
        raise _fail("sgd_milestone_epochs", milestones, "an increasing list of epochs >= 0, e.g. [30, 60, 80]")
    out["sgd_milestone_epochs"] = [float(m) for m in milestones]
    if not isinstance(out["hflip"], bool):
        raise _fail("hflip", out["hflip"], "true or false")
    return out
