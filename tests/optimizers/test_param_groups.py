"""The param-group policy: which tensors are excluded, and what excluded tensors get."""

from __future__ import annotations

import pytest
import torch

from nightbench.optimizers import PAPER_RECIPE_HYPERPARAMETERS, PAPER_RECIPE_SETTINGS
from nightbench.optimizers import PAPER_RECIPE_POLICY, ParamGroupPolicy, create


def conv_net() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
        torch.nn.Linear(16, 5), torch.nn.LayerNorm(5),
    )


def ids(tensors) -> set[int]:
    return {id(t) for t in tensors}


def test_biases_and_norm_layers_are_excluded_and_get_the_policy():
    model = conv_net()
    policy = ParamGroupPolicy(excluded_lr_multiplier=1000.0)
    regular, excluded = policy.build_param_groups(model, lr=1e-3, weight_decay=0.01)
    assert ids(regular["params"]) == ids([model[0].weight, model[3].weight])
    assert ids(excluded["params"]) == ids([model[0].bias, model[1].weight, model[1].bias, model[3].bias,
                                           model[4].weight, model[4].bias])
    assert (regular["lr"], regular["weight_decay"], regular["layer_adaptation"]) == (1e-3, 0.01, True)
    assert excluded["lr"] == pytest.approx(1.0) and excluded["lr_multiplier"] == 1000.0
    assert (excluded["weight_decay"], excluded["layer_adaptation"]) == (0.0, False)
    assert (regular["group_name"], excluded["group_name"]) == ("regular", "excluded")


def test_excluded_tensors_can_be_decayed_or_adapted_on_request():
    policy = ParamGroupPolicy(excluded_weight_decay=True, excluded_layer_adaptation=True)
    _, excluded = policy.build_param_groups(conv_net(), lr=0.1, weight_decay=0.05)
    assert (excluded["weight_decay"], excluded["layer_adaptation"], excluded["lr"]) == (0.05, True, 0.1)


def test_exclude_none_keeps_one_group_and_frozen_parameters_are_left_out():
    model = conv_net()
    model[1].weight.requires_grad_(False)
    (group,) = ParamGroupPolicy(exclude="none").build_param_groups(model, lr=0.1)
    assert len(group["params"]) == 7 and id(model[1].weight) not in ids(group["params"])


def test_plain_tensors_named_pairs_and_ready_groups_are_accepted():
    w, b = torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(3))
    policy = ParamGroupPolicy()
    for params in ([w, b], [("w", w), ("b", b)]):
        groups = policy.build_param_groups(params, lr=0.1)
        assert [ids(g["params"]) for g in groups] == [{id(w)}, {id(b)}]
    only_matrices = policy.build_param_groups([w], lr=0.1)
    assert len(only_matrices) == 1 and only_matrices[0]["group_name"] == "regular"
    custom = policy.build_param_groups([{"params": [w, b], "lr": 0.5, "layer_adaptation": False}], lr=0.1)
    assert custom == [{"params": [w, b], "lr": 0.5, "layer_adaptation": False, "weight_decay": 0.0,
                       "lr_multiplier": 1.0, "group_name": "custom"}]
    with pytest.raises(ValueError, match="no trainable parameters"):
        policy.build_param_groups([], lr=0.1)


def test_invalid_policies_fail_with_the_accepted_values():
    with pytest.raises(ValueError, match="exclude='bias'.*'ndim<=1', 'none'"):
        ParamGroupPolicy(exclude="bias")
    with pytest.raises(ValueError, match="excluded_lr_multiplier=0.*> 0"):
        ParamGroupPolicy(excluded_lr_multiplier=0)
    with pytest.raises(ValueError, match="unknown param-group policy field.*'multiplier'.*accepted"):
        ParamGroupPolicy.from_dict({"multiplier": 10})
    with pytest.raises(ValueError, match="excluded_weight_decay='sometimes'.*true or false"):
        ParamGroupPolicy.from_dict({"excluded_weight_decay": "sometimes"})
    with pytest.raises(ValueError, match="excluded_lr_multiplier='big'"):
        ParamGroupPolicy.from_dict({"excluded_lr_multiplier": "big"})


def test_from_dict_coerces_strings_and_round_trips_to_dict():
    policy = ParamGroupPolicy.from_dict({"excluded_lr_multiplier": "1000", "excluded_weight_decay": "true"})
    assert policy == ParamGroupPolicy(excluded_lr_multiplier=1000.0, excluded_weight_decay=True)
    assert ParamGroupPolicy.from_dict(policy.to_dict()) == policy
    assert PAPER_RECIPE_POLICY.excluded_lr_multiplier == 1000.0


def test_create_applies_the_policy_and_records_it():
    model = conv_net()
    optimizer = create("lars", model, policy=PAPER_RECIPE_POLICY, lr=0.01, weight_decay=1e-4)
    lrs = [g["lr"] for g in optimizer.param_groups]
    assert lrs == [0.01, pytest.approx(10.0)]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [1e-4, 0.0]
    config = optimizer.nightbench_config
    assert config["policy"] == PAPER_RECIPE_POLICY.to_dict()
    assert config["hyperparameters"]["weight_decay"] == 1e-4 and config["name"] == "lars"
    # the default policy: excluded tensors keep the base lr
    default = create("sgd", model, lr=0.2)
    assert [g["lr"] for g in default.param_groups] == [0.2, 0.2]


def test_the_paper_recipe_has_one_home():
    from nightbench.suites.bert_mlm import presets as bert_presets
    from nightbench.suites.resnet50_imagenet import recipes as resnet_recipes

    assert bert_presets.PAPER_RECIPE is PAPER_RECIPE_SETTINGS
    assert resnet_recipes.PAPER_RECIPE is PAPER_RECIPE_SETTINGS
    assert PAPER_RECIPE_SETTINGS == {**PAPER_RECIPE_HYPERPARAMETERS,
                                     "policy.excluded_lr_multiplier": PAPER_RECIPE_POLICY.excluded_lr_multiplier}
