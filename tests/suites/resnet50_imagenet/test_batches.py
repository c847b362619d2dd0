"""resnet50_imagenet batches and BatchNorm: determinism per (seed, step) across restarts and worker
counts, epoch permutations, and BatchNorm recalibration that leaves training's statistics untouched."""

from __future__ import annotations

import itertools
import multiprocessing

import numpy as np
import pytest
import torch

from nightbench.suites.resnet50_imagenet.batches import StepBatchSampler
from nightbench.suites.resnet50_imagenet.batchnorm import batchnorm_layers, recalibrated_batchnorm

from .helpers import build


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for (images_a, labels_a), (images_b, labels_b) in zip(a, b):
        assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)


def test_restart_at_step_k_sees_the_same_batches_with_or_without_workers():
    task = build("ci", num_workers=0)
    uninterrupted = list(task.train_batches(0))
    assert len(uninterrupted) == task.total_steps == 9  # 96 images // 16 = 6 steps/epoch x 1.5 epochs
    with_workers = build("ci", num_workers=1)
    stream = with_workers.train_batches(5)  # crosses the epoch boundary at step 6
    first = next(stream)
    assert multiprocessing.active_children()  # the loader's worker process
    resumed = [first, *stream]
    assert_same_batches(uninterrupted[5:], resumed)
    stopped_early = with_workers.train_batches(0)
    next(stopped_early)
    with_workers.close()  # what the engine calls when a run ends, finished or not
    assert not multiprocessing.active_children()


def test_another_seed_gives_other_batches():
    a = next(build("ci", seed=0).train_batches(0))
    b = next(build("ci", seed=1).train_batches(0))
    assert not torch.equal(a[0], b[0])


def test_each_epoch_is_a_fresh_permutation_without_repeats():
    sampler = StepBatchSampler(n_images=50, batch_size=8, seed=3, start_step=0, stop_step=12)
    assert sampler.steps_per_epoch == 6  # the last partial batch (2 images) is dropped
    epoch0 = np.concatenate([sampler.indices(s) for s in range(6)])
    epoch1 = np.concatenate([sampler.indices(s) for s in range(6, 12)])
    assert len(set(epoch0.tolist())) == 48 and len(set(epoch1.tolist())) == 48
    assert not np.array_equal(epoch0, epoch1)
    keys = list(itertools.islice(iter(sampler), 2))
    assert [k[1] for k in keys[1]] == [1] * 8 and [k[2] for k in keys[1]] == list(range(8))  # (index, step, position)


def test_a_batch_larger_than_the_split_is_refused():
    with pytest.raises(ValueError, match="at least"):
        StepBatchSampler(n_images=5, batch_size=8, seed=0, start_step=0, stop_step=1)


def test_recalibration_averages_batch_statistics_then_restores_them():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    bn = model[1]
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(7.0)
    bn.num_batches_tracked.fill_(42)
    model.eval()
    batches = [torch.randn(6, 3, 5, 5) * 2 + 1 for _ in range(3)]
    with torch.no_grad():
        activations = torch.cat([model[0](x) for x in batches])
    with recalibrated_batchnorm(model, batches) as images_used:
        assert images_used == 18 and not model.training
        # equal batch sizes: the average of per-batch means is the mean over all activations
        expected_mean = activations.mean(dim=(0, 2, 3))
        assert torch.allclose(bn.running_mean, expected_mean, atol=1e-5)
        per_batch_var = [model[0](x).detach().var(dim=(0, 2, 3), unbiased=True) for x in batches]
        assert torch.allclose(bn.running_var, torch.stack(per_batch_var).mean(dim=0), atol=1e-4)
    assert torch.equal(bn.running_mean, torch.full((4,), 5.0))
    assert torch.equal(bn.running_var, torch.full((4,), 7.0))
    assert int(bn.num_batches_tracked) == 42 and bn.momentum == 0.1 and not model.training


def test_evaluate_with_recalibration_reports_both_and_leaves_statistics_unchanged():
    task = build("ci", bn_recalibration_batches=2)
    model = task.model
    with torch.no_grad():  # training-like statistics that do not fit the weights
        for layer in batchnorm_layers(model):
            layer.running_var.mul_(50.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert metrics["bn_recalibration_images"] == 2 * task.micro_batch_size
    assert metrics["loss"] != metrics["loss_without_bn_recalibration"]
    assert 0.0 <= metrics["top1_without_bn_recalibration"] <= 1.0
    plain = build("ci").evaluate(model.eval())
    assert plain["top1"] == metrics["top1_without_bn_recalibration"] and "bn_recalibration_images" not in plain
