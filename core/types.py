"""Plain data that flows between ingestion stages, the index and retrieval.

A `Piece` is the one shape every ingest stage takes and returns: parsed elements,
cleaned elements, redacted elements and finally chunks are all pieces, so a pipeline
is just an ordered list of callables.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass
class Piece:
    """A run of text plus the metadata needed to cite it.

    `metadata` keys used across the code base: `page_number` (int), `section` (str,
    nearest heading above), `category` (unstructured element type), `position`
    (chunk ordinal within its revision, set by the chunker).
    """

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    token_count: int | None = None
    embedding: np.ndarray | None = None

    @property
    def text_hash(self) -> str:
        return sha256_hex(self.text)


@dataclass
class StageReport:
    """What each stage did to one revision: counters only, never document content."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, key: str, n: int = 1) -> None:
        bucket = self.counts.setdefault(stage, {})
        bucket[key] = bucket.get(key, 0) + n
