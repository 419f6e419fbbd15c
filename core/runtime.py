"""The composition root: one object that owns the catalog, blob store, job queue, index
store, workers and loaded models for a process (API server, CLI or worker)."""

from __future__ import annotations

import atexit
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
    from ingest.config import RedactionConfig
    from ingest.embed import Embedder
    from ingest.redact import PresidioRedactor
    from retrieval.bm25 import Bm25Store

log = logging.getLogger(__name__)

# Parsers are process-wide (worker processes are expensive to warm): shared by every
# Runtime in the process, stopped at interpreter exit.
_PARSERS: dict[tuple[object, ...], Any] = {}
_PARSERS_LOCK = threading.Lock()


@atexit.register
def _close_parsers() -> None:
    for parser in _PARSERS.values():
        close = getattr(parser, "close", None)
        if close is not None:
            close()


class Runtime:
    """Cheap to construct; `start()` migrates the catalog, loads models, starts workers."""

    def __init__(self, settings: Settings) -> None:
        apply_offline_defaults()
        from eval.jobs import register_handlers as register_eval_handlers
        from index.store import IndexStore
        from ingest.worker import register_handlers
        from retrieval.bm25 import Bm25Store

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
        # BM25 per index version for hybrid retrieval, rebuilt when a version's generation moves.
        self.bm25: Bm25Store = Bm25Store(self.db)
        self.workers = WorkerPool(
            self.jobs, threads=settings.workers, poll_seconds=settings.job_poll_seconds
        )
        self._redactors: dict[tuple[object, ...], PresidioRedactor] = {}
        self._lock = threading.Lock()
        self.ready = False
        register_handlers(self)
        register_eval_handlers(self)

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

    def redactor(self, policy: RedactionConfig | None = None) -> PresidioRedactor:
        """One redactor per distinct policy; Presidio's engines are shared by all."""
        from ingest.config import RedactionConfig
        from ingest.redact import PresidioRedactor

        policy = policy or RedactionConfig(entities=list(self.settings.redaction_entities))
        entities = tuple(policy.entities or self.settings.redaction_entities)
        languages = tuple(policy.languages) if policy.languages else None
        key = (entities, policy.operator, languages)
        with self._lock:
            if key not in self._redactors:
                self._redactors[key] = PresidioRedactor(
                    entities=list(entities), operator=policy.operator, languages=languages
                )
            return self._redactors[key]

    def parser(self) -> Any:
        """The process's parser: isolated worker processes with time and memory limits
        (default), or in-process when RAGOPS_PARSER_ISOLATION=false."""
        key = (
            self.settings.parser_isolation,
            self.settings.parse_timeout_seconds,
            self.settings.parse_memory_mb,
            self.settings.parse_processes,
        )
        with _PARSERS_LOCK:
            if key not in _PARSERS:
                if self.settings.parser_isolation:
                    from ingest.isolate import IsolatedParser

                    _PARSERS[key] = IsolatedParser(
                        timeout_s=self.settings.parse_timeout_seconds,
                        memory_limit_mb=self.settings.parse_memory_mb,
                        processes=self.settings.parse_processes,
                    )
                else:
                    from ingest.parse import UnstructuredParser

                    _PARSERS[key] = UnstructuredParser()
            return _PARSERS[key]

    def archive_limits(self) -> Any:
        from ingest.archive import ArchiveLimits

        s = self.settings
        return ArchiveLimits(
            max_ratio=s.archive_max_ratio,
            max_total_bytes=s.archive_max_total_bytes,
            max_members=s.archive_max_members,
            max_depth=s.archive_max_depth,
        )

    def start(self, *, workers: bool = True, warm_ingest: bool = True) -> None:
        """Migrate, load models, start workers. `warm_ingest=False` skips loading the
        parser and redactor (a query-only process needs just the embedding model)."""
        self.db.migrate()
        self.embedder().warm_up()
        if warm_ingest:
            self.parser().warm_up()
            if self.settings.redaction_enabled:
                self.redactor().warm_up()
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
