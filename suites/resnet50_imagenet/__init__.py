"""resnet50_imagenet: ResNet-50 on ImageNet, the paper's second benchmark (Cutkosky & Mehta 2020, 5.3).

    nightbench run --suite resnet50_imagenet --optimizer nigt --preset small
    nightbench run --suite resnet50_imagenet --optimizer sgd --preset paper --set data_path=/data/imagenet

Module map: presets.py (the sizes), config.py (checking a config), data.py (image sources, checked
before training), transforms.py (augmentation), batches.py (deterministic batches per step),
model.py (timm ResNet), evaluation.py + batchnorm.py (metrics, BatchNorm recalibration),
recipes.py (per-optimizer defaults and schedules), task.py (assembling a TrainingTask).
"""

from .suite import SUITE

__all__ = ["SUITE"]
