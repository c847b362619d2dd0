"""Training batches as a pure function of (seed, step): the order and the masks of every step.

Example order: global example k = step * batch + j lives in epoch k // n at position k % n of that
epoch's permutation, seeded by (seed, epoch). Masks: a generator seeded by (seed, step). A resumed
run therefore sees exactly the batches an uninterrupted one sees. Batches are built in DataLoader
workers (num_workers from the preset) so masking and gathering overlap with the training step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .masking import MaskingScheme, generator_for, mask_tokens


class StepBatches(torch.utils.data.Dataset):
    """Item i is the global batch of step `first_step + i` (a dict of CPU tensors)."""

    def __init__(self, sequences_path: str | Path, batch_size: int, seed: int, scheme: MaskingScheme,
                 first_step: int, end_step: int):
        self.sequences_path = str(sequences_path)
        self.batch_size, self.seed, self.scheme = batch_size, seed, scheme
        self.first_step, self.end_step = first_step, end_step
        self._array: np.ndarray | None = None
        self._permutations: dict[int, torch.Tensor] = {}
        self._ordinary_ids = scheme.ordinary_token_ids()

    def __getstate__(self) -> dict:  # workers reopen the memory map instead of pickling the array
        return {**self.__dict__, "_array": None, "_permutations": {}}

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.sequences_path, mmap_mode="r")
        return self._array

    def __len__(self) -> int:
        return max(0, self.end_step - self.first_step)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._permutations:
            if len(self._permutations) > 2:  # a batch spans at most two epochs; keep memory flat
                self._permutations.clear()
            order_rng = generator_for(self.seed, "order", epoch)
            self._permutations[epoch] = torch.randperm(len(self.array), generator=order_rng)
        return self._permutations[epoch]

    def example_indices(self, step: int) -> np.ndarray:
        n = len(self.array)
        ks = range(step * self.batch_size, (step + 1) * self.batch_size)
        return np.array([int(self._permutation(k // n)[k % n]) for k in ks], dtype=np.int64)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        # Rows stay in permutation order (not sorted by index): the engine cuts batches into contiguous
        # halves and micro-batches, and those must be independent samples, not corpus regions.
        tokens = torch.from_numpy(np.asarray(self.array[self.example_indices(step)], dtype=np.int64))
        input_ids, labels = mask_tokens(tokens, self.scheme, generator_for(self.seed, "mask", step), self._ordinary_ids)
        return {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "token_type_ids": torch.zeros_like(input_ids),
            "labels": labels,
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.batch(self.first_step + index)


def iterate_batches(dataset: StepBatches, num_workers: int) -> Iterator[dict[str, torch.Tensor]]:
    """The batches of `dataset` in step order, built by `num_workers` background processes (0: inline)."""
    if num_workers <= 0:
        for index in range(len(dataset)):
            yield dataset[index]
        return
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=num_workers,
                                         prefetch_factor=4, persistent_workers=False)
    yield from loader
