"""The offline corpus of Python's own documentation: deterministic, deduplicated, capped."""

from __future__ import annotations

import pytest

from nightbench.suites.bert_mlm.corpus import python_docs_corpus


def test_offline_corpus_is_deterministic_deduplicated_and_capped():
    first = python_docs_corpus(["pydoc_topics"], max_chars=50_000)
    assert first == python_docs_corpus(["pydoc_topics"], max_chars=50_000)
    assert len(set(" ".join(d.split()) for d in first)) == len(first)
    assert 50_000 <= sum(map(len, first)) < 50_000 + max(map(len, first))
    assert not any(line.lstrip().startswith(">>>") for doc in first for line in doc.splitlines())
    with pytest.raises(ValueError, match="corpus_sources"):
        python_docs_corpus(["wikipedia"])
