"""The composition root: one object that owns the catalog, blob store, job queue, index
store, workers and loaded models for a process (API server, CLI or worker)."""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING, Any

from core.blobs import LocalBlobStore
from core.catalog.embedding_cache import CatalogEmbeddingCache
from core.config import Settings, apply_offline_defaults
from core.db import Database
from core.dispatch import make_dispatcher
from core.jobs import JobQueue, WorkerPool

if TYPE_CHECKING:
    from index.store import IndexStore
    from ingest.embed import Embedder
    from ingest.redact import PresidioRedactor

log = logging.getLogger(__name__)


class Runtime:
    """Cheap to construct; `start()` migrates the catalog, loads models, starts workers."""

    def __init__(self, settings: Settings) -> None:
        apply_offline_defaults()
        from index.store import IndexStore
        from ingest.worker import register_handlers

        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.catalog_url)
        self.blobs = LocalBlobStore(settings.blob_dir)
        self.jobs = JobQueue(
            self.db,
            lease_seconds=settings.job_lease_seconds,
            backoff_seconds=settings.job_backoff_seconds,
            max_attempts=settings.job_max_attempts,
        )
        # Celery mode: committed jobs are also announced to `ragops worker` processes.
        self.jobs.dispatcher = make_dispatcher(settings)
        self.indexes: IndexStore = IndexStore(
            settings.index_dir, self.db, qdrant=self.qdrant_client
        )
        self.embedding_cache = CatalogEmbeddingCache(self.db)
        self.workers = WorkerPool(
            self.jobs, threads=settings.workers, poll_seconds=settings.job_poll_seconds
        )
        self._redactors: dict[tuple[str, ...], PresidioRedactor] = {}
        self._lock = threading.Lock()
        self.ready = False
        register_handlers(self)

    def embedder(self, ref: str | None = None) -> Embedder:
        from ingest.embed import get_embedder

        return get_embedder(
            ref or self.settings.embedding_model,
            device=self.settings.embedding_device,
            batch_size=self.settings.embedding_batch_size,
        )

    def qdrant_client(self) -> Any:
        """The deployment's Qdrant: a server (cluster) by URL, else local mode on disk."""
        from index.qdrant_index import make_client

        if self.settings.qdrant_url:
            return make_client(
                url=self.settings.qdrant_url, api_key=self.settings.qdrant_api_key or None
            )
        return make_client(path=self.settings.qdrant_path)

    def redactor(self, entities: list[str] | None) -> PresidioRedactor:
        from ingest.redact import PresidioRedactor

        key = tuple(entities or self.settings.redaction_entities)
        with self._lock:
            if key not in self._redactors:
                self._redactors[key] = PresidioRedactor(entities=list(key))
            return self._redactors[key]

    def start(self, *, workers: bool = True, warm_ingest: bool = True) -> None:
        """Migrate, load models, start workers. `warm_ingest=False` skips loading the
        parser and redactor (a query-only process needs just the embedding model)."""
        from ingest.parse import UnstructuredParser

        self.db.migrate()
        self.embedder().warm_up()
        if warm_ingest:
            UnstructuredParser().warm_up()
            if self.settings.redaction_enabled:
                self.redactor(None).warm_up()
        if workers:
            self.workers.start()
        self.ready = True

    def close(self) -> None:
        self.ready = False
        self.workers.stop()
        if self.jobs.dispatcher is not None:
            self.jobs.dispatcher.close()
        if "index.qdrant_index" in sys.modules and not self.settings.qdrant_url:
            # Local mode holds a folder lock until closed; release it for the next process.
            sys.modules["index.qdrant_index"].close_client(self.settings.qdrant_path)
        self.db.dispose()
