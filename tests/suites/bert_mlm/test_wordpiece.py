"""The local WordPiece: merges by frequency, ties by spelling, continuation pieces inside words."""

from __future__ import annotations

from nightbench.suites.bert_mlm.wordpiece import learn_vocabulary


def test_the_most_frequent_pair_merges_first_and_ties_go_to_the_smaller_spelling():
    specials = ("[PAD]", "[UNK]")
    vocab = learn_vocabulary({"cd": 2, "ab": 2, "xy": 5}, vocab_size=2 + 6 + 3, special_tokens=specials)
    # alphabet sorted by spelling ('#' sorts before letters), then merges: xy (5), then the tie ab/cd by spelling
    assert vocab == [*specials, "##b", "##d", "##y", "a", "c", "x", "xy", "ab", "cd"]
    assert learn_vocabulary({"cd": 2, "ab": 2, "xy": 5}, vocab_size=2 + 6 + 2, special_tokens=specials)[-1] == "ab"


def test_merges_continue_inside_words_with_continuation_pieces():
    vocab = learn_vocabulary({"abc": 3, "ab": 1}, vocab_size=1 + 3 + 2, special_tokens=("[UNK]",))
    assert vocab[-2:] == ["ab", "abc"]  # (a, ##b) counts 4, then (ab, ##c) counts 3
