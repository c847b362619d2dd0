"""Shared helpers for the resnet50_imagenet tests: building a task, writing a tiny image folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nightbench.suites.base import BuildContext, TrainingTask
from nightbench.suites.resnet50_imagenet import SUITE

# Class i of the tiny folders is painted mostly in channel i: a decoded image tells its class.
TINY_CLASSES = ("n01_red", "n02_green", "n03_blue")

# A folder-backed config small enough for a CPU test: ResNet-18 at 8x8.
TINY_FOLDER_CONFIG = {
    "model": "resnet18", "image_size": 8, "resize_size": 10, "global_batch_size": 4, "micro_batch_size": 2,
    "eval_batch_size": 4, "num_workers": 0, "train_limit": 0, "val_limit": 0, "verify_images_per_class": -1,
    "epochs": 2.0, "warmup_epochs": 0.5, "sgd_milestone_epochs": [1.0],
}


def build(preset: str = "ci", seed: int = 0, **overrides) -> TrainingTask:
    """SUITE.build on a preset with `overrides` applied, on the CPU."""
    config = {**SUITE.presets[preset], **overrides}
    ctx = BuildContext(config=config, seed=seed, device=torch.device("cpu"), cache_dir="/nonexistent",
                       optimizer_name="sgd")
    return SUITE.build(ctx)


def write_image(path: Path, class_index: int, size: tuple[int, int], shade: int) -> None:
    pixels = np.full((size[1], size[0], 3), 20, dtype=np.uint8)
    pixels[:, :, class_index] = 200 + shade
    Image.fromarray(pixels).save(path)


def write_image_folder(root: Path, per_class: dict[str, int] | None = None) -> Path:
    """root/train/<class>/*.png and root/val/<class>/*.png, images of varied sizes (PIL-written)."""
    per_class = per_class or {"train": 4, "val": 2}
    for split, count in per_class.items():
        for c, name in enumerate(TINY_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                write_image(folder / f"img{i}.png", c, size=(12 + 3 * i, 10 + i), shade=i)
    return root
