"""Deterministic batches: which images (and which augmentation) each training step sees.

The batch of step s is a pure function of (seed, s): epoch e = s // steps_per_epoch takes the
permutation `default_rng([seed, 0, e])` of the training images (the last partial batch
dropped), and step s reads its slice. Image j of that batch is augmented with the generator
`default_rng([seed, 1, s, j])`. So a run resumed at step k sees exactly the batches of
an uninterrupted run, whatever the number of loader worker processes.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..config import SuiteDataError
from .data import ImageSplit
from .transforms import EvalTransform, TrainTransform

# Independent random streams derived from the run's seed: (permutation, augmentation) pairs for
# the training batches and for BatchNorm recalibration's batches.
TRAINING_STREAMS = (0, 1)
RECALIBRATION_STREAMS = (2, 3)

# A sample key: (image index, step, position in the batch); the step and position seed its augmentation.
SampleKey = tuple[int, int, int]


class StepBatchSampler:
    """Yields, for each step in [start_step, stop_step), the keys of that step's images."""

    def __init__(self, n_images: int, batch_size: int, seed: int, start_step: int, stop_step: int,
                 stream: int = TRAINING_STREAMS[0]) -> None:
        if batch_size > n_images:
            raise SuiteDataError(
                f"a batch of {batch_size} images needs at least that many images; the split has {n_images}")
        self.n_images, self.batch_size, self.seed, self.stream = n_images, batch_size, seed, stream
        self.start_step, self.stop_step = int(start_step), int(stop_step)
        self.steps_per_epoch = n_images // batch_size
        self._cached_epoch: int | None = None
        self._permutation: np.ndarray | None = None

    def indices(self, step: int) -> np.ndarray:
        """The image indices of `step`'s batch."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        if epoch != self._cached_epoch:
            self._permutation = np.random.default_rng([self.seed, self.stream, epoch]).permutation(self.n_images)
            self._cached_epoch = epoch
        return self._permutation[offset * self.batch_size:(offset + 1) * self.batch_size]

    def __len__(self) -> int:
        return max(0, self.stop_step - self.start_step)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for step in range(self.start_step, self.stop_step):
            yield [(int(i), step, position) for position, i in enumerate(self.indices(step))]


class AugmentedImages(Dataset):
    """Training images, each augmented by a generator seeded from (seed, stream, step, position)."""

    def __init__(self, split: ImageSplit, transform: TrainTransform, seed: int, stream: int = TRAINING_STREAMS[1]) -> None:
        self.split, self.transform, self.seed, self.stream = split, transform, seed, stream

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, int]:
        index, step, position = key
        rng = np.random.default_rng([self.seed, self.stream, step, position])
        return self.transform(self.split.load(index), rng), self.split.label(index)


class EvalImages(Dataset):
    """Validation images with the deterministic evaluation transform."""

    def __init__(self, split: ImageSplit, transform: EvalTransform) -> None:
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.split.load(index)), self.split.label(index)


def collate(samples: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [B, 3, S, S] float32, labels [B] int64)."""
    images = torch.stack([s[0] for s in samples])
    labels = torch.tensor([s[1] for s in samples], dtype=torch.int64)
    return images, labels


def make_loader(dataset: Dataset, batch_sampler, num_workers: int, pin_memory: bool) -> DataLoader:
    """A DataLoader over explicit batches; worker processes decode and augment ahead of the step."""
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers > 0 else None,
    )


def training_batches(
    split: ImageSplit, transform: TrainTransform, seed: int, batch_size: int, start_step: int, stop_step: int,
    num_workers: int, pin_memory: bool = False, streams: tuple[int, int] = TRAINING_STREAMS,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of steps start_step .. stop_step - 1, as (images, labels)."""
    sampler = StepBatchSampler(len(split), batch_size, seed, start_step, stop_step, stream=streams[0])
    dataset = AugmentedImages(split, transform, seed, stream=streams[1])
    loader = make_loader(dataset, sampler, num_workers, pin_memory)
    iterator = iter(loader)
    try:
        yield from iterator
    finally:
        # Shut worker processes down as soon as the consumer stops (early exit, divergence, close()).
        del iterator


def evaluation_batches(split: ImageSplit, transform: EvalTransform, batch_size: int, num_workers: int,
                       pin_memory: bool = False) -> DataLoader:
    """The validation images in a fixed order, `batch_size` at a time (the last batch may be smaller)."""
    batches = [list(range(i, min(i + batch_size, len(split)))) for i in range(0, len(split), batch_size)]
    return make_loader(EvalImages(split, transform), batches, num_workers, pin_memory)

