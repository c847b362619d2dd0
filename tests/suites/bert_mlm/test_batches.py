"""Training batches: a pure function of (seed, step); epochs are permutations; resume sees the same."""

from __future__ import annotations

import numpy as np
import torch

from nightbench.suites.bert_mlm.batches import StepBatches, iterate_batches
from nightbench.suites.bert_mlm.masking import IGNORE_INDEX, MaskingScheme

ROWS, LENGTH, BATCH = 20, 16, 6
SCHEME = MaskingScheme(mask_token_id=4, special_token_ids=(0, 1, 2, 3, 4), vocab_size=200)


def _write_sequences(tmp_path) -> str:
    """Row i is [CLS] followed by (10 + i) repeated, then [SEP]: a row's identity survives masking in its labels."""
    rows = np.full((ROWS, LENGTH), 0, dtype=np.uint16)
    rows[:, 0], rows[:, -1] = 2, 3
    rows[:, 1:-1] = (10 + np.arange(ROWS))[:, None]
    path = tmp_path / "train.npy"
    np.save(path, rows)
    return str(path)


def _stream(path, seed=0, start=0, end=12, workers=0):
    return list(iterate_batches(StepBatches(path, BATCH, seed, SCHEME, start, end), workers))


def test_every_epoch_visits_each_sequence_once_in_a_seeded_order(tmp_path):
    dataset = StepBatches(_write_sequences(tmp_path), BATCH, 0, SCHEME, 0, 20)
    order = np.concatenate([dataset.example_indices(step) for step in range(20)])  # 120 = 6 epochs
    epochs = order.reshape(-1, ROWS)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(ROWS))
    assert not all(np.array_equal(epochs[0], e) for e in epochs[1:]), "each epoch is reshuffled"


def test_batches_are_identical_for_the_same_seed_and_step_and_differ_otherwise(tmp_path):
    path = _write_sequences(tmp_path)
    first, again, other_seed = _stream(path), _stream(path), _stream(path, seed=1)
    for a, b in zip(first, again):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(first[0]["labels"], first[1]["labels"])
    assert not all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(first, other_seed))


def test_a_resumed_stream_continues_exactly_where_the_full_one_is(tmp_path):
    path = _write_sequences(tmp_path)
    full, resumed = _stream(path, end=12), _stream(path, start=7, end=12)
    assert len(resumed) == 5
    for a, b in zip(full[7:], resumed):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_worker_processes_yield_the_same_batches_in_step_order(tmp_path):
    path = _write_sequences(tmp_path)
    inline, workers = _stream(path, end=6), _stream(path, end=6, workers=2)
    for a, b in zip(inline, workers):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_batches_carry_masked_inputs_and_labels_of_the_chosen_rows(tmp_path):
    dataset = StepBatches(_write_sequences(tmp_path), BATCH, 0, SCHEME, 0, 3)
    batch = dataset[1]
    assert batch["input_ids"].shape == (BATCH, LENGTH) and batch["input_ids"].dtype == torch.int64
    assert torch.equal(batch["attention_mask"], torch.ones(BATCH, LENGTH, dtype=torch.int64))
    rows = 10 + torch.from_numpy(dataset.example_indices(1))
    labels = batch["labels"]
    for row, label in zip(rows, labels):
        picked = label[label != IGNORE_INDEX]
        assert torch.all(picked == row), "labels are the original tokens of the chosen sequence"
