"""A deterministic WordPiece vocabulary learner (BPE merges over words, '##' continuation pieces).

Why not `tokenizers`' WordPieceTrainer: it breaks ties between equally frequent merges in hash-map
order, which changes from process to process, so the same corpus gave different vocabularies (and
different token streams, sequences and results) in different results roots. Here every tie is broken
by the pieces' spelling, so the vocabulary is a function of the corpus alone. Normalization and
word splitting still come from `tokenizers` (BERT's uncased rules), which are deterministic.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from typing import Iterable

PREFIX = "##"  # marks a piece that continues a word


def count_words(texts: Iterable[str]) -> Counter:
    """Word frequencies after BERT's uncased normalization and punctuation/whitespace splitting."""
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for text in texts:
        counts.update(word for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    return counts


def _pieces(word: str) -> list[str]:
    return [word[0]] + [PREFIX + ch for ch in word[1:]]


def learn_vocabulary(word_counts: dict[str, int], vocab_size: int, special_tokens: tuple[str, ...],
                     limit_alphabet: int = 1000) -> list[str]:
    """special tokens, the (at most `limit_alphabet` most frequent) characters, then merged pieces in
    merge order, until `vocab_size` entries. The most frequent adjacent pair is merged first; ties go
    to the alphabetically smallest pair."""
    words = sorted(word_counts)
    counts = [word_counts[w] for w in words]
    symbols = [_pieces(w) for w in words]
    character_counts: Counter = Counter()
    for pieces, n in zip(symbols, counts):
        for piece in pieces:
            character_counts[piece] += n
    alphabet = sorted(sorted(character_counts, key=lambda p: (-character_counts[p], p))[:limit_alphabet])
    vocab = list(special_tokens) + [p for p in alphabet if p not in special_tokens]
    known, in_vocab = set(alphabet), set(vocab)

    pair_counts: dict[tuple[str, str], int] = defaultdict(int)
    pair_words: dict[tuple[str, str], set[int]] = defaultdict(set)

    def add_pairs(index: int, sign: int) -> set[tuple[str, str]]:
        pieces, touched = symbols[index], set()
        for pair in zip(pieces, pieces[1:]):
            if pair[0] in known and pair[1] in known:
                pair_counts[pair] += sign * counts[index]
                if sign > 0:
                    pair_words[pair].add(index)
                touched.add(pair)
        return touched

    for index in range(len(words)):
        add_pairs(index, +1)
    heap = [(-n, pair) for pair, n in pair_counts.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        negative, pair = heapq.heappop(heap)
        if -negative <= 0 or pair_counts.get(pair) != -negative:
            continue  # a stale heap entry: the pair's count has changed since it was pushed
        merged = pair[0] + pair[1][len(PREFIX):]
        if merged not in in_vocab:
            vocab.append(merged)
            in_vocab.add(merged)
        known.add(merged)
        touched: set[tuple[str, str]] = set()
        for index in sorted(pair_words.pop(pair)):
            touched |= add_pairs(index, -1)
            pieces, out, i = symbols[index], [], 0
            while i < len(pieces):
                if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == pair:
                    out.append(merged)
                    i += 2
                else:
                    out.append(pieces[i])
                    i += 1
            symbols[index] = out
            touched |= add_pairs(index, +1)
        for changed in sorted(touched):
            if pair_counts.get(changed, 0) > 0:
                heapq.heappush(heap, (-pair_counts[changed], changed))
    return vocab
