"""Reciprocal rank fusion, language-aware weights, MMR and the filter shapes."""

import numpy as np
import pytest

from index.base import check_filters, matches
from retrieval.fusion import (
    ENGLISH_MODEL_DENSE_WEIGHTS,
    RRF_K,
    dense_weight,
    mmr,
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


def test_dense_weight_is_lower_for_languages_the_model_does_not_know():
    assert dense_weight("all-MiniLM-L6-v2", "en") == 1.0
    assert dense_weight("all-MiniLM-L6-v2", "ru") < dense_weight("all-MiniLM-L6-v2", "en")
    assert dense_weight("all-MiniLM-L6-v2", "es") < 1.0
    assert dense_weight("all-MiniLM-L6-v2", "xx") == ENGLISH_MODEL_DENSE_WEIGHTS["other"]


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
