"""The vector index contract: FAISS (files in a version directory, `index.faiss_index`) and
Qdrant (a collection on a server, `index.qdrant_index`, or an embedded Qdrant Edge shard
on local disk, `index.edge_index`) behind one `VectorIndex` protocol, giving the same hits
and raising the same errors.

Errors (from `core.errors`; the API maps them to HTTP statuses, see `api/errors.py`):
- `InvalidInput` (422): the caller's input is wrong: vectors or a query of another
  dimension or with NaN/inf, mismatched ids/vectors/payloads, a malformed filter, bad
  index params, or an existing index built with another dimension/type/params;
- `Unavailable` (503): the storage behind the index failed: a Qdrant server that cannot be
  reached or answers 5xx, a FAISS or Edge directory that cannot be read or written
  (permissions, disk full, a corrupt file, an Edge shard held by another process); the
  message names the backend and what to check;
- `NotFound` (404): a Qdrant collection or alias that does not exist (anymore).
No builtin exception escapes a backend's public methods; the helpers below
(`check_filters`, `checked_upsert`, `checked_query`) raise ValueError so other callers can
reuse them, and each backend re-raises that as InvalidInput.

Filters mean the same on every backend: `matches` is the definition, both Qdrant engines
translate it into conditions in `index.qdrant_common.build_filter`, and the contract suite
(tests/integration/index/test_vector_index_contract.py) runs every case on each backend:
- a string matches that exact string; a boolean matches that boolean only (never 1 or 0);
  a number matches any numerically equal number (`2` matches 2 and 2.0, never True);
- a list means any of its values; an empty list matches nothing (the API refuses it);
- a range matches numbers (never booleans) or ISO 8601 date strings within its bounds;
- a payload value that is a list matches when any of its elements does;
- a missing key or a null value matches nothing;
- keys are literal top-level keys: `"a.b"` is the key "a.b", not a path into "a".
Non-finite numbers and integers beyond +-2**53 are refused in filters: Qdrant compares
numbers as 64-bit floats, so they could not match exactly the same everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np


@dataclass
class Hit:
    chunk_id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


RANGE_OPS = ("gt", "gte", "lt", "lte")
_SCALAR = str | int | float | bool
# Integers up to this magnitude are exact as 64-bit floats, which is how Qdrant compares.
EXACT_INT_MAX = 2**53


def as_utc_datetime(value: Any) -> datetime | None:
    """An ISO 8601 date or date-time as naive UTC, or None when `value` is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_number(key: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"filter {key!r}: {value!r} is not a finite number")
    if isinstance(value, int) and abs(value) >= EXACT_INT_MAX:
        raise ValueError(
            f"filter {key!r}: {value} is beyond +-2**53, which not every backend compares "
            "exactly; store and filter such ids as strings"
        )


def check_filters(
    filters: dict[str, Any] | None, *, allow_empty_lists: bool = False
) -> dict[str, Any] | None:
    """Validate filter shapes; ValueError names the key and what was wrong.

    - `{"field": value}`: equality with a string, number or boolean;
    - `{"field": [a, b]}`: any of a non-empty list of those (`allow_empty_lists`: an
      empty list is accepted and matches nothing, as the indexes do);
    - `{"field": {"gte": 1, "lt": 5}}`: a range with `gt`/`gte`/`lt`/`lte` bounds, all
      numbers or all ISO 8601 dates/date-times (`"2024-03-01"`, `"2024-03-01T12:00:00Z"`).
    Numbers must be finite and integers within +-2**53; keys are non-empty strings
    without a double quote or backslash (Qdrant cannot address such keys).
    """
    if not filters:
        return None
    if not isinstance(filters, dict):
        raise ValueError(f"filters must be an object of field: condition, got {filters!r}")
    for key, want in filters.items():
        if not isinstance(key, str) or not key or '"' in key or "\\" in key:
            raise ValueError(
                f"filter key {key!r}: keys must be non-empty strings without a double quote "
                "or backslash"
            )
        if isinstance(want, dict):
            unknown = sorted(set(want) - set(RANGE_OPS))
            if not want or unknown:
                raise ValueError(
                    f"filter {key!r}: a range takes gt, gte, lt, lte"
                    + (f"; unknown {unknown}" if unknown else "; none given")
                )
            bounds = list(want.values())
            if all(is_number(b) for b in bounds):
                for b in bounds:
                    _check_number(key, b)
                continue
            if all(as_utc_datetime(b) is not None for b in bounds):
                continue
            raise ValueError(
                f"filter {key!r}: range bounds must be all numbers or all ISO 8601 dates "
                f"(e.g. '2024-03-01'), got {want!r}"
            )
        values = want if isinstance(want, list) else [want]
        ok = (
            isinstance(want, _SCALAR) or (isinstance(want, list) and (want or allow_empty_lists))
        ) and all(isinstance(v, _SCALAR) for v in values)
        if not ok:
            raise ValueError(
                f"filter {key!r}: expected a string, number, boolean, a non-empty list of "
                f"them or a range object like {{'gte': 1, 'lt': 5}}, got {want!r}"
            )
        for v in values:
            if is_number(v):
                _check_number(key, v)
    return filters


def _in_range(have: Any, bounds: dict[str, Any]) -> bool:
    if all(is_number(b) for b in bounds.values()):
        if not is_number(have):
            return False
        value: Any = have
        limits: dict[str, Any] = bounds
    else:
        value = as_utc_datetime(have)
        if value is None:
            return False
        limits = {op: as_utc_datetime(b) for op, b in bounds.items()}
    for op, limit in limits.items():
        if limit is None:
            return False
        if (
            (op == "gt" and not value > limit)
            or (op == "gte" and not value >= limit)
            or (op == "lt" and not value < limit)
            or (op == "lte" and not value <= limit)
        ):
            return False
    return True


def same_value(have: Any, want: Any) -> bool:
    """Equality as filters define it: booleans only equal booleans, numbers compare
    numerically (2 == 2.0), strings exactly."""
    if isinstance(want, bool) or isinstance(have, bool):
        return isinstance(want, bool) and isinstance(have, bool) and have == want
    if isinstance(want, str):
        return isinstance(have, str) and have == want
    return is_number(have) and have == want


def matches(payload: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    """Every filter must hold (see `check_filters` for the shapes and the module docstring
    for the semantics): equality (`same_value`); a list means 'any of these'; a dict is a
    numeric or date range. A payload value that is a list matches when any element
    does; a missing key matches nothing."""
    if not filters:
        return True
    for key, want in filters.items():
        have = payload.get(key)
        candidates = have if isinstance(have, list) else [have]
        if isinstance(want, dict):
            ok = any(_in_range(h, want) for h in candidates)
        else:
            wants = want if isinstance(want, list) else [want]
            ok = any(same_value(h, w) for h in candidates for w in wants)
        if not ok:
            return False
    return True


class VectorIndex(Protocol):
    """One immutable-by-snapshot index of unit vectors, scored by inner product (cosine).

    Contract (errors from `core.errors`, see the module docstring for what each means):
    - `upsert` replaces vectors and payloads of ids that already exist (idempotent; a
      repeated id in one call: the last one wins). Raises InvalidInput when a vector's
      dimension differs from `dimension`, a vector holds NaN/inf, ids, vectors and
      payloads differ in length, an id is not a string or a payload not a dict;
      Unavailable when the backend cannot store them.
    - `delete` ignores unknown ids. Raises Unavailable when the backend cannot be reached.
    - `present` returns the subset of ids with a vector; Unavailable as for `delete`.
    - `erase` deletes ids so that no byte of them stays in the backend's storage where
      the backend allows it (see each backend's docstring), and returns how many were
      present; Unavailable when storage fails.
    - `search` returns at most `top_k` hits, best first, only those whose payload
      matches every filter (see `matches`). Raises InvalidInput for a query of another
      dimension or with NaN/inf, a `top_k` that is not an integer or a malformed filter
      (see `check_filters`; an empty list is allowed and matches nothing); Unavailable
      when the backend cannot be reached.
    - `count` raises Unavailable when the backend cannot be reached.
    - `save` persists what was written; FAISS atomically (a crash mid-save leaves the
      previous files intact), Qdrant per write (see each backend's docstring). Raises
      Unavailable when the files cannot be written.
    - Opening an index (each backend's `open`) raises InvalidInput when the stored index
      has another dimension (or type/params), Unavailable when storage cannot be read.
    - Vectors should be unit length: FAISS scores the raw inner product, Qdrant the
      cosine, which agree only for unit vectors.

    Example::

        idx.upsert(["c1"], np.array([[1.0, 0.0]], "float32"), [{"document_id": "d1"}])
        idx.search(np.array([1.0, 0.0], "float32"), top_k=1)  # -> [Hit("c1", 1.0, {...})]
    """

    dimension: int

    def upsert(
        self,
        ids: list[str],
        vectors: np.ndarray,
        payloads: list[dict[str, Any]],
        texts: list[str] | None = None,
    ) -> None:
        """`texts`: the chunks' text, one per id, for the engines that index it (Qdrant
        versions store a BM25 sparse vector of it, `index.sparse`); FAISS ignores it.
        Without it a Qdrant point gets no sparse vector (hybrid finds it only by its
        dense vector); the ingest paths always pass it."""
        ...

    def delete(self, ids: list[str]) -> None: ...
    def present(self, ids: list[str]) -> set[str]:
        """The ids among `ids` that hold a vector in this index (its unsaved writes
        included): what an edit need not write again."""
        ...

    def erase(self, ids: list[str], *, document_ids: Iterable[str] = ()) -> int:
        """Delete `ids`, and every row whose payload's `document_id` is one of
        `document_ids`, and purge their bytes from storage (GDPR erasure); the number of
        rows that were present. The caller holds the version's writer lock."""
        ...

    def search(
        self, vector: np.ndarray, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]: ...
    def count(self) -> int: ...
    def save(self) -> None:
        """Persist; atomically for FAISS, a flush for Qdrant Edge (see
        `index.edge_index`), a no-op on a Qdrant server, whose writes persist per call."""
        ...

    def copy(self) -> VectorIndex:
        """A deep copy that can be mutated while readers keep searching the original;
        Qdrant indexes (a server collection, an Edge shard), whose writes apply in place,
        return self."""
        ...


def checked_upsert(
    ids: list[str], vectors: Any, payloads: list[dict[str, Any]], dimension: int
) -> tuple[np.ndarray, dict[str, int]]:
    """The upsert contract every backend enforces the same way: contiguous, finite float32
    rows of the index's dimension, one per string id and dict payload. Returns the vectors
    and, per id, the row of its last occurrence (a repeated id in one call: the last one
    wins). ValueError says what is wrong."""
    try:
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"vectors must be a 2-D array of numbers: {exc}") from exc
    if matrix.ndim != 2 or matrix.shape[1] != dimension:
        raise ValueError(f"expected vectors of dimension {dimension}, got shape {matrix.shape}")
    if not (len(ids) == len(matrix) == len(payloads)):
        raise ValueError("ids, vectors and payloads must have the same length")
    checked_ids(ids)
    bad = [p for p in payloads if not isinstance(p, dict)]
    if bad:
        raise ValueError(f"payloads must be dicts, got {type(bad[0]).__name__}")
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"vector of {ids[row]!r} holds NaN or inf; vectors must be finite")
    return matrix, {chunk_id: i for i, chunk_id in enumerate(ids)}


def checked_ids(ids: list[str]) -> list[str]:
    """Chunk ids are strings (both backends derive their own ids from them)."""
    bad = [i for i in ids if not isinstance(i, str)]
    if bad:
        raise ValueError(f"chunk ids must be strings, got {bad[0]!r}")
    return ids


def checked_query(vector: Any, top_k: Any, dimension: int) -> np.ndarray:
    """The search input every backend enforces the same way: one finite vector of the
    index's dimension (as a contiguous float32 row) and an integer `top_k`."""
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer):
        raise ValueError(f"top_k must be an integer, got {top_k!r}")
    try:
        query = np.ascontiguousarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"query must be a vector of {dimension} numbers: {exc}") from exc
    if query.ndim > 2 or (query.ndim == 2 and query.shape[0] != 1):
        raise ValueError(f"query must be one vector of dimension {dimension}, got {query.shape}")
    query = query.reshape(1, -1)
    if query.shape[1] != dimension:
        raise ValueError(f"query has dimension {query.shape[1]}, index has {dimension}")
    if not np.isfinite(query).all():
        raise ValueError("query holds NaN or inf; vectors must be finite")
    return query
