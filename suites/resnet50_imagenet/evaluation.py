"""Validation metrics: top-1, top-5, mean cross-entropy and evaluation throughput, optionally
after recalibrating BatchNorm at the evaluated weights (see batchnorm.py)."""

from __future__ import annotations

import time
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from ..config import SuiteDataError
from .batchnorm import recalibrated_batchnorm


def classification_metrics(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                           device: torch.device) -> dict[str, float]:
    """Top-1/top-5 accuracy and mean cross-entropy of `model` over `batches` (in its current mode)."""
    correct1 = correct5 = seen = 0
    loss_sum = 0.0
    started = time.perf_counter()
    with torch.no_grad():
        for images, labels in batches:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            logits = model(images).float()
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            hits = top.eq(labels.unsqueeze(1))
            correct1 += int(hits[:, 0].sum())
            correct5 += int(hits.any(dim=1).sum())
            seen += labels.shape[0]
    elapsed = time.perf_counter() - started
    if seen == 0:
        raise SuiteDataError("the validation split produced no images")
    return {
        "top1": correct1 / seen,
        "top5": correct5 / seen,
        "loss": loss_sum / seen,
        "eval_images_per_second": seen / elapsed if elapsed > 0 else float("nan"),
    }


def evaluate_with_options(
    model: torch.nn.Module,
    validation_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    recalibration_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]] | None,
    device: torch.device,
) -> dict[str, float]:
    """The validation metrics; with `recalibration_batches`, those after BatchNorm recalibration,
    plus the top-1 before it (`top1_without_bn_recalibration`), so one run shows the difference."""
    metrics = classification_metrics(model, validation_batches(), device)
    if recalibration_batches is None:
        return metrics
    images = (x.to(device, non_blocking=True) for x, _ in recalibration_batches())
    with recalibrated_batchnorm(model, images) as images_used:
        recalibrated = classification_metrics(model, validation_batches(), device)
    recalibrated["top1_without_bn_recalibration"] = metrics["top1"]
    recalibrated["loss_without_bn_recalibration"] = metrics["loss"]
    recalibrated["bn_recalibration_images"] = float(images_used)
    return recalibrated
