"""Loss and accuracy: only masked positions count; the masked-only head equals BERT's full head;
accumulating micro-batches equals one batch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from transformers import BertForMaskedLM

from nightbench.suites.batching import micro_batches
from nightbench.suites.bert_mlm.masking import IGNORE_INDEX
from nightbench.suites.bert_mlm.model import MaskedPositionsBertForMaskedLM, bert_config
from nightbench.suites.bert_mlm.task import evaluate_masked_lm, masked_lm_loss, masked_token_count

VOCAB = 50


class OracleModel(torch.nn.Module):
    """Follows the model contract (logits at masked positions) with scripted right/wrong answers.

    It knows the original tokens (a test-only privilege); `right_where_masked` decides whether it
    is right at masked positions (and wrong elsewhere) or the reverse.
    """

    def __init__(self, originals: torch.Tensor, right_where_masked: bool):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # evaluation finds the device from a parameter
        self.originals, self.right_where_masked = originals, right_where_masked

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        masked = labels != IGNORE_INDEX
        right, wrong = self.originals, (self.originals + 1) % VOCAB
        predicted = torch.where(masked == self.right_where_masked, right, wrong)
        full_logits = F.one_hot(predicted, VOCAB).float() * 10
        return full_logits[masked]


def _batch(seed: int = 0, rows: int = 8, length: int = 24) -> tuple[dict, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    originals = torch.randint(5, VOCAB, (rows, length), generator=g)
    masked = torch.rand(rows, length, generator=g) < 0.3
    labels = torch.where(masked, originals, torch.full_like(originals, IGNORE_INDEX))
    inputs = torch.where(masked, torch.full_like(originals, 4), originals)
    batch = {"input_ids": inputs, "attention_mask": torch.ones_like(inputs),
             "token_type_ids": torch.zeros_like(inputs), "labels": labels}
    return batch, originals


def test_accuracy_counts_masked_positions_only():
    batch, originals = _batch()
    right = evaluate_masked_lm(OracleModel(originals, right_where_masked=True), [batch], most_frequent_token=5)
    wrong = evaluate_masked_lm(OracleModel(originals, right_where_masked=False), [batch], most_frequent_token=5)
    assert right["mlm_accuracy"] == 1.0
    assert wrong["mlm_accuracy"] == 0.0
    assert right["eval_masked_tokens"] == masked_token_count(batch)
    assert right["mlm_loss"] < wrong["mlm_loss"]


def test_unigram_baseline_is_the_accuracy_of_always_predicting_the_most_frequent_token():
    batch, originals = _batch(1)
    token = int(torch.mode(batch["labels"][batch["labels"] != IGNORE_INDEX]).values)
    constant = OracleModel(torch.full_like(originals, token), right_where_masked=True)
    metrics = evaluate_masked_lm(constant, [batch], most_frequent_token=token)
    assert 0 < metrics["mlm_accuracy_baseline_unigram"] < 1
    assert math.isclose(metrics["mlm_accuracy"], metrics["mlm_accuracy_baseline_unigram"])


def _tiny_config() -> dict:
    return {"num_layers": 1, "hidden_size": 16, "num_heads": 2, "intermediate_size": 32, "dropout": 0.0, "seq_len": 24}


def test_masked_only_head_gives_the_full_head_loss():
    torch.manual_seed(0)
    config = bert_config(_tiny_config(), VOCAB, pad_token_id=0)
    ours = MaskedPositionsBertForMaskedLM(config).eval()
    reference = BertForMaskedLM(config).eval()
    reference.load_state_dict(ours.state_dict())
    batch, _ = _batch(2)
    loss_sum, _ = masked_lm_loss(ours, batch)
    full = reference(**batch).loss  # the mean over masked positions, computed over the full vocabulary head
    assert torch.allclose(loss_sum / masked_token_count(batch), full, rtol=1e-5)


def test_accumulating_four_micro_batches_equals_one_batch():
    torch.manual_seed(0)
    model = MaskedPositionsBertForMaskedLM(bert_config(_tiny_config(), VOCAB, pad_token_id=0)).eval()
    batch, _ = _batch(3, rows=16)
    total = masked_token_count(batch)

    def gradients(pieces) -> list[torch.Tensor]:
        model.zero_grad()
        for piece in pieces:
            (masked_lm_loss(model, piece)[0] / total).backward()
        return [p.grad.clone() for p in model.parameters()]

    whole, accumulated = gradients([batch]), gradients(micro_batches(batch, 4))
    assert len(micro_batches(batch, 4)) == 4
    for a, b in zip(whole, accumulated):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
