"""Payloads kept by column read back exactly as stored."""

from __future__ import annotations

import numpy as np
import pytest

from index.base import matches
from index.payload_columns import PayloadColumns

ROWS = [
    {"document_id": "d1", "lang": "en", "page_number": None, "flag": True, "n": 1},
    {"document_id": "d1", "lang": "en", "page_number": 2, "flag": False, "n": 1.0},
    {"document_id": "d2", "tags": ["a", "b"], "n": 2},
    {},
    {"document_id": "d3", "lang": "ru", "tags": ["b"], "flag": 1},
]


def test_rows_read_back_as_stored_types_included() -> None:
    table = PayloadColumns.from_rows(ROWS)
    assert len(table) == len(ROWS)
    for stored, read in zip(ROWS, table, strict=True):
        assert read == stored
        assert {k: type(v) for k, v in read.items()} == {k: type(v) for k, v in stored.items()}
    assert table[-1] == ROWS[-1] and table[1:3] == ROWS[1:3]
    with pytest.raises(IndexError):
        table[len(ROWS)]


def test_a_read_list_is_a_copy() -> None:
    table = PayloadColumns.from_rows(ROWS)
    table[2]["tags"].append("c")
    assert table[2]["tags"] == ["a", "b"]


def test_rows_by_value_equals_a_scan_of_the_rows() -> None:
    table = PayloadColumns.from_rows(ROWS)
    for key in ("document_id", "lang", "tags"):
        by_value = table.rows_by_value(key)
        have = [r.get(key) for r in ROWS]
        values = {v for h in have for v in (h if isinstance(h, list) else [h])}
        for value in (v for v in values if isinstance(v, str)):
            scan = [i for i, r in enumerate(ROWS) if matches(r, {key: value})]
            assert by_value[value].tolist() == scan
    assert table.rows_by_value("missing") == {}


def test_column_and_size() -> None:
    rng = np.random.default_rng(0)
    rows = [
        {"document_id": f"doc-{i // 10}", "position": i % 10, "lang": str(rng.choice(["en", "es"]))}
        for i in range(50_000)
    ]
    table = PayloadColumns.from_rows(iter(rows))
    assert table.column("position") == [r["position"] for r in rows]
    assert table.column("absent") == [None] * len(rows)
    assert table[12_345] == rows[12_345]
    assert table.nbytes == 50_000 * 3 * 4  # three int32 codes a row


def test_take_reorders_rows() -> None:
    table = PayloadColumns.from_rows(ROWS)
    assert list(table.take([4, 0, 2])) == [ROWS[4], ROWS[0], ROWS[2]]


def test_a_row_with_only_some_keys() -> None:
    table = PayloadColumns.from_rows(ROWS)
    assert table.row(0, ["lang", "n", "missing"]) == {"lang": "en", "n": 1}
    assert table.row(3, ["lang"]) == {}
    assert table.row(2, ["tags"]) == {"tags": ["a", "b"]}
