"""adamw_schedulefree: the authors' schedulefree.AdamWScheduleFree, driven directly, equals the registry entry;
it is evaluated at its average x_t (eval()/train(), the NIGT convention), and evaluating changes no training.
The suites give it warmup then a constant lr and, on ResNet-50, BatchNorm statistics recomputed at x_t.
"""

from __future__ import annotations

import pytest
import torch
from schedulefree import AdamWScheduleFree

from nightbench.optimizers import ParamGroupPolicy, create, evaluation_weights, get_spec
from nightbench.optimizers.memory import state_bytes
from nightbench.suites.bert_mlm.presets import PRESETS as BERT_PRESETS
from nightbench.suites.bert_mlm.suite import SUITE as BERT
from nightbench.suites.config import resolve_config
from nightbench.suites.resnet50_imagenet.suite import SUITE as RESNET

from .conformance import max_relative_error, run_packaged
from .test_lion import make_params, take_steps

HP = dict(lr=0.02, beta1=0.85, beta2=0.99, eps=1e-7, weight_decay=0.05, r=0.5, weight_lr_power=1.5)


def test_registry_entry_equals_the_package_class_driven_directly():
    params, twins = make_params(seed=11), make_params(seed=11)
    ours = create("adamw_schedulefree", params, policy=ParamGroupPolicy(excluded_weight_decay=True), **HP)
    theirs = AdamWScheduleFree(twins, lr=HP["lr"], betas=(HP["beta1"], HP["beta2"]), eps=HP["eps"],
                               weight_decay=HP["weight_decay"], r=HP["r"], weight_lr_power=HP["weight_lr_power"])
    theirs.train()
    for start in range(0, 120, 40):  # training, with an evaluation between the blocks
        run_packaged(ours, params, 40, [HP["lr"]] * 2, start=start)
        run_packaged(theirs, twins, 40, [HP["lr"]], start=start)
        ours.eval(), theirs.eval()
        for a, b in zip(params, twins):
            assert torch.equal(a.detach(), b.detach())
        ours.train(), theirs.train()
    for a, b in zip(params, twins):
        assert torch.equal(a.detach(), b.detach())
    assert max_relative_error(params, make_params(seed=11)) > 1e-2


def test_evaluated_weights_differ_and_evaluation_leaves_training_unchanged():
    evaluated, plain = make_params(seed=12), make_params(seed=12)
    a, b = create("adamw_schedulefree", evaluated, **HP), create("adamw_schedulefree", plain, **HP)
    gaps = []
    for start in range(0, 100, 10):
        run_packaged(a, evaluated, 10, [HP["lr"]] * 2, start=start)
        run_packaged(b, plain, 10, [HP["lr"]] * 2, start=start)
        training_point = [p.detach().clone() for p in evaluated]
        with evaluation_weights(a):
            gaps.append(max_relative_error(evaluated, training_point))
        # back at the training point (up to the rounding of the package's two interpolations)
        assert max_relative_error(evaluated, training_point) < 1e-12
    assert min(gaps) > 1e-3, "the evaluated x_t should differ from the training point y_t"
    assert max_relative_error(evaluated, [p.detach() for p in plain]) < 1e-12


def test_state_is_two_slots_and_the_optimizer_starts_in_training_mode():
    params = make_params(seed=13, dtype=torch.float32)
    optimizer = create("adamw_schedulefree", params)
    assert all(g["train_mode"] for g in optimizer.param_groups)
    take_steps(optimizer, params, 2)
    assert state_bytes(optimizer) == 4 * 2 * sum(p.numel() for p in params)  # z and exp_avg_sq
    spec = get_spec("adamw_schedulefree")
    assert spec.needs_eval_swap and spec.needs_bn_recalibration and spec.constant_schedule
    assert spec.to_dict()["implementation"]["package"] == "schedulefree"


@pytest.mark.parametrize("preset", ["ci", "small", "paper"])
def test_resnet_recalibrates_batchnorm_for_it_and_not_for_others(preset):
    config = resolve_config(RESNET, preset, get_spec("adamw_schedulefree"), {}).suite_config
    assert config["bn_recalibration_batches"] >= 1
    images = config["bn_recalibration_batches"] * config["micro_batch_size"]
    assert images <= (config["train_limit"] or 10**9) and images >= min(1024, config["train_limit"] or 1024)
    assert resolve_config(RESNET, preset, get_spec("adam"), {}).suite_config["bn_recalibration_batches"] == 0
    # the user's --set still wins
    off = resolve_config(RESNET, preset, get_spec("adamw_schedulefree"), {"bn_recalibration_batches": 0})
    assert off.suite_config["bn_recalibration_batches"] == 0


class _Task:
    total_steps, steps_per_epoch = 100, 10


def test_schedules_are_warmup_then_constant():
    from nightbench.suites.resnet50_imagenet.recipes import make_schedule

    resnet_config = resolve_config(RESNET, "ci", get_spec("adamw_schedulefree"), {}).suite_config
    for schedule in (make_schedule("adamw_schedulefree", resnet_config, _Task()),
                     BERT.schedule("adamw_schedulefree", BERT_PRESETS["ci"], _Task())):
        assert schedule.kind == "constant" and schedule.warmup_steps >= 1
        assert schedule.multiplier(schedule.total_steps - 1) == 1.0
    assert BERT.schedule("adam", BERT_PRESETS["ci"], _Task()).kind == "poly"
    assert make_schedule("adam", resnet_config, _Task()).kind == "poly"
