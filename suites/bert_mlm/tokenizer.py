"""The WordPiece tokenizer: trained locally (small presets) or loaded from a path or hub name (paper).

A locally trained tokenizer is a BERT-style uncased WordPiece (vocabulary learned by wordpiece.py,
tokenization by `tokenizers`' WordPiece model) wrapped as a `BertTokenizerFast` and saved with
save_pretrained under the cache, keyed by the corpus it was trained on and its vocabulary size. A user's tokenizer must carry BERT's special tokens ([CLS], [SEP], [PAD],
[MASK]); nothing is downloaded when the environment is offline.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

from transformers import AutoTokenizer, BertTokenizerFast, PreTrainedTokenizerBase

from ..config import DataNotADirectoryError, DataNotFoundError, SuiteConfigError, SuiteDataError
from .wordpiece import count_words, learn_vocabulary

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MIN_VOCAB = len(SPECIAL_TOKENS) + 100  # below this WordPiece cannot even hold the alphabet


def train_wordpiece(documents: Iterable[str], vocab_size: int, out_dir: str | Path) -> None:
    """Learn an uncased WordPiece of `vocab_size` entries on `documents` (deterministically, see
    wordpiece.py) and save it as a BertTokenizerFast to `out_dir`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    if int(vocab_size) < MIN_VOCAB:
        raise SuiteConfigError(f"invalid vocab_size {vocab_size}: expected at least {MIN_VOCAB}")
    vocab = learn_vocabulary(count_words(documents), int(vocab_size), SPECIAL_TOKENS)
    backend = Tokenizer(models.WordPiece({piece: i for i, piece in enumerate(vocab)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    cls_id, sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    wrapped = BertTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", do_lower_case=True,
    )
    wrapped.save_pretrained(str(out_dir))


def looks_like_path(name: str) -> bool:
    """Hub names are 'name' or 'org/name'; anything else that names a file system location is a path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or os.path.exists(name)


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """A tokenizer from a local directory (save_pretrained output) or a hub name already cached."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise SuiteConfigError(f"invalid tokenizer {name_or_path!r}: expected a local directory or a hub name")
    expanded = os.path.expanduser(name_or_path)
    if looks_like_path(name_or_path):
        if not os.path.exists(expanded):
            raise DataNotFoundError(
                f"tokenizer path '{name_or_path}' does not exist: expected a directory written by "
                "save_pretrained (tokenizer.json / vocab.txt), or a hub name such as 'bert-base-uncased'"
            )
        if not os.path.isdir(expanded):
            raise DataNotADirectoryError(
                f"tokenizer path '{name_or_path}' is a file: expected a directory written by save_pretrained"
            )
    try:
        tokenizer = AutoTokenizer.from_pretrained(expanded)
    except (OSError, ValueError) as exc:
        raise DataNotFoundError(
            f"tokenizer '{name_or_path}' could not be loaded ({exc.__class__.__name__}: {exc}). Expected a "
            "directory written by save_pretrained, or a hub name present in the Hugging Face cache "
            "(nothing is downloaded offline)"
        ) from exc
    check_special_tokens(tokenizer, name_or_path)
    tokenizer.model_max_length = int(1e12)  # we pack long documents ourselves; silence length warnings
    return tokenizer


def check_special_tokens(tokenizer: PreTrainedTokenizerBase, where: str) -> None:
    """Masked-LM needs [MASK], [CLS], [SEP] and [PAD] (or their equivalents) in the vocabulary."""
    missing = [name for name in ("mask_token", "cls_token", "sep_token", "pad_token")
               if getattr(tokenizer, f"{name}_id", None) is None]
    if missing:
        raise SuiteDataError(f"tokenizer '{where}' lacks {missing}: a BERT masked-LM tokenizer needs all four")


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of everything that decides token ids (the backend's full JSON, else the vocabulary)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
