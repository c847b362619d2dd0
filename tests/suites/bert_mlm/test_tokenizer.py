"""The tokenizer: training twice gives the same vocabulary; a saved one loads back from its folder with the
same ids, and a path that is a file is refused."""

from __future__ import annotations

import json

import pytest

from nightbench.suites.bert_mlm.corpus import python_docs_corpus
from nightbench.suites.bert_mlm.tokenizer import SPECIAL_TOKENS, load_tokenizer, train_wordpiece
from nightbench.suites.bert_mlm.wordpiece import count_words


def test_a_saved_tokenizer_reloads_with_the_same_ids(saved_tokenizer, english_lines):
    first, second = load_tokenizer(str(saved_tokenizer)), load_tokenizer(str(saved_tokenizer))
    ids = first(english_lines[0])["input_ids"]
    assert ids == second(english_lines[0])["input_ids"]
    assert ids[0] == first.cls_token_id and ids[-1] == first.sep_token_id
    assert first.unk_token_id not in ids[1:-1], "a tokenizer trained on this text knows its words"


def test_a_tokenizer_path_that_is_a_file_is_rejected(tmp_path):
    not_a_dir = tmp_path / "vocab.txt"
    not_a_dir.write_text("[PAD]\n")
    with pytest.raises(NotADirectoryError, match="vocab.txt"):
        load_tokenizer(str(not_a_dir))


def test_training_twice_gives_the_same_tokenizer(tmp_path):
    documents = python_docs_corpus(["pydoc_topics"], max_chars=40_000)
    train_wordpiece(documents, 400, tmp_path / "one")
    train_wordpiece(documents, 400, tmp_path / "two")
    one, two = (json.loads((tmp_path / d / "tokenizer.json").read_text())["model"]["vocab"] for d in ("one", "two"))
    assert one == two and len(one) == 400
    tokenizer = load_tokenizer(str(tmp_path / "one"))
    assert [tokenizer.convert_ids_to_tokens(i) for i in range(len(SPECIAL_TOKENS))] == list(SPECIAL_TOKENS)
    words = count_words(documents)
    assert words.most_common(1)[0][0] in one, "the most frequent word is a whole token"
