"""The resnet50_imagenet suite object (the package docstring says what each module does)."""


from __future__ import annotations

from typing import Any

from nightbench.optimizers import Schedule
from nightbench.suites.base import BuildContext, TrainingSuite, TrainingTask

from .config import check_config
from .presets import PARITY_MARGINS, PRESETS, TARGET_VALUES
from .recipes import make_schedule, optimizer_defaults
from .task import build_task


class ResNetImageNetSuite(TrainingSuite):
    """ResNet on ImageNet (paper) or on upsampled digits (small, ci): top-1 on the validation split."""

    name = "resnet50_imagenet"
    title = "ResNet-50 image classification"
    description = ("timm ResNet-50 on ImageNet (folder layout or a `datasets` image dataset), global batch 1024, "
                   "90 epochs; small/ci: scikit-learn's digits, upsampled. Metrics: top-1, top-5, loss.")
    presets = PRESETS
    target_metric = "top1"
    target_values = TARGET_VALUES
    warmup_keys = ("warmup_epochs", "epochs")
    parity_margins = PARITY_MARGINS

    def optimizer_defaults(self, optimizer_name: str, config: dict[str, Any]) -> dict[str, Any]:
        """Default lr/momentum/weight decay (and the paper's recipe for normalized optimizers)."""
        return optimizer_defaults(optimizer_name, config)

    def validate_config(self, config: dict[str, Any]) -> None:
        """Every key typed and in range (config.check_config), before any run directory exists; the
        batch's split over processes is checked again by the build, which knows their number."""
        check_config(config)

    def schedule(self, optimizer_name: str, config: dict[str, Any], task: TrainingTask) -> Schedule:
        """SGD: warmup then step decay at the milestone epochs; others: warmup then (1 - t/T)^2."""
        return make_schedule(optimizer_name, config, task)

    def build(self, ctx: BuildContext) -> TrainingTask:
        """Check the config and the data, then build the model and the deterministic batches."""
        return build_task(ctx)


SUITE = ResNetImageNetSuite()
