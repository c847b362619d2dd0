"""Where the text comes from: the offline Python-docs corpus, local text files, or a `datasets` corpus.

Every source becomes a `datasets.Dataset` of documents with one text column, plus a fingerprint of
its content (what the tokenized cache is keyed on). Missing paths and missing columns fail here,
before any model is built.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DataIsADirectoryError, DataNotFoundError, SuiteConfigError
from .cache import cached_directory, file_digest, fingerprint
from .corpus import SOURCES, corpus_key, python_docs_corpus

LOCAL_CORPUS = "python_docs"  # the `dataset` value that selects the offline corpus
TEXT_BUILDER = "text"


@dataclass
class Documents:
    dataset: Any  # datasets.Dataset
    text_column: str
    fingerprint: str
    description: str


def _int_or_none(key: str, value: Any) -> int | None:
    if value is None or value == "" or str(value).lower() == "none":
        return None
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        raise SuiteConfigError(f"invalid {key}={value!r}: expected a positive integer or none") from None
    if number <= 0:
        raise SuiteConfigError(f"invalid {key}={value!r}: expected a positive integer or none")
    return number


def _as_list(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def local_corpus_documents(config: dict, cache_root: Path) -> Documents:
    """The offline corpus, built once and cached as a JSON list of documents."""
    from datasets import Dataset

    sources = _as_list(config.get("corpus_sources") or list(SOURCES))
    max_chars = _int_or_none("corpus_chars", config.get("corpus_chars"))

    def build(out: Path) -> None:
        (out / "documents.json").write_text(json.dumps(python_docs_corpus(sources, max_chars)), encoding="utf-8")

    directory = cached_directory(cache_root, "corpus", corpus_key(sources, max_chars), build)
    path = directory / "documents.json"
    documents = json.loads(path.read_text(encoding="utf-8"))
    return Documents(Dataset.from_dict({"text": documents}), "text", file_digest(path),
                     f"python_docs ({'+'.join(sources)}, {len(documents)} documents)")


def resolve_data_files(data_files: Any) -> list[str]:
    """Expand a comma-separated list (or list) of paths and globs; every entry must match a file."""
    paths: list[str] = []
    for entry in _as_list(data_files):
        expanded = os.path.expanduser(entry)
        if glob.has_magic(expanded):
            matches = sorted(glob.glob(expanded))
            if not matches:
                raise DataNotFoundError(f"data_files pattern '{entry}' matches no file: expected text files")
            paths.extend(matches)
        elif os.path.isdir(expanded):
            raise DataIsADirectoryError(
                f"data_files entry '{entry}' is a directory: expected text files (or a glob like '{entry}/*.txt')")
        elif not os.path.exists(expanded):
            raise DataNotFoundError(f"data_files entry '{entry}' does not exist: expected a text file")
        else:
            paths.append(expanded)
    if not paths:
        raise SuiteConfigError("data_files is empty: expected one or more text files (comma-separated)")
    return paths


def load_documents(config: dict, cache_root: Path) -> Documents:
    """The documents a preset asks for (see presets.py for the keys)."""
    dataset = config.get("dataset")
    data_files = config.get("data_files")
    text_column = str(config.get("text_column") or "text")
    if dataset in (None, "") and not data_files:
        raise SuiteConfigError(
            "no corpus given: set dataset=<hub name or local dataset directory>, or data_files=<text files> "
            f"(the paper used Wikipedia + BooksCorpus), or dataset={LOCAL_CORPUS} for the offline corpus"
        )
    if dataset == LOCAL_CORPUS:
        if data_files:
            raise SuiteConfigError(f"dataset={LOCAL_CORPUS} and data_files={data_files!r} were both given: set "
                                   f"dataset=text (or none) to read the files, or drop data_files for the offline corpus")
        return local_corpus_documents(config, cache_root)
    loaded, description = _load_with_datasets(dataset, data_files, config, cache_root / "hf_datasets")
    if text_column not in loaded.column_names:
        raise SuiteConfigError(
            f"text_column '{text_column}' is not in {description}: available columns {loaded.column_names}")
    files = resolve_data_files(data_files) if data_files else []
    content = {"description": description, "fingerprint": getattr(loaded, "_fingerprint", None),
               "files": [(p, os.path.getsize(p), os.path.getmtime(p)) for p in files]}
    return Documents(loaded, text_column, fingerprint(content), description)


def _load_with_datasets(dataset: Any, data_files: Any, config: dict, hf_cache: Path) -> tuple[Any, str]:
    """(datasets.Dataset, description) for local text files or a hub/local dataset; clear errors otherwise."""
    from datasets import load_dataset

    split = str(config.get("dataset_split") or "train")
    if data_files:
        builder = TEXT_BUILDER if dataset in (None, "") else str(dataset)
        files = resolve_data_files(data_files)
        options = {"sample_by": str(config.get("text_sample_by") or "line")} if builder == TEXT_BUILDER else {}
        description = f"{builder} files {files}"
        arguments: tuple = (builder,)
        options.update(data_files=files)
    else:
        name = os.path.expanduser(str(dataset))
        if (name.startswith((".", "/")) or name.count("/") > 1) and not os.path.exists(name):
            raise DataNotFoundError(
                f"dataset path '{dataset}' does not exist: expected a local dataset directory, a hub dataset "
                "name (cached when offline), or data_files=<text files>")
        description = f"dataset {dataset} ({config.get('dataset_config')}, split {split})"
        arguments, options = (name, config.get("dataset_config") or None), {}
    try:
        return load_dataset(*arguments, split=split, cache_dir=str(hf_cache), **options), description
    except (FileNotFoundError, ValueError, ConnectionError) as exc:  # ConnectionError: offline and not cached
        raise DataNotFoundError(f"could not load {description}: {exc}") from exc
