"""BERT for masked-LM, built from a config (no weights are ever downloaded).

`MaskedPositionsBertForMaskedLM` is transformers' BertForMaskedLM (same modules, same parameter
names, tied input/output embeddings) whose forward applies the vocabulary head only at the positions
to be predicted. The loss is the same; the head over all positions costs several times more for
nothing (it dominates a small BERT's step), as in NVIDIA's and Google's BERT implementations.
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForMaskedLM

from ..config import SuiteConfigError
from .masking import IGNORE_INDEX


class MaskedPositionsBertForMaskedLM(BertForMaskedLM):
    """BertForMaskedLM returning logits only where `labels != IGNORE_INDEX` (shape: masked x vocab)."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **unused) -> torch.Tensor:
        hidden = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                           return_dict=True).last_hidden_state
        if labels is None:
            return self.cls(hidden)
        return self.cls(hidden[labels != IGNORE_INDEX])


def check_model_shape(config: dict) -> tuple[int, int]:
    """(hidden_size, num_heads) of a preset, or a SuiteConfigError: attention splits hidden_size over the heads."""
    hidden, heads = int(config["hidden_size"]), int(config["num_heads"])
    if hidden % heads:
        raise SuiteConfigError(f"invalid model shape: hidden_size {hidden} is not a multiple of num_heads {heads}")
    return hidden, heads


def bert_config(config: dict, vocab_size: int, pad_token_id: int) -> BertConfig:
    """The BertConfig a preset describes (num_layers, hidden_size, num_heads, intermediate_size, dropout)."""
    hidden, heads = check_model_shape(config)
    dropout = float(config.get("dropout", 0.1))
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=int(config["num_layers"]),
        num_attention_heads=heads,
        intermediate_size=int(config["intermediate_size"]),
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        max_position_embeddings=max(int(config["seq_len"]), 8),
        type_vocab_size=2,
        pad_token_id=pad_token_id,
        tie_word_embeddings=True,
    )


def build_model(config: dict, vocab_size: int, pad_token_id: int, seed: int) -> MaskedPositionsBertForMaskedLM:
    """A freshly initialized model; its initialization depends only on `seed`, not the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MaskedPositionsBertForMaskedLM(bert_config(config, vocab_size, pad_token_id))
