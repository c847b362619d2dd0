"""Image transforms: the standard ImageNet training and evaluation pipelines, with explicit RNGs.

Training: random resized crop (area fraction in [crop_scale_min, 1], aspect ratio in [3/4, 4/3],
Szegedy et al. 2015) to `image_size`, then a horizontal flip with probability 1/2.
Evaluation: resize the shorter side to `resize_size`, center crop `image_size` (256/224 at paper).

Every random choice comes from a numpy Generator passed in by the caller (seeded from the run's
seed, the step and the position in the batch), never from a global RNG: a resumed run, or one with
a different number of loader workers, sees exactly the same augmented images.
Images enter as uint8 tensors [3, H, W] and leave as normalized float32 tensors [3, S, S].
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

# The ImageNet channel statistics every torchvision/timm ResNet recipe normalizes with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
_CROP_ATTEMPTS = 10


def sample_crop_box(
    height: int, width: int, rng: np.random.Generator, scale: tuple[float, float], ratio: tuple[float, float]
) -> tuple[int, int, int, int]:
    """A random (top, left, h, w) box covering `scale` of the area with aspect ratio in `ratio`.

    Tries a few random boxes; when none fits (very elongated images) falls back to the largest
    central box whose aspect ratio lies within `ratio`.
    """
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(_CROP_ATTEMPTS):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    image_ratio = width / height
    if image_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif image_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def _normalize(image: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return (image.to(torch.float32) / 255.0 - mean) / std


class TrainTransform:
    """Random resized crop to `image_size` and a random horizontal flip, from the caller's RNG."""

    def __init__(self, image_size: int, crop_scale_min: float = 0.08, hflip: bool = True) -> None:
        self.image_size = int(image_size)
        self.scale = (float(crop_scale_min), 1.0)
        self.hflip = bool(hflip)

    def __call__(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        _, height, width = image.shape
        top, left, h, w = sample_crop_box(height, width, rng, self.scale, ASPECT_RATIO_RANGE)
        out = TF.resized_crop(image, top, left, h, w, [self.image_size, self.image_size], antialias=True)
        # Draw the flip coin even when flipping is off, so both settings consume the RNG alike.
        if rng.random() < 0.5 and self.hflip:
            out = TF.horizontal_flip(out)
        return _normalize(out)


class EvalTransform:
    """Resize the shorter side to `resize_size`, then center crop `image_size`; deterministic."""

    def __init__(self, image_size: int, resize_size: int) -> None:
        self.image_size = int(image_size)
        self.resize_size = int(resize_size)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        out = TF.resize(image, [self.resize_size], antialias=True)
        out = TF.center_crop(out, [self.image_size, self.image_size])
        return _normalize(out)
