"""The services ingestion uses: index services plus the loaded pipeline components
(embedders, redactors, the parser), which the runtime owns and closes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from index.services import IndexServices

if TYPE_CHECKING:
    from core.catalog.embedding_cache import CatalogEmbeddingCache
    from ingest.archive import ArchiveLimits
    from ingest.base import Parser
    from ingest.config import RedactionConfig
    from ingest.embed import Embedder
    from ingest.redact import PresidioRedactor


class IngestServices(IndexServices, Protocol):
    embedding_cache: CatalogEmbeddingCache

    def embedder(self, ref: str | None = None) -> Embedder:
        """The loaded embedding model `ref` (default: the deployment's); InvalidInput if
        no such model is installed."""
        ...

    def redactor(self, policy: RedactionConfig | None = None) -> PresidioRedactor: ...

    def parser(self) -> Parser: ...

    def archive_limits(self) -> ArchiveLimits: ...
