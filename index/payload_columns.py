"""Row payloads stored by column: a read-only sequence of dicts that costs a few bytes a row.

A FAISS segment or a BM25 index of a million chunks held its payloads as a million
dicts (about 0.7 KB each with their id strings: 0.7 GB per copy, two copies per
version in a serving process). Payload values repeat a lot (a document's ten chunks
share its id, filename, revision and metadata), so each key is kept as one int32 code
per row into that key's distinct values; a row's dict is rebuilt when asked for.

Values are told apart by type as well as value (True and 1 are different codes), and
unhashable values (lists) by their content's repr, so `rows[i]` equals the dict stored.

Example::

    rows = PayloadColumns.from_rows([{"lang": "en", "n": 1}, {"lang": "en"}])
    rows[1]                       # {"lang": "en"}
    rows.rows_by_value("lang")    # {"en": array([0, 1])}
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np

ABSENT = -1  # the code of a row that lacks the key


def _dedup_key(value: Any) -> tuple[str, Any]:
    try:
        hash(value)
    except TypeError:
        return (type(value).__name__, repr(value))
    return (type(value).__name__, value)


class PayloadColumns(Sequence[dict[str, Any]]):
    """Immutable: built once from rows (`from_rows`), then read by row or by column."""

    def __init__(self, keys: list[str], codes: np.ndarray, values: list[list[Any]]) -> None:
        self._keys = keys
        self._codes = codes  # (rows, keys) int32; ABSENT where a row lacks the key
        self._values = values  # per key: its distinct values, indexed by code
        self._column = {k: i for i, k in enumerate(keys)}

    @classmethod
    def from_rows(cls, rows: Iterable[dict[str, Any]]) -> PayloadColumns:
        keys: list[str] = []
        column: dict[str, int] = {}
        values: list[list[Any]] = []
        codes_of: list[dict[tuple[str, Any], int]] = []
        # Flat (row, column, code) triples in compact arrays: rows may come from a
        # generator of a million dicts, none of which should outlive its turn.
        at_row, at_col, at_code = array("q"), array("i"), array("i")
        n_rows = 0
        for row in rows:
            for key, value in row.items():
                col = column.get(key)
                if col is None:
                    col = column[key] = len(keys)
                    keys.append(key)
                    values.append([])
                    codes_of.append({})
                dedup = _dedup_key(value)
                code = codes_of[col].get(dedup)
                if code is None:
                    code = codes_of[col][dedup] = len(values[col])
                    values[col].append(value)
                at_row.append(n_rows)
                at_col.append(col)
                at_code.append(code)
            n_rows += 1
        codes = np.full((n_rows, len(keys)), ABSENT, dtype=np.int32)
        codes[np.frombuffer(at_row, dtype=np.int64), np.frombuffer(at_col, dtype=np.int32)] = (
            np.frombuffer(at_code, dtype=np.int32)
        )
        return cls(keys, codes, values)

    def __len__(self) -> int:
        return int(self._codes.shape[0])

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._row(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} out of range ({len(self)} rows)")
        return self._row(index)

    def row(self, index: int, keys: Sequence[str]) -> dict[str, Any]:
        """Row `index` with only `keys` (those it holds): cheaper than the whole row."""
        out = {}
        for key in keys:
            col = self._column.get(key)
            if col is None:
                continue
            code = int(self._codes[index, col])
            if code != ABSENT:
                out[key] = self._value(col, code)
        return out

    def _row(self, index: int) -> dict[str, Any]:
        return {
            self._keys[col]: self._value(col, code)
            for col, code in enumerate(self._codes[index].tolist())
            if code != ABSENT
        }

    def _value(self, col: int, code: int) -> Any:
        value = self._values[col][code]
        # A list is shared by every row holding it: hand out a copy.
        return list(value) if isinstance(value, list) else value

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self._row(i)

    def take(self, rows: Sequence[int] | np.ndarray) -> PayloadColumns:
        """A table of these rows, in this order."""
        return PayloadColumns(
            self._keys, self._codes[np.asarray(rows, dtype=np.int64)], self._values
        )

    def column(self, key: str) -> list[Any]:
        """Every row's value of `key` (None where a row lacks it), in row order."""
        col = self._column.get(key)
        if col is None:
            return [None] * len(self)
        values = [*self._values[col], None]  # code -1 reads the trailing None
        return [values[c] for c in self._codes[:, col].tolist()]

    def rows_by_value(self, key: str) -> dict[str, np.ndarray]:
        """Each string value of `key` → the rows (ascending) holding it, or holding a
        list that contains it."""
        col = self._column.get(key)
        if col is None:
            return {}
        codes = self._codes[:, col]
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(self._values[col]) + 1))
        out: dict[str, list[np.ndarray]] = {}
        for code, value in enumerate(self._values[col]):
            rows = order[bounds[code] : bounds[code + 1]]
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    out.setdefault(item, []).append(rows)
        return {v: np.unique(np.concatenate(parts)).astype(np.int64) for v, parts in out.items()}

    @property
    def nbytes(self) -> int:
        """The codes' size (the distinct values come on top)."""
        return int(self._codes.nbytes)
