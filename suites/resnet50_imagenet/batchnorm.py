"""BatchNorm recalibration at the evaluated weights.

NIGT computes its gradients, and so its BatchNorm running statistics, at the extrapolated point
x_t, while the engine evaluates the reported iterate w_t. The running mean/variance collected at
x_t may not fit w_t. Recalibration recomputes them at the weights the model holds now (w_t during
evaluation): reset the running statistics, run a few training batches forward in train mode with
a cumulative average (momentum None), evaluate, then put the original statistics back so that
training continues exactly as if nothing had happened.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch
from torch.nn.modules.batchnorm import _BatchNorm


def batchnorm_layers(model: torch.nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@contextlib.contextmanager
def recalibrated_batchnorm(model: torch.nn.Module, batches: Iterable[torch.Tensor]) -> Iterator[int]:
    """Inside the block the model's BatchNorm statistics are recomputed from `batches` (images on
    the model's device) and the model is in eval mode; on exit the original statistics, momenta
    and train/eval mode are restored. Yields the number of images used."""
    layers = batchnorm_layers(model)
    saved = [
        (layer.running_mean.clone(), layer.running_var.clone(), layer.num_batches_tracked.clone(), layer.momentum)
        for layer in layers
    ]
    was_training = model.training
    images_seen = 0
    try:
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None  # a plain average over the recalibration batches
        model.train()
        with torch.no_grad():
            for images in batches:
                model(images)
                images_seen += images.shape[0]
        model.eval()
        yield images_seen
    finally:
        for layer, (mean, var, count, momentum) in zip(layers, saved):
            layer.running_mean.copy_(mean)
            layer.running_var.copy_(var)
            layer.num_batches_tracked.copy_(count)
            layer.momentum = momentum
        model.train(was_training)
