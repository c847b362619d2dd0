"""Documents -> fixed-length token sequences, split into train and validation, cached as .npy arrays.

Documents are split (train/validation) BEFORE packing, so no document feeds both. Each split's
documents are tokenized and concatenated with [SEP] between documents, then cut into sequences
[CLS] + (seq_len - 2 tokens) + [SEP] (RoBERTa's "full sentences" packing; no next-sentence task, no
padding). The arrays are memory-mapped by the batch builder, so the paper-sized corpus is not loaded
into memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SuiteConfigError, SuiteDataError
from .cache import cached_directory
from .documents import Documents
from .tokenizer import tokenizer_fingerprint

MAP_BATCH_DOCUMENTS = 1000  # documents per tokenizer call; the packing remainder of each batch is dropped


@dataclass
class SequenceData:
    train_path: Path
    validation_path: Path
    meta: dict[str, Any]

    def train(self) -> np.ndarray:
        return np.load(self.train_path, mmap_mode="r")

    def validation(self) -> np.ndarray:
        return np.load(self.validation_path, mmap_mode="r")


def _pack_function(tokenizer: Any, text_column: str, seq_len: int):
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    body = seq_len - 2

    def pack(batch: dict) -> dict:
        texts = [t for t in batch[text_column] if isinstance(t, str) and t.strip()]
        encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False,
                            return_token_type_ids=False)["input_ids"] if texts else []
        stream: list[int] = []
        for ids in encoded:
            if ids:
                stream.extend(ids)
                stream.append(sep_id)
        count = len(stream) // body
        return {"input_ids": [[cls_id, *stream[i * body:(i + 1) * body], sep_id] for i in range(count)]}

    return pack


def _write_split(dataset: Any, path: Path, dtype: np.dtype, seq_len: int) -> int:
    """Write a packed split to `path` as an (n, seq_len) .npy array, streaming in chunks."""
    rows = len(dataset)
    if rows == 0:  # numpy cannot memory-map an empty file; the caller reports the corpus as too small
        np.save(path, np.zeros((0, seq_len), dtype=dtype))
        return 0
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(rows, seq_len))
    start = 0
    for chunk in dataset.with_format("numpy").iter(batch_size=8192):
        ids = np.asarray(chunk["input_ids"], dtype=dtype).reshape(-1, seq_len)
        array[start:start + len(ids)] = ids
        start += len(ids)
    array.flush()
    del array
    return rows


def _most_frequent_ordinary_token(path: Path, vocab_size: int, special_ids: list[int]) -> int:
    counts = np.zeros(vocab_size, dtype=np.int64)
    array = np.load(path, mmap_mode="r")
    for start in range(0, len(array), 65536):
        counts += np.bincount(np.asarray(array[start:start + 65536]).ravel(), minlength=vocab_size)
    counts[special_ids] = -1
    return int(counts.argmax())


def check_sequence_config(config: dict) -> tuple[int, float]:
    """(seq_len, validation_fraction) of a preset, or a SuiteConfigError."""
    seq_len = int(config["seq_len"])
    validation_fraction = float(config["validation_fraction"])
    if seq_len < 8:
        raise SuiteConfigError(f"invalid seq_len {seq_len}: expected at least 8")
    if not 0.0 < validation_fraction < 1.0:
        raise SuiteConfigError(f"invalid validation_fraction {validation_fraction}: expected a fraction in (0, 1)")
    return seq_len, validation_fraction


def build_sequences(documents: Documents, tokenizer: Any, config: dict, cache_root: Path) -> SequenceData:
    """Tokenized, packed, split sequences for these documents and this tokenizer (cached)."""
    seq_len, validation_fraction = check_sequence_config(config)
    split_seed = int(config.get("split_seed", 0))
    workers = int(config.get("tokenize_workers") or 0) or None
    key = {"documents": documents.fingerprint, "text_column": documents.text_column,
           "tokenizer": tokenizer_fingerprint(tokenizer), "seq_len": seq_len,
           "validation_fraction": validation_fraction, "split_seed": split_seed, "version": 1}
    vocab_size = len(tokenizer)
    dtype = np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max else np.int32)

    def build(out: Path) -> None:
        if len(documents.dataset) < 2:
            raise SuiteDataError(
                f"corpus too small: {documents.description} has {len(documents.dataset)} document(s); "
                "at least 2 are needed (training and validation)")
        splits = documents.dataset.train_test_split(test_size=validation_fraction, seed=split_seed)
        pack = _pack_function(tokenizer, documents.text_column, seq_len)
        meta: dict[str, Any] = {"seq_len": seq_len, "vocab_size": vocab_size, "source": documents.description}
        for name, part in (("train", splits["train"]), ("validation", splits["test"])):
            packed = part.map(pack, batched=True, batch_size=MAP_BATCH_DOCUMENTS, num_proc=workers,
                              remove_columns=part.column_names, desc=f"tokenizing {name}")
            meta[f"{name}_documents"] = len(part)
            meta[f"{name}_sequences"] = _write_split(packed, out / f"{name}.npy", dtype, seq_len)
        special = sorted(set(tokenizer.all_special_ids))
        meta["most_frequent_token"] = _most_frequent_ordinary_token(out / "train.npy", vocab_size, special)
        (out / "meta.json").write_text(json.dumps(meta, indent=1))

    directory = cached_directory(cache_root, "sequences", key, build)
    meta = json.loads((directory / "meta.json").read_text())
    return SequenceData(directory / "train.npy", directory / "validation.npy", meta)
