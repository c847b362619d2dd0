"""The memory suite's presets and the validation of a resolved config.

Batch sizes are per device: memory is a per-device quantity, and the paper's global batches
(BERT 256 x 512 tokens, ResNet-50 1024 images) were split over several accelerators.
"""

from __future__ import annotations

from typing import Any

from ..config import SuiteConfigError
from .models import BERT_BASE_SHAPE, FAMILIES, RESNET50_LAYERS, RESNET50_WIDTH

_COMMON = {
    "families": list(FAMILIES),
    "mlm_probability": 0.15,
    "peak_memory": True,  # measure the step's peak in a fresh subprocess (costs one Python start-up)
    "peak_timeout_s": 1800.0,
}
_BERT_BASE = {**BERT_BASE_SHAPE, "bert_max_positions": 512}
_RESNET50 = {"resnet_layers": list(RESNET50_LAYERS), "resnet_width": RESNET50_WIDTH, "resnet_classes": 1000}

PRESETS: dict[str, dict[str, Any]] = {
    # BERT-Base at 512 tokens x 32 sequences (256 over 8 devices); ResNet-50 at 224 px x 128 (1024 over 8).
    "paper": {**_COMMON, **_BERT_BASE, "bert_seq_len": 512, "bert_batch": 32,
              **_RESNET50, "image_size": 224, "resnet_batch": 128,
              "train_step_repeats": 5, "optimizer_step_repeats": 10},
    # The real models with a small step so a 2-core CPU takes a few seconds per step.
    "small": {**_COMMON, **_BERT_BASE, "bert_seq_len": 128, "bert_batch": 4,
              **_RESNET50, "image_size": 64, "resnet_batch": 8,
              "train_step_repeats": 3, "optimizer_step_repeats": 5},
    # Same classes, tiny: a 2-layer hidden-128 BERT; resnet50's builder with one block per stage, width 16.
    "ci": {**_COMMON, "bert_layers": 2, "bert_hidden": 128, "bert_heads": 2, "bert_intermediate": 512,
           "bert_vocab": 1024, "bert_max_positions": 64, "bert_seq_len": 32, "bert_batch": 4,
           "resnet_layers": [1, 1, 1, 1], "resnet_width": 16, "resnet_classes": 10,
           "image_size": 32, "resnet_batch": 4,
           "train_step_repeats": 2, "optimizer_step_repeats": 3},
}

_POSITIVE_INTS = ("bert_layers", "bert_hidden", "bert_heads", "bert_intermediate", "bert_vocab",
                  "bert_max_positions", "bert_seq_len", "resnet_width", "resnet_classes", "image_size",
                  "train_step_repeats", "optimizer_step_repeats")


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config with `families` normalized to a list; a ValueError naming the bad key otherwise."""
    config = dict(config)
    families = config.get("families")
    if isinstance(families, str):  # also accept "bert,resnet"
        families = [f.strip() for f in families.split(",") if f.strip()]
    if not isinstance(families, (list, tuple)) or not families:
        raise SuiteConfigError(
            f"invalid families={config.get('families')!r}: expected a non-empty list from {list(FAMILIES)}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or len(set(families)) != len(families):
        raise SuiteConfigError(f"invalid families={families!r}: expected distinct names from {list(FAMILIES)}")
    config["families"] = list(families)

    for key in _POSITIVE_INTS:
        _require(config, key, isinstance(config.get(key), int) and not isinstance(config[key], bool)
                 and config[key] > 0, "a positive integer")
    for key in ("bert_batch", "resnet_batch"):  # two halves of at least one example each
        _require(config, key, isinstance(config.get(key), int) and config[key] >= 2, "an integer >= 2")
    _require(config, "mlm_probability", isinstance(config.get("mlm_probability"), (int, float))
             and 0 < config["mlm_probability"] <= 1, "a number in (0, 1]")
    _require(config, "bert_hidden", config["bert_hidden"] % config["bert_heads"] == 0,
             f"a multiple of bert_heads={config['bert_heads']}")
    layers = config.get("resnet_layers")
    _require(config, "resnet_layers", isinstance(layers, (list, tuple)) and len(layers) == 4
             and all(isinstance(n, int) and n > 0 for n in layers), "a list of 4 positive integers (blocks per stage)")
    _require(config, "peak_memory", isinstance(config.get("peak_memory"), bool), "true or false")
    _require(config, "peak_timeout_s", isinstance(config.get("peak_timeout_s"), (int, float))
             and config["peak_timeout_s"] > 0, "a positive number of seconds")
    if config.get("precision", "fp32") != "fp32":
        raise SuiteConfigError(f"invalid precision={config['precision']!r}: memory_overhead measures float32 "
                               "training (optimizer state is float32 either way); use precision=fp32")
    return config


def _require(config: dict[str, Any], key: str, ok: bool, expected: str) -> None:
    if not ok:
        raise SuiteConfigError(f"invalid {key}={config.get(key)!r}: expected {expected}")
