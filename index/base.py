"""The vector index contract every backend (FAISS now, Qdrant next) fulfils."""

from __future__ import annotations

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


def _as_datetime(value: Any) -> datetime | None:
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


def check_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Validate filter shapes; ValueError names the key and what was wrong.

    - `{"field": value}`: equality with a string, number or boolean;
    - `{"field": [a, b]}`: any of a non-empty list of those;
    - `{"field": {"gte": 1, "lt": 5}}`: a range with `gt`/`gte`/`lt`/`lte` bounds, all
      numbers or all ISO 8601 dates/date-times (`"2024-03-01"`, `"2024-03-01T12:00:00Z"`).
    """
    if not filters:
        return None
    for key, want in filters.items():
        if isinstance(want, dict):
            unknown = sorted(set(want) - set(RANGE_OPS))
            if not want or unknown:
                raise ValueError(
                    f"filter {key!r}: a range takes gt, gte, lt, lte"
                    + (f"; unknown {unknown}" if unknown else "; none given")
                )
            bounds = list(want.values())
            if all(is_number(b) for b in bounds):
                continue
            if all(_as_datetime(b) is not None for b in bounds):
                continue
            raise ValueError(
                f"filter {key!r}: range bounds must be all numbers or all ISO 8601 dates "
                f"(e.g. '2024-03-01'), got {want!r}"
            )
        ok = isinstance(want, _SCALAR) or (
            isinstance(want, list) and want and all(isinstance(v, _SCALAR) for v in want)
        )
        if not ok:
            raise ValueError(
                f"filter {key!r}: expected a string, number, boolean, a non-empty list of "
                f"them or a range object like {{'gte': 1, 'lt': 5}}, got {want!r}"
            )
    return filters


def _in_range(have: Any, bounds: dict[str, Any]) -> bool:
    if all(is_number(b) for b in bounds.values()):
        if not is_number(have):
            return False
        value: Any = have
        limits: dict[str, Any] = bounds
    else:
        value = _as_datetime(have)
        if value is None:
            return False
        limits = {op: _as_datetime(b) for op, b in bounds.items()}
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


def matches(payload: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    """Every filter must hold (see `check_filters` for the shapes): equality; a list
    means 'any of these'; a dict is a numeric or date range (a missing or non-numeric /
    non-date value never matches a range)."""
    if not filters:
        return True
    for key, want in filters.items():
        have = payload.get(key)
        if isinstance(want, dict):
            if not _in_range(have, want):
                return False
        elif isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


class VectorIndex(Protocol):
    """One immutable-by-snapshot index of unit vectors, scored by inner product (cosine).

    Contract:
    - `upsert` replaces vectors and payloads of ids that already exist (idempotent);
      raises ValueError when a vector's dimension differs from `dimension`.
    - `delete` ignores unknown ids.
    - `search` returns at most `top_k` hits, best first, only those whose payload
      matches every filter (see `matches`).
    - `save` persists atomically: a crash mid-save leaves the previous files intact.

    Example::

        idx.upsert(["c1"], np.array([[1.0, 0.0]], "float32"), [{"document_id": "d1"}])
        idx.search(np.array([1.0, 0.0], "float32"), top_k=1)  # -> [Hit("c1", 1.0, {...})]
    """

    dimension: int

    def upsert(
        self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]
    ) -> None: ...
    def delete(self, ids: list[str]) -> None: ...
    def search(
        self, vector: np.ndarray, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]: ...
    def count(self) -> int: ...
    def save(self) -> None:
        """Persist atomically; a no-op for backends whose writes persist per call."""
        ...

    def copy(self) -> VectorIndex:
        """A deep copy that can be mutated while readers keep searching the original;
        server-backed indexes whose writes persist per call (Qdrant) return self."""
        ...


def checked_upsert(
    ids: list[str], vectors: Any, payloads: list[dict[str, Any]], dimension: int
) -> tuple[np.ndarray, dict[str, int]]:
    """The upsert contract every backend enforces the same way: contiguous float32 rows of
    the index's dimension, one per id and payload. Returns the vectors and, per id, the row
    of its last occurrence (a repeated id in one call: the last one wins)."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != dimension:
        raise ValueError(f"expected vectors of dimension {dimension}, got shape {matrix.shape}")
    if not (len(ids) == len(matrix) == len(payloads)):
        raise ValueError("ids, vectors and payloads must have the same length")
    return matrix, {chunk_id: i for i, chunk_id in enumerate(ids)}
