"""The real loading path (load_dataset('text', data_files=...), a saved tokenizer directory) and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nightbench.suites.bert_mlm.tokenizer import load_tokenizer
from nightbench.suites.engine import RunRequest, SuiteInputError, execute_run

from .conftest import build_task

# The paper preset's code path at a toy size (its corpus and tokenizer keys are what is under test).
TOY_PAPER = {"num_layers": 1, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64, "seq_len": 32,
             "global_batch_size": 8, "micro_batch_size": 4, "steps": 2, "warmup_steps": 1, "eval_every": 1,
             "eval_sequences": 16, "validation_fraction": 0.2, "num_workers": 0, "tokenize_workers": 0}


def _sequence_meta(results_root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results_root / "_cache" / "bert_mlm").glob("sequences-*/meta.json"))]


def test_text_files_and_a_saved_tokenizer_feed_the_paper_path(tmp_path, english_lines, saved_tokenizer):
    text_file = tmp_path / "corpus.txt"
    text_file.write_text("\n".join(english_lines) + "\n", encoding="utf-8")
    task = build_task(tmp_path, "paper", data_files=str(text_file), tokenizer=str(saved_tokenizer), **TOY_PAPER)
    (meta,) = _sequence_meta(tmp_path)
    assert meta["train_documents"] + meta["validation_documents"] == len(english_lines), "one document per line"
    assert meta["vocab_size"] == len(load_tokenizer(str(saved_tokenizer)))
    batch = next(task.train_batches(0))
    loss_sum, _ = task.loss(task.model, batch)
    assert math.isfinite(float(loss_sum.detach())) and task.count(batch) > 0
    metrics = task.evaluate(task.model)
    assert 0.0 <= metrics["mlm_accuracy"] <= 1.0 and math.isfinite(metrics["mlm_loss"])


def test_paragraph_documents_are_read_when_asked(tmp_path, english_lines, saved_tokenizer):
    text_file = tmp_path / "corpus.txt"
    text_file.write_text("\n\n".join(english_lines[:60]) + "\n", encoding="utf-8")
    build_task(tmp_path, "paper", data_files=str(text_file), tokenizer=str(saved_tokenizer),
               text_sample_by="paragraph", **{**TOY_PAPER, "global_batch_size": 2, "micro_batch_size": 2})
    (meta,) = _sequence_meta(tmp_path)
    assert meta["train_documents"] + meta["validation_documents"] == 60


@pytest.mark.parametrize("overrides, error, fragment", [
    ({"dataset": None, "data_files": "/no/such/corpus.txt"}, FileNotFoundError, "/no/such/corpus.txt"),
    ({"dataset": "text", "data_files": "/no/such/dir/*.txt"}, FileNotFoundError, "matches no file"),
    ({"data_files": "/some/file.txt"}, ValueError, "were both given"),
    ({"dataset": "/no/such/dataset_dir"}, FileNotFoundError, "/no/such/dataset_dir"),
    ({"dataset": None}, ValueError, "no corpus given"),
    ({"tokenizer": "/no/such/tokenizer"}, FileNotFoundError, "/no/such/tokenizer"),
])
def test_missing_inputs_fail_naming_what_is_missing(tmp_path, overrides, error, fragment):
    defaults = {"dataset": "python_docs", "corpus_sources": ["pydoc_topics"], "corpus_chars": 30_000,
                "tokenizer": None, "vocab_size": 300}
    with pytest.raises(error, match=fragment.replace("*", r"\*")):
        build_task(tmp_path, "paper", **{**TOY_PAPER, **defaults, **overrides})


def test_a_missing_text_column_lists_the_columns(tmp_path, saved_tokenizer):
    text_file = tmp_path / "c.txt"
    text_file.write_text("some words here\n" * 10)
    with pytest.raises(ValueError, match=r"text_column 'body'.*\['text'\]"):
        build_task(tmp_path, "paper", data_files=str(text_file), tokenizer=str(saved_tokenizer),
                   text_column="body", **TOY_PAPER)


def test_a_corpus_too_small_for_one_batch_says_so_before_training(tmp_path, saved_tokenizer):
    text_file = tmp_path / "tiny.txt"
    text_file.write_text("The cat sat on the mat and looked at the dog.\n" * 30, encoding="utf-8")
    overrides = {"data_files": str(text_file), "tokenizer": str(saved_tokenizer)}
    with pytest.raises(SuiteInputError, match="too small for one batch"):
        execute_run(RunRequest(suite="bert_mlm", optimizer="adam", preset="paper", seed=0, progress=False,
                               overrides={**overrides, **TOY_PAPER, "global_batch_size": 64},
                               results_root=str(tmp_path / "results")))
    assert not list((tmp_path / "results").glob("bert_mlm/*/*/*")), "no run directory is left behind"
