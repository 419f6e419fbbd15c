"""`index.base`: the filter semantics every backend (and BM25) shares, and the input checks
every backend enforces the same way."""

import numpy as np
import pytest

from index.base import check_filters, checked_query, checked_upsert, matches

pytestmark = pytest.mark.unit


def test_equality_is_typed_booleans_are_not_numbers():
    assert matches({"v": 2}, {"v": 2.0}) and matches({"v": 2.0}, {"v": 2})
    assert not matches({"v": True}, {"v": 1}) and not matches({"v": 1}, {"v": True})
    assert not matches({"v": 0}, {"v": False})
    assert not matches({"v": "1"}, {"v": 1})
    assert matches({"v": False}, {"v": [0, False]})
    assert not matches({"v": {"gte": 1}}, {"v": 1})  # a dict payload never equals a scalar


def test_list_payloads_match_by_element_and_missing_keys_never_match():
    assert matches({"tags": ["a", "b"]}, {"tags": "b"})
    assert matches({"tags": ["a", 3]}, {"tags": {"gt": 2}})
    assert not matches({"tags": [["a"]]}, {"tags": "a"})  # one level, as Qdrant
    assert not matches({}, {"v": "x"}) and not matches({"v": None}, {"v": ["x", 1]})
    assert not matches({"v": True}, {"v": {"gte": 0}})  # ranges skip booleans


@pytest.mark.parametrize(
    ("filters", "words"),
    [
        ({"v": float("inf")}, "not a finite number"),
        ({"v": {"lt": float("nan")}}, "not a finite number"),
        ({"v": [1, -(2**53)]}, r"beyond \+-2\*\*53"),
        ({"": 1}, "non-empty strings"),
        ({"a\\b": 1}, "backslash"),
        ({"v": None}, "expected a string, number, boolean"),
        ({"v": []}, "non-empty list"),
    ],
)
def test_check_filters_refuses_what_backends_cannot_match_alike(filters, words):
    with pytest.raises(ValueError, match=words):
        check_filters(filters)


def test_empty_lists_are_allowed_where_the_indexes_take_them():
    assert check_filters({"v": []}, allow_empty_lists=True) == {"v": []}
    assert not matches({"v": 1}, {"v": []})


def test_checked_query_and_upsert_say_what_is_wrong():
    assert checked_query([1, 0], 3, 2).shape == (1, 2)
    assert checked_query(np.array([[1, 0]]), np.int64(3), 2).dtype == np.float32
    with pytest.raises(ValueError, match="top_k must be an integer"):
        checked_query([1, 0], True, 2)
    with pytest.raises(ValueError, match="query has dimension 3, index has 2"):
        checked_query([1, 0, 0], 1, 2)
    with pytest.raises(ValueError, match="query must be a vector of 2 numbers"):
        checked_query(["a", "b"], 1, 2)
    with pytest.raises(ValueError, match="vector of 'c2' holds NaN"):
        checked_upsert(["c1", "c2"], [[1, 0], [np.nan, 0]], [{}, {}], 2)
    vectors, latest = checked_upsert(["c1", "c1"], [[1, 0], [0, 1]], [{}, {}], 2)
    assert latest == {"c1": 1} and vectors.flags.c_contiguous
