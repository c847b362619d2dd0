"""The local WordPiece: merges by frequency, ties by spelling, the same vocabulary every time."""

from __future__ import annotations

import json

from nightbench.suites.bert_mlm.corpus import python_docs_corpus
from nightbench.suites.bert_mlm.tokenizer import SPECIAL_TOKENS, load_tokenizer, train_wordpiece
from nightbench.suites.bert_mlm.wordpiece import count_words, learn_vocabulary


def test_the_most_frequent_pair_merges_first_and_ties_go_to_the_smaller_spelling():
    specials = ("[PAD]", "[UNK]")
    vocab = learn_vocabulary({"cd": 2, "ab": 2, "xy": 5}, vocab_size=2 + 6 + 3, special_tokens=specials)
    # alphabet sorted by spelling ('#' sorts before letters), then merges: xy (5), then the tie ab/cd by spelling
    assert vocab == [*specials, "##b", "##d", "##y", "a", "c", "x", "xy", "ab", "cd"]
    assert learn_vocabulary({"cd": 2, "ab": 2, "xy": 5}, vocab_size=2 + 6 + 2, special_tokens=specials)[-1] == "ab"


def test_merges_continue_inside_words_with_continuation_pieces():
    vocab = learn_vocabulary({"abc": 3, "ab": 1}, vocab_size=1 + 3 + 2, special_tokens=("[UNK]",))
    assert vocab[-2:] == ["ab", "abc"]  # (a, ##b) counts 4, then (ab, ##c) counts 3


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
