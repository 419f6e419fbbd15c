"""The composition root: one object that builds and owns everything a process (API
server, CLI command, Celery worker) uses: settings, the catalog, the blob store, the job
queue and its workers, the index store, and the heavy components (models, parsers,
clients; see `api.components`).

It satisfies every layer's services protocol (`core.services.CoreServices` up to
`eval.services.EvalServices`), so domain code never imports it.

Example::

    rt = Runtime(settings)
    rt.start(workers=False, models=False)   # catalog only: list versions, promote, ...
    try:
        ...
    finally:
        rt.close()
"""

from __future__ import annotations

import logging

from api.components import Components
from core.blobs import LocalBlobStore
from core.catalog.embedding_cache import CatalogEmbeddingCache
from core.config import Settings, apply_offline_defaults
from core.db import Database
from core.dispatch import make_dispatcher
from core.jobs import JobQueue, WorkerPool
from eval.jobs import register_handlers as register_eval_handlers
from index.store import IndexStore
from ingest.archive import ArchiveLimits
from ingest.base import Parser
from ingest.config import RedactionConfig
from ingest.embed import Embedder
from ingest.redact import PresidioRedactor
from ingest.worker import register_handlers as register_ingest_handlers
from retrieval.bm25 import Bm25Store
from retrieval.generators import Generator
from retrieval.rerank import Reranker

log = logging.getLogger(__name__)


class Runtime:
    """Cheap to construct; `start()` migrates the catalog, loads models, starts workers.

    `components` shares already-loaded models with other runtimes in the process; by
    default the runtime builds its own and closes them in `close()`.
    """

    def __init__(self, settings: Settings, *, components: Components | None = None) -> None:
        apply_offline_defaults()
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._owns_components = components is None
        self.components = components if components is not None else Components()
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
        self.indexes = IndexStore(settings.index_dir, self.db, qdrant=self.qdrant_client)
        self.embedding_cache = CatalogEmbeddingCache(self.db)
        # BM25 per index version for hybrid retrieval, rebuilt when a version's generation moves.
        self.bm25 = Bm25Store(self.db)
        self.workers = WorkerPool(
            self.jobs, threads=settings.workers, poll_seconds=settings.job_poll_seconds
        )
        self.ready = False
        register_ingest_handlers(self)
        register_eval_handlers(self)

    # -- the heavy components, configured by this runtime's settings -------------------

    def embedder(self, ref: str | None = None) -> Embedder:
        return self.components.embedder(self.settings, ref)

    def redactor(self, policy: RedactionConfig | None = None) -> PresidioRedactor:
        return self.components.redactor(self.settings, policy)

    def parser(self) -> Parser:
        return self.components.parser(self.settings)

    def reranker(self, ref: str) -> Reranker:
        return self.components.reranker(ref)

    def generator(self, name: str, *, embedding_model: str | None = None) -> Generator:
        return self.components.generator(self.settings, name, embedding_model=embedding_model)

    def qdrant_client(self) -> object:
        return self.components.qdrant_client(self.settings)

    def archive_limits(self) -> ArchiveLimits:
        s = self.settings
        return ArchiveLimits(
            max_ratio=s.archive_max_ratio,
            max_total_bytes=s.archive_max_total_bytes,
            max_members=s.archive_max_members,
            max_depth=s.archive_max_depth,
        )

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, *, workers: bool = True, warm_ingest: bool = True, models: bool = True) -> None:
        """Migrate, load models, start workers. `warm_ingest=False` skips loading the
        parser and redactor (a query-only process needs just the embedding model);
        `models=False` only migrates the catalog (commands that read or write rows and
        load nothing: listing versions, promoting, the registry)."""
        self.db.migrate()
        if models:
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
        if self._owns_components:
            self.components.close()
        self.db.dispose()
