"""Building one resnet50_imagenet TrainingTask: checked config -> data -> model -> batches, loss, evaluation."""

from __future__ import annotations

from typing import Any, Iterator

import torch
import torch.nn.functional as F

from nightbench.suites.base import BuildContext, TrainingTask

from .batches import RECALIBRATION_STREAMS, evaluation_batches, training_batches
from .config import check_config
from .data import DataError, open_splits
from .evaluation import evaluate_with_options
from .model import build_model
from .transforms import EvalTransform, TrainTransform


def schedule_horizon(config: dict[str, Any], steps_per_epoch: int) -> int:
    """Optimizer steps in `epochs` epochs: the length every epoch-based schedule is laid out over."""
    return max(1, int(round(config["epochs"] * steps_per_epoch)))


def cross_entropy_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
                       ) -> tuple[torch.Tensor, dict[str, float]]:
    """The SUM of per-image cross-entropies of a batch, and its training top-1."""
    images, labels = batch
    logits = model(images).float()
    loss_sum = F.cross_entropy(logits, labels, reduction="sum")
    accuracy = float((logits.detach().argmax(dim=1) == labels).float().mean())
    return loss_sum, {"train_top1": accuracy}


def image_count(batch: tuple[torch.Tensor, torch.Tensor]) -> int:
    return int(batch[1].shape[0])


def build_task(ctx: BuildContext) -> TrainingTask:
    """Data checked before the model is built; a DataError or SuiteConfigError names what is wrong."""
    config = check_config(ctx.config, world_size=ctx.world_size)
    train_split, val_split = open_splits(config)
    classes = len(train_split.classes)
    num_classes = config["num_classes"] or classes
    if num_classes < classes:
        raise DataError(f"num_classes={num_classes} but the training data has {classes} classes")
    batch = config["global_batch_size"]
    if len(train_split) < batch:
        raise DataError(
            f"the training split ({train_split.where(0)} ...) has {len(train_split)} images, fewer than one "
            f"global batch of {batch}: lower global_batch_size or supply more images"
        )
    steps_per_epoch = len(train_split) // batch
    horizon = schedule_horizon(config, steps_per_epoch)
    total_steps = min(horizon, config["max_steps"]) if config["max_steps"] else horizon
    eval_every = max(1, int(round(config["eval_every_epochs"] * steps_per_epoch)))

    model = build_model(config["model"], num_classes).to(ctx.device)
    train_transform = TrainTransform(config["image_size"], config["crop_scale_min"], config["hflip"])
    eval_transform = EvalTransform(config["image_size"], config["resize_size"])
    workers, pin = config["num_workers"], ctx.device.type == "cuda"
    open_streams: list[Iterator] = []

    def train_batches(start_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        stream = training_batches(train_split, train_transform, ctx.seed, batch, start_step, total_steps,
                                  workers, pin)
        open_streams.append(stream)
        return stream

    def validation() -> Any:
        return evaluation_batches(val_split, eval_transform, config["eval_batch_size"], workers, pin)

    recalibration = None
    if config["bn_recalibration_batches"]:
        def recalibration() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            # Micro-batches: the size BatchNorm sees during training.
            return training_batches(train_split, train_transform, ctx.seed, config["micro_batch_size"], 0,
                                    config["bn_recalibration_batches"], workers, pin, streams=RECALIBRATION_STREAMS)

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        return evaluate_with_options(model, validation, recalibration, device)

    def close() -> None:
        while open_streams:
            open_streams.pop().close()  # stops loader worker processes

    return TrainingTask(
        model=model,
        train_batches=train_batches,
        loss=cross_entropy_loss,
        count=image_count,
        evaluate=evaluate,
        total_steps=total_steps,
        eval_every=eval_every,
        global_batch_size=batch,
        micro_batch_size=config["micro_batch_size"],
        steps_per_epoch=steps_per_epoch,
        examples_name="images",
        close=close,
    )
