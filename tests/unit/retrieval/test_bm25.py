"""BM25 tokenisation (Unicode words, casefold, accents, Cyrillic, stemming) and scoring."""

import random

import pytest

from index.base import matches
from retrieval.bm25 import Bm25Index, latin_language, strip_accents, tokenize

pytestmark = pytest.mark.unit


def test_tokenizer_casefolds_and_strips_accents():
    assert tokenize("CAFÉ Straße", stem=False) == ["cafe", "strasse"]
    assert tokenize("¿Dónde nace el río?", stem=False) == ["donde", "nace", "el", "rio"]
    assert strip_accents("ñandú ёлка йод") == "nandu елка иод"


def test_tokenizer_keeps_cyrillic_words_and_splits_on_punctuation():
    assert tokenize("Озеро «Светлое», глубина—40 м.", stem=False) == [
        "озеро",
        "светлое",
        "глубина",
        "40",
        "м",
    ]


def test_stemming_matches_inflected_forms_per_language():
    assert tokenize("озера")[0] == tokenize("озеро")[0] == tokenize("озером")[0]
    assert tokenize("Ёлки")[0] == tokenize("елка")[0]
    assert tokenize("las montañas")[1] == tokenize("la montaña")[1] == "montan"
    assert tokenize("the lighthouses")[1] == tokenize("a lighthouse")[1]


def test_latin_language_vote():
    assert latin_language("el río nace en la sierra".split()) == "es"
    assert latin_language("the river rises in the hills".split()) == "en"


def test_scoring_ranks_the_matching_text_first_across_scripts_and_accents():
    texts = [
        "The lighthouse was first lit in 1824.",
        "El río Almarén nace en la sierra de Gredilla.",
        "Озеро Светлое: наибольшая глубина достигает сорока метров.",
        "Ships carried coal and timber between harbours.",
    ]
    index = Bm25Index.build(texts, ids=["en", "es", "ru", "ships"])
    assert index.search("rio almaren", 2)[0][0] == 1
    assert index.search("Какова глубина озера?", 2)[0][0] == 2
    assert index.search("LIGHTHOUSES", 2)[0][0] == 0
    assert index.search("unrelated words only", 3) == []
    hits = index.search("coal lighthouse", 4)
    assert [row for row, _ in hits] == sorted(
        [row for row, _ in hits], key=lambda r: -dict(hits)[r]
    )
    assert all(score > 0 for _, score in hits)


def test_filters_apply_to_bm25_hits():
    index = Bm25Index.build(
        ["red apples", "red cherries", "red wine"],
        payloads=[{"year": 2020}, {"year": 2022}, {"year": 2024, "tag": "drink"}],
    )
    assert [r for r, _ in index.search("red", 5, {"year": {"gte": 2021}})] in ([1, 2], [2, 1])
    assert [r for r, _ in index.search("red", 5, {"tag": "drink"})] == [2]
    assert index.search("red", 5, {"year": [1999]}) == []


def test_empty_index_returns_nothing():
    assert Bm25Index.build([]).search("anything", 5) == []


def test_plain_bm25_matches_words_only_as_written():
    texts = ["Los ríos de España nacen en la sierra", "Реки России текут на север"]
    stemmed, plain = Bm25Index.build(texts), Bm25Index.build(texts, stem=False)
    for query, row in (("¿Dónde nace el agua?", 0), ("река", 1)):
        assert [r for r, _ in stemmed.search(query, 2)] == [row]
        assert plain.search(query, 2) == []
    assert [r for r, _ in plain.search("rios", 2)] == [0]  # accents still stripped


def test_string_equality_filters_read_only_the_matching_rows_and_agree_with_a_full_scan():
    rng = random.Random(7)
    words = ["river", "bank", "loan", "fish", "rate", "water", "money"]
    texts = [" ".join(rng.choices(words, k=6)) for _ in range(400)]
    payloads = [
        {
            "document_id": f"d{i % 23}",
            "filename": f"f{i % 5}.txt",
            "tags": [f"t{i % 3}", f"t{i % 4}"],
            "year": 2000 + i % 9,
        }
        for i in range(400)
    ]
    index = Bm25Index.build(texts, payloads=payloads)
    cases = [
        {"document_id": "d3"},
        {"document_id": ["d3", "d4", "nope"]},
        {"document_id": "d3", "filename": "f3.txt"},
        {"tags": "t2", "year": {"gte": 2004}},
        {"document_id": "missing"},
        {"document_id": []},
        {"year": 2003},
    ]
    everything = index.search("river money", len(texts))
    for filters in cases:
        expected = [(r, s) for r, s in everything if matches(payloads[r], filters)][:10]
        assert index.search("river money", 10, filters) == expected, filters


def test_top_k_from_many_tied_hits_equals_a_full_sort():
    # Few words over many rows: most rows score, with many ties at every score. The top k
    # must be the first k of the full ranking (score descending, then row) for every k.
    rng = random.Random(11)
    words = ["river", "bank", "loan", "fish"]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 4))) for _ in range(3000)]
    index = Bm25Index.build(texts)
    everything = index.search("river loan", len(texts))
    assert len(everything) > 2000
    scores = [s for _, s in everything]
    assert len(set(scores)) < len(scores) / 10  # ties are the normal case here
    assert scores == sorted(scores, reverse=True)
    for k in (1, 7, 10, 100, 1500):
        assert index.search("river loan", k) == everything[:k], k
