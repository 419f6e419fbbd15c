"""Opens, caches and writes the per-version indexes, safely across threads and processes.

Readers get an immutable snapshot: a writer mutates a copy, saves it atomically, bumps
the version's `generation` in the catalog and only then swaps the cached snapshot. A
reader in another process (CLI, second API worker) sees the new generation on its next
query and reloads from disk. Writers of one version are serialised by a thread lock plus
an advisory file lock.
"""

from __future__ import annotations

import fcntl
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import update

from core.catalog.models import IndexVersion
from core.db import Database
from core.errors import InvalidInput, NotFound
from index.base import VectorIndex
from index.faiss_index import FaissIndex
from index.qdrant_index import QdrantIndex, collection_name, set_alias


class IndexStore:
    """`qdrant` is a zero-argument factory for the deployment's QdrantClient (server by
    URL or local mode on a path), called only when a Qdrant-backed version is opened."""

    def __init__(self, root: Path, db: Database, qdrant: Callable[[], Any] | None = None) -> None:
        self.root = root
        self.db = db
        self._qdrant_factory = qdrant
        self._cache: dict[str, tuple[int, VectorIndex]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path_for(self, version: IndexVersion) -> Path:
        return self.root / version.kb_id / f"v{version.number}-{version.id[:8]}"

    def qdrant_client(self) -> Any:
        if self._qdrant_factory is None:
            raise InvalidInput(
                "this index store has no Qdrant client; set RAGOPS_QDRANT_URL or RAGOPS_QDRANT_PATH"
            )
        return self._qdrant_factory()

    def _open(self, version: IndexVersion) -> VectorIndex:
        if version.backend == "qdrant":
            return QdrantIndex.open(
                self.qdrant_client(),
                collection_name(version.kb_id, version.number, version.id),
                version.dimension,
            )
        if version.backend != "faiss":
            raise InvalidInput(f"unknown index backend {version.backend!r}; use faiss or qdrant")
        params = dict(version.index_params or {})
        index_type = params.pop("index_type", "flat")
        return FaissIndex.open(
            self.path_for(version), version.dimension, index_type=index_type, index_params=params
        )

    def point_alias(self, kb: Any, version: IndexVersion) -> None:
        """Qdrant: the KB's alias names the live version's collection."""

        set_alias(
            self.qdrant_client(),
            f"ragops_{kb.id}_live",
            collection_name(version.kb_id, version.number, version.id),
        )

    def reader(self, version: IndexVersion) -> VectorIndex:
        """The snapshot for `version` as of its catalog generation (never half-written)."""
        cached = self._cache.get(version.id)
        if cached and cached[0] >= version.generation:
            return cached[1]
        index = self._open(version)
        with self._guard:
            current = self._cache.get(version.id)
            if current is None or current[0] < version.generation:
                self._cache[version.id] = (version.generation, index)
        return index

    def _lock_for(self, version_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(version_id, threading.Lock())

    @contextmanager
    def writer(self, version: IndexVersion) -> Iterator[VectorIndex]:
        """Yield a private copy to mutate; on success save it and publish it.

        FAISS: the copy is private, so a failed write publishes nothing. Qdrant: `copy()`
        is the collection itself and each call persists at once, so a failed write may
        leave its earlier batches applied; that is safe because writes are idempotent by
        chunk id and a retried job converges.
        """
        path = self.path_for(version)
        path.mkdir(parents=True, exist_ok=True)
        with self._lock_for(version.id), open(path / ".lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                with self.db.session() as s:
                    row = s.get(IndexVersion, version.id)
                    if row is None:
                        raise NotFound(f"index version {version.id} no longer exists")
                    generation = row.generation
                cached = self._cache.get(version.id)
                base = cached[1] if cached and cached[0] == generation else self._open(version)
                index = base.copy()
                yield index
                index.save()
                with self.db.session() as s:
                    s.execute(
                        update(IndexVersion)
                        .where(IndexVersion.id == version.id)
                        .values(generation=generation + 1, vector_count=index.count())
                    )
                with self._guard:
                    self._cache[version.id] = (generation + 1, index)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def drop(self, version: IndexVersion) -> None:
        """Delete a version's index data (FAISS files or the Qdrant collection)."""
        with self._guard:
            self._cache.pop(version.id, None)
        if version.backend == "qdrant":
            self._open(version).drop()
        shutil.rmtree(self.path_for(version), ignore_errors=True)

    def drop_all(self, versions: list[IndexVersion]) -> None:
        for version in versions:
            self.drop(version)
