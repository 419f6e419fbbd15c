"""Our BM25 matrix scores exactly as bm25s's Lucene variant on the same tokens."""

from __future__ import annotations

from collections import Counter

import bm25s
import numpy as np
import pytest

from index.sparse import K1, B, token_counts, tokenize
from retrieval.bm25 import Bm25Index
from retrieval.bm25_matrix import Bm25Matrix, Vocabulary, unpack

TEXTS = [
    "The river Thames flows through London and the river is long.",
    "El río Tajo nace en la sierra de Albarracín y desemboca en Lisboa.",
    "Река Волга впадает в Каспийское море; Волга — самая длинная река Европы.",
    "Rivers rivers rivers: the word repeated many times in one short text.",
    "",
    "Los ríos de España: el Ebro, el Duero, el Tajo y el Guadalquivir.",
    "A text about something else entirely: chess openings and the Sicilian Defence.",
]
QUERIES = [
    "river",
    "río Tajo",
    "реки Волга",
    "rivers rivers",  # a repeated query token counts twice
    "Sicilian chess defence unknownword",
]


def _reference(tokens: list[list[str]], query: list[str]) -> np.ndarray:
    model = bm25s.BM25(k1=K1, b=B, method="lucene")
    model.index(tokens, show_progress=False)
    known = [t for t in query if t in model.vocab_dict]
    if not known:
        return np.zeros(len(tokens), dtype=np.float32)
    return np.asarray(model.get_scores(known), dtype=np.float32)


@pytest.mark.parametrize("query", QUERIES)
def test_scores_equal_bm25s_lucene(query: str) -> None:
    tokens = [tokenize(t) for t in TEXTS]
    vocab = Vocabulary()
    matrix = Bm25Matrix.build([vocab.counts(t) for t in tokens], vocab, k1=K1, b=B)
    ids = [i for i in (vocab.get(t) for t in tokenize(query)) if i is not None]
    ours = matrix.scores(ids)
    expected = _reference(tokens, tokenize(query))
    assert expected.max() > 0
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_random_corpus_matches_bm25s_on_every_term() -> None:
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(300)]
    # Zipf-like draws: some words in most rows, many in few; lengths vary 0..80.
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()
    tokens = [list(rng.choice(words, size=int(rng.integers(0, 80)), p=p)) for _ in range(400)]
    vocab = Vocabulary()
    matrix = Bm25Matrix.build([vocab.counts(t) for t in tokens], vocab, k1=K1, b=B)
    assert 0 < len(matrix._dense) < len(vocab)  # both kinds of column are checked
    model = bm25s.BM25(k1=K1, b=B, method="lucene")
    model.index(tokens, show_progress=False)
    for word in words[::7]:
        if vocab.get(word) is None:
            continue
        np.testing.assert_allclose(
            matrix.scores([vocab.get(word)]),
            np.asarray(model.get_scores([word]), dtype=np.float32),
            rtol=1e-5,
            atol=1e-6,
        )


def test_counts_pack_each_distinct_token_once() -> None:
    vocab = Vocabulary()
    terms, counts = unpack(vocab.counts(["a", "b", "a", "a"]))
    assert dict(zip(terms.tolist(), counts.tolist(), strict=True)) == {
        vocab.get("a"): 3,
        vocab.get("b"): 1,
    }


def test_terms_added_after_a_build_score_nothing() -> None:
    vocab = Vocabulary()
    matrix = Bm25Matrix.build([vocab.counts(["a", "b"])], vocab, k1=K1, b=B)
    vocab.counts(["later"])
    assert matrix.scores([vocab.get("later")]).tolist() == [0.0]
    assert matrix.scores([vocab.get("a")])[0] > 0


def test_index_search_ranks_by_those_scores_and_filters() -> None:
    index = Bm25Index.build(
        TEXTS, payloads=[{"lang": "en" if i % 2 else "es", "n": i} for i in range(len(TEXTS))]
    )
    hits = index.search("río Tajo", top_k=3)
    assert hits[0][0] in (1, 5) and all(s > 0 for _, s in hits)
    only_en = index.search("river rivers", top_k=5, filters={"lang": "en"})
    assert only_en and all(index.payloads[row]["lang"] == "en" for row, _ in only_en)
    assert index.search("zzzz", top_k=3) == []


@pytest.mark.parametrize(
    "text",
    [
        *TEXTS,
        "the_snake_case word El río y la mar, the river and the sea; река и море Ёлка ёлка",
        "el el el the the",  # the stop-word vote decides the stemmer of every Latin word
    ],
)
def test_token_counts_equal_counting_the_tokens(text: str) -> None:
    assert token_counts(text) == Counter(tokenize(text))
