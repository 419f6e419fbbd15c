"""Reciprocal rank fusion, language-aware weights, MMR and the filter shapes."""

import numpy as np
import pytest

from index.base import check_filters, matches
from retrieval.fusion import (
    ENGLISH_MODEL_FUSION,
    FUSION_METHODS,
    IDENTIFIER_DENSE_WEIGHT,
    RRF_K,
    fuse_scores,
    fusion_policy,
    mmr,
    names_identifier,
    rrf,
)

pytestmark = pytest.mark.unit


def test_rrf_sums_reciprocal_ranks():
    fused = rrf([["a", "b", "c"], ["b", "a", "d"]])
    assert list(fused)[:2] in (["a", "b"], ["b", "a"])
    assert fused["a"] == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 2))
    assert fused["d"] == pytest.approx(1 / (RRF_K + 3))
    assert list(fused)[-1] in {"c", "d"}


def test_rrf_weights_let_the_stronger_list_win():
    dense, lexical = ["x", "y"], ["y", "x"]
    assert list(rrf([dense, lexical], [1.0, 0.2]))[0] == "x"
    assert list(rrf([dense, lexical], [0.2, 1.0]))[0] == "y"
    # A zero weight reduces hybrid to the other list's order.
    assert list(rrf([["p", "q", "r"], ["r", "q", "p"]], [0.0, 1.0])) == ["r", "q", "p"]
    with pytest.raises(ValueError):
        rrf([["a"]], [1.0, 1.0])


def test_an_english_model_gets_less_say_in_languages_it_does_not_know():
    policy = fusion_policy("all-MiniLM-L6-v2")
    assert policy is ENGLISH_MODEL_FUSION
    assert policy.weight("ru") < policy.weight("es") < policy.weight("en")
    assert policy.weight("xx") == policy.weight("other")


def test_a_multilingual_model_leads_in_every_language():
    policy = fusion_policy("multilingual-e5-small")
    assert all(policy.weight(lang) >= 0.5 for lang in ("en", "es", "ru", "other"))
    english = fusion_policy("all-MiniLM-L6-v2")
    assert all(policy.weight(lang) > english.weight(lang) for lang in ("es", "ru"))


def test_mmr_prefers_a_novel_candidate_over_a_near_duplicate():
    query = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    a = np.array([0.9, 0.436, 0.0], dtype=np.float32)
    vectors = np.vstack([a, a * 0.999 + 0.001, [0.8, 0.0, 0.6]]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    relevance = [0.95, 0.94, 0.80]
    assert mmr(query, vectors, relevance, top_k=2, lambda_=1.0) == [0, 1]
    assert mmr(query, vectors, relevance, top_k=2, lambda_=0.5) == [0, 2]
    assert mmr(query, vectors, None, top_k=5, lambda_=0.7)[0] == 0
    assert sorted(mmr(query, vectors, relevance, top_k=5)) == [0, 1, 2]
    assert mmr(query, vectors[:0], [], top_k=3) == []


def test_filter_shapes_and_matching():
    payload = {"year": 2021, "date": "2024-03-01", "lang": "es", "score": 0.5}
    assert matches(payload, {"lang": ["es", "ru"], "year": {"gte": 2020, "lt": 2022}})
    assert not matches(payload, {"year": {"gt": 2021}})
    assert matches(payload, {"date": {"gte": "2024-01-01", "lte": "2024-03-01T00:00:00Z"}})
    assert not matches(payload, {"date": {"lt": "2024-03-01"}})
    assert not matches({"year": "2021"}, {"year": {"gte": 2020}})  # strings are not numbers
    assert not matches({}, {"year": {"gte": 2020}})
    for bad, words in (
        ({"year": {"from": 1}}, "unknown"),
        ({"year": {}}, "none given"),
        ({"year": {"gte": 1, "lt": "2024-01-01"}}, "all numbers or all ISO"),
        ({"date": {"gte": "last week"}}, "ISO 8601"),
        ({"tags": []}, "non-empty list"),
        ({"x": {"gte": True}}, "all numbers"),
    ):
        with pytest.raises(ValueError, match=words):
            check_filters(bad)


# An exact-identifier query (seen in an outside check): BM25 finds the document holding
# DOCTOKEN_0045 with score 4.49 and, through the common prefix, two others at 0.0006; the
# dense list ranks those two above it.
IDENTIFIER_DENSE = [("other-1", 0.83), ("other-2", 0.82), ("token-doc", 0.81), ("x", 0.80)]
IDENTIFIER_BM25 = [("token-doc", 4.49), ("other-1", 0.0006), ("other-2", 0.0006)]


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_a_strong_lexical_match_wins_over_prefix_noise(method):
    fused = fuse_scores(IDENTIFIER_DENSE, IDENTIFIER_BM25, 0.5, method)
    assert fused[0][0] == "token-doc"


def test_plain_rrf_without_the_floor_would_rank_the_identifier_third():
    # The failure the floor fixes: rank votes from negligible BM25 scores.
    assert list(rrf([[i for i, _ in IDENTIFIER_DENSE], [i for i, _ in IDENTIFIER_BM25]]))[0] != (
        "token-doc"
    )


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_weight_one_keeps_the_dense_order_and_zero_the_lexical_one(method):
    # Each list ends in a weak tail ("e"): min-max maps a list's last score to 0.
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.7), ("e", 0.1)]
    lexical = [("c", 9.0), ("b", 5.0), ("d", 4.0), ("e", 0.5)]
    assert [i for i, _ in fuse_scores(dense, lexical, 1.0, method)][:3] == ["a", "b", "c"]
    assert [i for i, _ in fuse_scores(dense, lexical, 0.0, method)][:3] == ["c", "b", "d"]


def test_dbsf_is_blind_to_each_list_s_scale():
    dense = [("a", 0.80), ("b", 0.795), ("c", 0.70)]  # e5: a narrow band of cosines
    lexical = [("c", 30.0), ("b", 20.0), ("a", 10.0)]
    scaled = [(i, s * 1000) for i, s in lexical]
    one, other = fuse_scores(dense, lexical, 0.5, "dbsf"), fuse_scores(dense, scaled, 0.5, "dbsf")
    assert [i for i, _ in one] == [i for i, _ in other]
    assert [s for _, s in one] == pytest.approx([s for _, s in other])


def test_bad_method_or_weight_is_refused():
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse_scores([], [], 0.5, "sum")
    with pytest.raises(ValueError, match="within 0..1"):
        fuse_scores([], [], 1.5, "dbsf")


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_a_listed_hit_outranks_one_the_list_does_not_hold(method):
    # With the dense list weighing nothing, BM25's last hit must still come before
    # dense-only hits (min-max alone would score it 0, like an absent one).
    fused = fuse_scores([("x", 0.9), ("y", 0.8)], [("a", 3.0), ("b", 2.0), ("c", 1.0)], 0.0, method)
    assert [i for i, _ in fused] == ["a", "b", "c", "x", "y"]


@pytest.mark.parametrize(
    "query",
    [
        "INV-2024-00123",
        "What does DOCTOKEN_0045 say about the warehouse?",
        "¿Qué dice SKU 48213-B sobre el estado?",
        "Что сказано в ДОГ-2023/117?",
        "JIRA-4821",
    ],
)
def test_queries_naming_an_identifier_let_the_lexical_list_lead(query):
    assert names_identifier(query)
    policy = fusion_policy("multilingual-e5-small")
    assert policy.weight("en", query) == IDENTIFIER_DENSE_WEIGHT < policy.weight("en")


@pytest.mark.parametrize(
    "query",
    ["How tall is the lighthouse?", "bees in 2023", "Windows 10 setup", "section 8.9.2.1", "4K"],
)
def test_plain_words_and_numbers_are_not_identifiers(query):
    assert not names_identifier(query)
    policy = fusion_policy("multilingual-e5-small")
    assert policy.weight("ru", query) == policy.weight("ru")
