"""BERT's masking (Devlin et al. 2019): select ~15% of the ordinary tokens to predict; of those,
80% become [MASK], 10% a random ordinary token, 10% stay unchanged.

Every random draw comes from the `torch.Generator` passed in, never the global RNG, so a batch is a
pure function of the generator's seed (a resumed run sees the same masks). Special tokens ([CLS],
[SEP], [PAD], [MASK], [UNK]) are never selected, and random replacements are ordinary tokens only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from ..config import SuiteConfigError

IGNORE_INDEX = -100  # label of positions that are not predicted (torch's cross_entropy default)


def check_masking(probability: float, replace_with_mask: float, replace_with_random: float) -> None:
    """BERT's masking fractions (mask_probability, mask_replace, mask_random), or a SuiteConfigError."""
    if not 0.0 < probability < 1.0:
        raise SuiteConfigError(f"invalid mask_probability {probability}: expected a fraction in (0, 1)")
    if replace_with_mask < 0 or replace_with_random < 0 or replace_with_mask + replace_with_random > 1:
        raise SuiteConfigError(
            f"invalid mask_replace={replace_with_mask}, mask_random={replace_with_random}: "
            "expected non-negative fractions summing to at most 1 (BERT: 0.8 and 0.1)"
        )


@dataclass(frozen=True)
class MaskingScheme:
    mask_token_id: int
    special_token_ids: tuple[int, ...]
    vocab_size: int
    probability: float = 0.15  # fraction of ordinary tokens selected for prediction
    replace_with_mask: float = 0.8  # of the selected: become [MASK]
    replace_with_random: float = 0.1  # of the selected: become a random ordinary token (rest: unchanged)

    def __post_init__(self) -> None:
        check_masking(self.probability, self.replace_with_mask, self.replace_with_random)

    def ordinary_token_ids(self) -> torch.Tensor:
        keep = torch.ones(self.vocab_size, dtype=torch.bool)
        keep[list(self.special_token_ids)] = False
        return keep.nonzero().squeeze(1)


def mask_tokens(input_ids: torch.Tensor, scheme: MaskingScheme, generator: torch.Generator,
                ordinary_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted input_ids, labels): labels hold the original token where selected, IGNORE_INDEX elsewhere."""
    if ordinary_ids is None:
        ordinary_ids = scheme.ordinary_token_ids()
    special = torch.as_tensor(scheme.special_token_ids, dtype=input_ids.dtype)
    maskable = ~torch.isin(input_ids, special)
    selected = (torch.rand(input_ids.shape, generator=generator) < scheme.probability) & maskable
    action = torch.rand(input_ids.shape, generator=generator)
    to_mask = selected & (action < scheme.replace_with_mask)
    to_random = selected & (action >= scheme.replace_with_mask) & (
        action < scheme.replace_with_mask + scheme.replace_with_random)
    random_tokens = ordinary_ids[torch.randint(len(ordinary_ids), input_ids.shape, generator=generator)]
    corrupted = input_ids.clone()
    corrupted[to_mask] = scheme.mask_token_id
    corrupted[to_random] = random_tokens[to_random].to(input_ids.dtype)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return corrupted, labels


def derived_seed(*parts: int | str) -> int:
    """A well-mixed 63-bit seed from (run seed, purpose, step, ...) so nearby steps get unrelated streams."""
    words = [p if isinstance(p, int) else int.from_bytes(hashlib.sha256(p.encode("utf-8")).digest()[:8], "little")
             for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def generator_for(*parts: int | str) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(*parts))
