"""The filter translation both Qdrant engines share (index/qdrant_common.py), as Qdrant
Edge's classes spell it (index/edge_index.py): typed equality, numbers as one-point
ranges, literal keys, and the two spots where Edge's binding needs help."""

from __future__ import annotations

from typing import Any

import pytest

from index.edge_index import to_edge_filter
from index.qdrant_index import to_filter

pytestmark = pytest.mark.unit


def first(filters: dict[str, Any]) -> Any:
    built = to_edge_filter(filters)
    assert built is not None and built.must is not None
    return built.must[0]


def test_booleans_reach_edge_as_booleans_not_as_one_or_zero() -> None:
    """qdrant-edge-py 0.9.0 reads a Python bool given to MatchValue as the integer 1/0
    (bool is an int), which would match `1` and miss `True`; numpy.bool_ is no int."""
    for flag in (True, False):
        value = first({"flag": flag}).match.value
        assert type(value) is bool and value is flag


def test_numbers_are_one_point_ranges_and_strings_match_values() -> None:
    cond = first({"score": 0.5})
    assert cond.match is None and (cond.range.gte, cond.range.lte) == (0.5, 0.5)
    assert first({"page_number": 3}).range.gte == 3
    assert first({"section": "intro"}).match.value == "intro"


def test_date_bounds_become_rfc3339_which_edge_parses() -> None:
    """Edge parses RFC 3339 only (it refuses "20240301", an ISO 8601 date `check_filters`
    accepts): bounds are normalised to UTC date-times."""
    cond = first({"published": {"gte": "20240301", "lt": "2024-03-02T01:00:00+02:00"}})
    assert (str(cond.range.gte), str(cond.range.lt)) == (
        "2024-03-01 00:00:00 UTC",
        "2024-03-01 23:00:00 UTC",
    )


def test_lists_are_any_of_and_keys_stay_literal() -> None:
    cond = first({"v": ["a", "b", 2, True]})
    assert [type(c).__name__ for c in cond.should] == ["FieldCondition"] * 3
    assert cond.should[0].match.value == ["a", "b"]
    assert first({"a.b": "x"}).key == '"a.b"' and first({"document_id": "d"}).key == "document_id"


def test_both_engines_get_the_same_shape() -> None:
    filters = {"document_id": ["d1", "d2"], "page_number": {"gte": 2}, "flag": True}
    server, edge = to_filter(filters), to_edge_filter(filters)
    assert server is not None and edge is not None
    assert [c.key for c in server.must] == [c.key for c in edge.must]  # type: ignore[union-attr]
    assert to_edge_filter(None) is None and to_edge_filter({}) is None
    with pytest.raises(ValueError, match="'page_number'"):
        to_edge_filter({"page_number": {"from": 1}})
