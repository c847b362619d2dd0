"""The presets and their check: each builds the named model families; a bad value names its key."""

from __future__ import annotations

import pytest
import torch

from nightbench.suites.memory_overhead import SUITE
from nightbench.suites.memory_overhead.models import build_model_under_test
from nightbench.suites.memory_overhead.presets import PRESETS, validate_config


CPU = torch.device("cpu")


@pytest.mark.parametrize("key,value,named", [
    ("families", ["vgg"], "families"), ("bert_batch", 1, "bert_batch"), ("resnet_layers", [3, 4], "resnet_layers"),
    ("bert_heads", 3, "bert_hidden"), ("precision", "bf16", "precision"),
])
def test_bad_config_names_the_key(key, value, named):
    with pytest.raises(ValueError, match=named):
        validate_config({**PRESETS["ci"], key: value})


def test_presets_build_the_named_model_families():
    assert set(SUITE.presets) == {"paper", "small", "ci"}
    for preset in SUITE.presets.values():
        assert validate_config(preset)["families"] == ["bert", "resnet"]
    ci = build_model_under_test("resnet", PRESETS["ci"], CPU, seed=0)
    assert "resnet50 family" in ci.description and ci.model.default_cfg["architecture"] == "resnet50"
