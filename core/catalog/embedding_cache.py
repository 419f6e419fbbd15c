"""The embedding cache as catalog rows: shared by every worker process of a deployment."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from core.catalog.models import EmbeddingCacheEntry
from core.db import Database


class CatalogEmbeddingCache:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get_many(self, model_digest: str, text_hashes: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = sorted(set(text_hashes))
        with self.db.session() as s:
            for start in range(0, len(unique), 500):
                rows = s.execute(
                    select(EmbeddingCacheEntry.text_hash, EmbeddingCacheEntry.vector).where(
                        EmbeddingCacheEntry.model_digest == model_digest,
                        EmbeddingCacheEntry.text_hash.in_(unique[start : start + 500]),
                    )
                )
                for text_hash, blob in rows:
                    found[text_hash] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def put_many(self, model_digest: str, items: dict[str, np.ndarray]) -> None:
        if not items:
            return
        dialect = postgresql if self.db.engine.dialect.name == "postgresql" else sqlite
        rows = [
            {
                "model_digest": model_digest,
                "text_hash": h,
                "vector": np.asarray(v, dtype=np.float32).tobytes(),
            }
            for h, v in items.items()
        ]
        with self.db.session() as s:
            for start in range(0, len(rows), 500):
                stmt = dialect.insert(EmbeddingCacheEntry).values(rows[start : start + 500])
                s.execute(stmt.on_conflict_do_nothing())
