"""Shared fixtures for the bert_mlm tests: one cache of the ci corpus/tokenizer/sequences per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # nothing in these tests may download
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from nightbench.suites.base import BuildContext, TrainingTask  # noqa: E402
from nightbench.suites.bert_mlm import SUITE  # noqa: E402
from nightbench.suites.bert_mlm.corpus import python_docs_corpus  # noqa: E402
from nightbench.suites.bert_mlm.tokenizer import train_wordpiece  # noqa: E402


@pytest.fixture(scope="session")
def results_root(tmp_path_factory) -> Path:
    """A results root shared by the session, so the ci corpus and tokenizer are built once."""
    return tmp_path_factory.mktemp("bert_mlm_results")


def build_task(results_root: Path, preset: str = "ci", seed: int = 0, **overrides) -> TrainingTask:
    """SUITE.build on a preset with `overrides`, on the CPU, caching under `results_root`."""
    config = {**SUITE.presets[preset], **overrides}
    ctx = BuildContext(config=config, seed=seed, device=torch.device("cpu"),
                       cache_dir=str(results_root / "_cache"), optimizer_name="adam")
    return SUITE.build(ctx)


@pytest.fixture(scope="session")
def ci_task(results_root) -> TrainingTask:
    return build_task(results_root)


@pytest.fixture(scope="module")
def english_lines() -> list[str]:
    """Real English prose, one paragraph per line."""
    paragraphs = [p.replace("\n", " ").strip() for doc in python_docs_corpus(["pydoc_topics"], max_chars=40_000)
                  for p in doc.split("\n\n")]
    return [p for p in paragraphs if len(p.split()) >= 5]


@pytest.fixture(scope="module")
def saved_tokenizer(tmp_path_factory, english_lines) -> Path:
    directory = tmp_path_factory.mktemp("tokenizer")
    train_wordpiece(english_lines, 400, directory)
    return directory
