"""bert_mlm: BERT masked-LM pretraining, the paper's first benchmark (Section 5.2).

Modules: corpus (offline text), documents (where text comes from), tokenizer, sequences (tokenize,
pack, split, cache), masking, batches (deterministic per step), model, task (loss, evaluation,
assembly), presets, suite (the SUITE object), cache (build-once artifacts).
"""

from .suite import SUITE

__all__ = ["SUITE"]
