"""BERT masking: the 15% / 80-10-10 statistics, special tokens, and determinism per generator seed."""

from __future__ import annotations

import math

import pytest
import torch

from nightbench.suites.bert_mlm.masking import IGNORE_INDEX, MaskingScheme, generator_for, mask_tokens

VOCAB = 1000
SPECIAL = (0, 1, 2, 3, 4)  # pad, unk, cls, sep, mask
MASK_ID = 4


def _scheme(**kw) -> MaskingScheme:
    return MaskingScheme(mask_token_id=MASK_ID, special_token_ids=SPECIAL, vocab_size=VOCAB, **kw)


def _sample_tokens(rows: int = 400, length: int = 128) -> torch.Tensor:
    """Ordinary tokens with [CLS] first, [SEP] last and a [SEP] in the middle of each row."""
    tokens = torch.randint(len(SPECIAL), VOCAB, (rows, length), generator=torch.Generator().manual_seed(123))
    tokens[:, 0], tokens[:, -1], tokens[:, length // 2] = 2, 3, 3
    return tokens


def _within(observed: int, trials: int, p: float, sigmas: float = 5.0) -> bool:
    """Is `observed` within `sigmas` binomial standard deviations of trials * p?"""
    return abs(observed - trials * p) <= sigmas * math.sqrt(trials * p * (1 - p))


def test_selection_and_replacement_fractions_match_bert():
    tokens = _sample_tokens()
    corrupted, labels = mask_tokens(tokens, _scheme(), generator_for(0, "test"))
    ordinary = ~torch.isin(tokens, torch.tensor(SPECIAL))
    selected = labels != IGNORE_INDEX
    n_ordinary, n_selected = int(ordinary.sum()), int(selected.sum())
    assert _within(n_selected, n_ordinary, 0.15)
    assert not (selected & ~ordinary).any(), "special tokens must never be selected"
    became_mask = selected & (corrupted == MASK_ID)
    unchanged = selected & (corrupted == tokens)
    became_other = selected & (corrupted != MASK_ID) & (corrupted != tokens)
    # A random replacement equals the original with probability 1/|ordinary tokens|.
    p_same = 1 / (VOCAB - len(SPECIAL))
    assert _within(int(became_mask.sum()), n_selected, 0.8)
    assert _within(int(became_other.sum()), n_selected, 0.1 * (1 - p_same))
    assert _within(int(unchanged.sum()), n_selected, 0.1 + 0.1 * p_same)
    assert not torch.isin(corrupted[became_other], torch.tensor(SPECIAL)).any(), "random tokens are ordinary"


def test_labels_hold_originals_and_unselected_positions_are_untouched():
    tokens = _sample_tokens(50)
    corrupted, labels = mask_tokens(tokens, _scheme(), generator_for(1, "test"))
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], tokens[selected])
    assert torch.equal(corrupted[~selected], tokens[~selected])


def test_masks_are_a_function_of_the_generator_seed_only():
    tokens = _sample_tokens(20)
    first = mask_tokens(tokens, _scheme(), generator_for(7, "mask", 3))
    torch.manual_seed(999)  # the global RNG must not matter
    again = mask_tokens(tokens, _scheme(), generator_for(7, "mask", 3))
    other_step = mask_tokens(tokens, _scheme(), generator_for(7, "mask", 4))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], other_step[1])


def test_other_mask_probability_is_respected():
    tokens = _sample_tokens()
    _, labels = mask_tokens(tokens, _scheme(probability=0.4), generator_for(2, "test"))
    n_ordinary = int((~torch.isin(tokens, torch.tensor(SPECIAL))).sum())
    assert _within(int((labels != IGNORE_INDEX).sum()), n_ordinary, 0.4)


@pytest.mark.parametrize("kw", [{"probability": 0.0}, {"probability": 1.5}, {"replace_with_mask": 0.95}])
def test_invalid_masking_fractions_are_rejected(kw):
    with pytest.raises(ValueError, match="expected"):
        _scheme(**kw)
