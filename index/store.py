"""Opens, caches and writes the per-version indexes, safely across threads and processes.

Readers get an immutable snapshot: a writer mutates a copy, saves it atomically, bumps
the version's `generation` in the catalog and only then swaps the cached snapshot. A
reader in another process (CLI, second API worker) sees the new generation on its next
query and reloads from disk (FAISS: only the segment files it has not loaded yet). Writers
of one version are serialised by a thread lock plus an advisory file lock.

FAISS writes cost what changed: `save` appends one segment and switches the manifest
(`index.faiss_index`). Merging segments runs after the write is published, in a
background thread per version (`compaction="background"`, the default; "inline" runs it
in the writer's thread after publishing, "off" leaves it to `compact`): the merge is built
without any lock and only its manifest switch takes the writers' locks, so readers never
wait and writers wait only for that switch. A compaction changes no content, so it does
not bump the generation; a process that reloads later simply finds fewer files.

Erasure (`erase`, for GDPR requests) removes chunks so that no byte of them stays in
the version's storage, for any version status (building, ready, live, retired but not
yet purged). It holds the same writer locks and publishes like a write (generation + 1,
vector count, cache). Per backend:
- FAISS: a plain delete only writes tombstones and merges keep the replaced files one
  switch longer, so erase rewrites every segment that holds the ids (live or already
  deleted) into one and deletes, at once, every data file the new manifest does not name:
  the previous generation's segments, merges being built (whatever their age), files of
  the single-file layouts and crashed writes' temporary files. A merge prepared from an
  older snapshot cannot publish the rows again (its run is gone from the manifest).
  Snapshots already loaded in memory (this process's older readers, other processes
  until they reload at the bumped generation) still hold the rows until dropped.
- Qdrant Edge (the embedded engine, no RAGOPS_QDRANT_URL): the points are deleted, then a
  copy of the shard is vacuumed (every segment holding a deleted point is rewritten
  without it) in a child process and swapped in, and the previous shard directory is
  deleted whole; the shard keeps no write-ahead log (`index.edge_index`).
- Qdrant server (RAGOPS_QDRANT_URL): the points are deleted through the API; the server
  drops their bytes from its segments and WAL when its optimizers and WAL rotation run,
  and snapshots taken earlier keep them. Nothing more can be forced from a client.
Bytes the file system or the disk keeps in freed blocks are out of reach of all three.

A Qdrant version records the engine it was built on (`index_params["engine"]`:
`qdrant-edge` or `qdrant-server`, see `index.versions`); opening it with the other engine
configured is refused (Unavailable naming the setting), since its points are not there.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import update

from core.catalog.models import IndexVersion
from core.db import Database
from core.errors import InvalidInput, NotFound, RagopsError, Unavailable
from index.base import VectorIndex
from index.faiss_index import FaissIndex
from index.qdrant_index import (
    collection_exists,
    collection_name,
    drop_collection,
    engine_of,
    open_collection,
    set_alias,
)

log = logging.getLogger(__name__)

Compaction = Literal["background", "inline", "off"]


class IndexStore:
    """`qdrant` is a zero-argument factory for the deployment's Qdrant client (a server's
    QdrantClient by URL, or the Qdrant Edge folder, `make_client`), called only when a
    Qdrant-backed version is opened.
    `compaction` says where FAISS segment merges run (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        db: Database,
        qdrant: Callable[[], Any] | None = None,
        *,
        compaction: Compaction = "background",
    ) -> None:
        if compaction not in ("background", "inline", "off"):
            raise InvalidInput(f"compaction {compaction!r} is not background, inline or off")
        self.root = root
        self.db = db
        self.compaction = compaction
        self._qdrant_factory = qdrant
        self._cache: dict[str, tuple[int, VectorIndex]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._compactors: dict[str, threading.Thread] = {}
        self._again: set[str] = set()  # versions written to while their merge thread ran
        self._dropped: set[str] = set()

    def path_for(self, version: IndexVersion) -> Path:
        return self.root / version.kb_id / f"v{version.number}-{version.id[:8]}"

    def qdrant_client(self) -> Any:
        if self._qdrant_factory is None:
            raise InvalidInput(
                "this index store has no Qdrant client; set RAGOPS_QDRANT_URL or RAGOPS_QDRANT_PATH"
            )
        return self._qdrant_factory()

    def qdrant_for(self, version: IndexVersion) -> Any:
        """The Qdrant client for `version`; Unavailable when the version was built on the
        other engine than the one configured now (its points are not there)."""
        client = self.qdrant_client()
        recorded = (version.index_params or {}).get("engine")
        configured = engine_of(client)
        if recorded and recorded != configured:
            fix = (
                "set RAGOPS_QDRANT_URL to its server"
                if configured == "qdrant-edge"
                else "unset RAGOPS_QDRANT_URL to serve it from the data dir"
            )
            raise Unavailable(
                f"index version {version.number} was built on {recorded}, but this "
                f"deployment runs {configured}; {fix}, or build a new version"
            )
        return client

    def _open(self, version: IndexVersion) -> VectorIndex:
        if version.backend == "qdrant":
            # A version's collection is created with BM25 sparse vectors (hybrid inside
            # the engine, `index.sparse`); one created before keeps having none.
            return open_collection(
                self.qdrant_for(version),
                collection_name(version.kb_id, version.number, version.id),
                version.dimension,
                lexical=True,
            )
        if version.backend != "faiss":
            raise InvalidInput(f"unknown index backend {version.backend!r}; use faiss or qdrant")
        params = dict(version.index_params or {})
        index_type = params.pop("index_type", "flat")
        return FaissIndex.open(
            self.path_for(version), version.dimension, index_type=index_type, index_params=params
        )

    def _reload(self, version: IndexVersion, cached: VectorIndex | None) -> VectorIndex:
        """The index as storage holds it now; a cached FAISS snapshot only reads the
        segment files it lacks."""
        if isinstance(cached, FaissIndex):
            return cached.refreshed()
        return self._open(version)

    def point_alias(self, kb: Any, version: IndexVersion) -> None:
        """Qdrant: the KB's alias names the live version's collection."""

        set_alias(
            self.qdrant_for(version),
            f"ragops_{kb.id}_live",
            collection_name(version.kb_id, version.number, version.id),
        )

    def reader(self, version: IndexVersion) -> VectorIndex:
        """The snapshot for `version` as of its catalog generation (never half-written)."""
        cached = self._cache.get(version.id)
        if cached and cached[0] >= version.generation:
            return cached[1]
        index = self._reload(version, cached[1] if cached else None)
        with self._guard:
            current = self._cache.get(version.id)
            if current is None or current[0] < version.generation:
                self._cache[version.id] = (version.generation, index)
        return index

    def _lock_for(self, version_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(version_id, threading.Lock())

    @contextmanager
    def _exclusive(self, version: IndexVersion, *, create: bool = True) -> Iterator[int]:
        """Hold the version's writer locks (thread, then file); yields its generation.
        NotFound when the version row is gone (or, `create=False`, its directory)."""
        path = self.path_for(version)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        elif not path.is_dir():
            raise NotFound(f"index version {version.id} has no directory at {path}")
        with self._lock_for(version.id), open(path / ".lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                with self.db.session() as s:
                    row = s.get(IndexVersion, version.id)
                    if row is None:
                        raise NotFound(f"index version {version.id} no longer exists")
                    generation = row.generation
                yield generation
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _current(self, version: IndexVersion, generation: int) -> VectorIndex:
        """Under the writer locks: the committed index, from the cache when it is still
        what storage holds (FAISS: the manifest has not moved), else reloaded."""
        cached = self._cache.get(version.id)
        if cached and cached[0] == generation and not isinstance(cached[1], FaissIndex):
            return cached[1]
        return self._reload(version, cached[1] if cached else None)

    @contextmanager
    def writer(self, version: IndexVersion) -> Iterator[VectorIndex]:
        """Yield a private copy to mutate; on success save it and publish it.

        FAISS: the copy is private, so a failed write publishes nothing; a save writes
        one segment (what the writes touched) and switches the manifest, then merges are
        scheduled per `compaction`. Qdrant: `copy()` is the collection (Edge: the shard)
        itself and each call applies at once (upserts go in batches), so a failed write may
        leave its earlier batches applied; that is safe because writes are idempotent by
        chunk id and a retried job converges. Edge's `save` flushes, and builds HNSW when
        enough vectors wait unindexed.

        Example::

            with store.writer(version) as index:
                index.upsert(ids, vectors, payloads)
                index.delete(old_ids)
        """
        with self._exclusive(version) as generation:
            index = self._current(version, generation).copy()
            yield index
            if isinstance(index, FaissIndex):
                index.save(compact=False)
            else:
                index.save()
            self._publish(version, generation, index)
        if isinstance(index, FaissIndex) and index.compaction_due():
            self._schedule_compaction(version)

    def _publish(self, version: IndexVersion, generation: int, index: VectorIndex) -> None:
        """Under the writer locks, after `index` is on storage: bump the generation (other
        processes reload) and make `index` this process's snapshot."""
        with self.db.session() as s:
            s.execute(
                update(IndexVersion)
                .where(IndexVersion.id == version.id)
                .values(generation=generation + 1, vector_count=index.count())
            )
        with self._guard:
            self._cache[version.id] = (generation + 1, index)

    def erase(
        self, version: IndexVersion, ids: list[str], *, document_ids: Iterable[str] = ()
    ) -> int:
        """Remove `ids` from `version` so that no byte of their vectors or payloads stays
        in its storage (see the module docstring for what that means per backend), and
        publish the result like a write. Returns how many of `ids` were present before;
        0 when the version has no directory (FAISS) or collection (Qdrant), which are
        not created. Idempotent: erasing again returns 0.

        `document_ids`: also every row whose payload names one of these documents (the
        vectors of their older revisions, whose chunk ids the catalog no longer has).

        Waits for this process's merge of the version before and after, so none of them
        builds a file from a snapshot that still holds the rows once this returns.
        Raises NotFound when the version row is gone, Unavailable when storage fails.

        Example::

            erased = store.erase(version, chunk_ids_of_the_document)
        """
        if version.backend == "qdrant":
            return self._erase_qdrant(version, ids, document_ids)
        if not self.path_for(version).is_dir():
            return 0
        self._wait_for_merge(version)
        with self._exclusive(version, create=False) as generation:
            index = self._current(version, generation).copy()
            assert isinstance(index, FaissIndex)
            erased = index.erase(ids, document_ids=document_ids)
            self._publish(version, generation, index)
        self._wait_for_merge(version)  # one prepared meanwhile has now failed and cleaned up
        return erased

    def _erase_qdrant(
        self, version: IndexVersion, ids: list[str], document_ids: Iterable[str]
    ) -> int:
        client = self.qdrant_for(version)
        if not collection_exists(
            client, collection_name(version.kb_id, version.number, version.id)
        ):
            return 0
        with self._exclusive(version) as generation:
            index = self._current(version, generation)
            erased = index.erase(ids, document_ids=document_ids)
            self._publish(version, generation, index)
        return erased

    # -- compaction (FAISS) -----------------------------------------------------------
    def _schedule_compaction(self, version: IndexVersion) -> None:
        if self.compaction == "off":
            return
        if self.compaction == "inline":
            self._compact_logged(version)
            return
        with self._guard:
            running = self._compactors.get(version.id)
            if running is not None and running.is_alive():
                self._again.add(version.id)  # it looks again before it exits
                return
            thread = threading.Thread(
                target=self._compact_until_done,
                args=(version,),
                name=f"compact-{version.id[:8]}",
                daemon=True,  # killed at exit mid-merge is safe: nothing was switched
            )
            self._compactors[version.id] = thread
        thread.start()

    def _compact_until_done(self, version: IndexVersion) -> None:
        while True:
            self._compact_logged(version)
            with self._guard:
                if version.id not in self._again:
                    del self._compactors[version.id]
                    return
                self._again.discard(version.id)

    def _compact_logged(self, version: IndexVersion) -> None:
        try:
            self.compact(version)
        except NotFound:
            log.debug("index version %s went away while compacting", version.id)
        except (RagopsError, OSError) as exc:
            # the write is published either way; the next write schedules another try
            log.warning("compacting index version %s failed: %s", version.id, exc)
        except Exception:  # noqa: BLE001 - a background merge must never take a worker down
            log.exception("compacting index version %s failed", version.id)

    def compact(self, version: IndexVersion) -> int:
        """Merge the version's FAISS segments while the policy asks for it; returns the
        merges published. Each merge is built from the cached snapshot without a lock;
        only its manifest switch holds the writer locks, on the then-current index (so
        writes published meanwhile stay and apply on top). Readers never wait."""
        if version.backend != "faiss":
            return 0
        merges = 0
        while version.id not in self._dropped:
            cached = self._cache.get(version.id)
            snapshot = cached[1] if cached else None
            if not isinstance(snapshot, FaissIndex):
                with self._exclusive(version, create=False) as generation:
                    snapshot = self._current(version, generation)
                    with self._guard:
                        self._cache.setdefault(version.id, (generation, snapshot))
            assert isinstance(snapshot, FaissIndex)
            merge = snapshot.prepare_compaction()
            if merge is None:
                break
            applied = False
            try:
                with self._exclusive(version, create=False) as generation:
                    if version.id in self._dropped:
                        break
                    current = self._current(version, generation)
                    assert isinstance(current, FaissIndex)
                    updated = current.copy()
                    applied = updated.apply_compaction(merge)
                    if not applied:
                        break
                    with self._guard:
                        cached = self._cache.get(version.id)
                        if cached is None or cached[0] <= generation:
                            self._cache[version.id] = (generation, updated)
            finally:
                if not applied:
                    merge.discard(snapshot.path)
            merges += 1
        return merges

    def _wait_for_merge(self, version: IndexVersion) -> None:
        """Block until this process's background merge of `version`, if any, is done."""
        with self._guard:
            thread = self._compactors.get(version.id)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def wait_for_compaction(self, timeout: float | None = None) -> None:
        """Block until the background merges running now have finished (tests, benches,
        shutdown)."""
        with self._guard:
            threads = list(self._compactors.values())
        for thread in threads:
            thread.join(timeout)

    def drop(self, version: IndexVersion) -> None:
        """Delete a version's index data (FAISS files, the Qdrant collection or Edge shard)."""
        with self._guard:
            self._cache.pop(version.id, None)
            self._dropped.add(version.id)
        if version.backend == "qdrant":
            drop_collection(
                self.qdrant_for(version),
                collection_name(version.kb_id, version.number, version.id),
            )
        shutil.rmtree(self.path_for(version), ignore_errors=True)

    def drop_all(self, versions: list[IndexVersion]) -> None:
        for version in versions:
            self.drop(version)
