"""The vector index contract every backend (FAISS now, Qdrant next) fulfils."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class Hit:
    chunk_id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


def matches(payload: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    """Equality filters; a list value means 'any of these'."""
    if not filters:
        return True
    for key, want in filters.items():
        have = payload.get(key)
        if isinstance(want, list):
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
    def save(self) -> None: ...
    def copy(self) -> VectorIndex:
        """A deep copy that can be mutated while readers keep searching the original."""
        ...
