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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import update

from core.catalog.models import IndexVersion
from core.db import Database
from index.base import VectorIndex
from index.faiss_index import FaissIndex


class IndexStore:
    def __init__(self, root: Path, db: Database) -> None:
        self.root = root
        self.db = db
        self._cache: dict[str, tuple[int, VectorIndex]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path_for(self, version: IndexVersion) -> Path:
        return self.root / version.kb_id / f"v{version.number}-{version.id[:8]}"

    def _open(self, version: IndexVersion) -> VectorIndex:
        if version.backend != "faiss":
            raise ValueError(f"index backend {version.backend!r} is not available yet; use faiss")
        return FaissIndex.open(self.path_for(version), version.dimension)

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
        """Yield a private copy to mutate; on success save it and publish it."""
        path = self.path_for(version)
        path.mkdir(parents=True, exist_ok=True)
        with self._lock_for(version.id), open(path / ".lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                with self.db.session() as s:
                    row = s.get(IndexVersion, version.id)
                    if row is None:
                        raise LookupError(f"index version {version.id} no longer exists")
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
        with self._guard:
            self._cache.pop(version.id, None)
        shutil.rmtree(self.path_for(version), ignore_errors=True)

    def drop_kb(self, kb_id: str) -> None:
        with self._guard:
            for key in list(self._cache):
                self._cache.pop(key, None)
        shutil.rmtree(self.root / kb_id, ignore_errors=True)
