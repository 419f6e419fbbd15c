"""What domain code is given instead of the whole runtime: one small typed protocol per
layer, each adding the services of its own layer to the one below.

The composition root (`api.runtime.Runtime`) satisfies all of them; a test may pass
anything with the same attributes. Example::

    def ingestion_status(rt: IngestServices, *, kb: KnowledgeBase) -> dict[str, Any]: ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from core.blobs import BlobStore
    from core.config import Settings
    from core.db import Database
    from core.jobs import JobQueue, WorkerPool


class CoreServices(Protocol):
    """Settings, the catalog, raw-bytes storage, the durable job queue and its workers
    (handlers register on `workers`)."""

    settings: Settings
    db: Database
    blobs: BlobStore
    jobs: JobQueue
    workers: WorkerPool
